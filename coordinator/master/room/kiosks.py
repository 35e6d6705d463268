"""The room's kiosk registry: one record per appliance that linked into the session (its name,
version, link state and since when, its burners and cached images), so a dashboard can group
burners by kiosk."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from coordinator.master import channels
from coordinator.master.room.base import RoomBase
from coordinator.master.room.effects import KioskRecord
from coordinator.master.room.errors import BadRequest
from coordinator.master.room.values import (
    MAX_KIOSK_TEXT,
    MAX_VERSION,
    Kiosk,
    LinkState,
    checked_kiosk_id,
    checked_md5,
    checked_text,
    checked_uid,
)
from wire import burnproto as bp

log = logging.getLogger("coordinator.master.room")


class Kiosks(RoomBase):
    def kiosk_hello(
        self,
        kiosk_id: int,
        *,
        name: str,
        version: str,
        burners: Iterable[str],
        images: Iterable[str],
        cache_used: int | None = None,
        cache_max: int | None = None,
    ) -> None:
        """A kiosk said what it is, which burners it has and what its cache holds (its whole
        state, so this replaces what was known); a kiosk that says so is online."""
        # Everything is checked before anything changes: a refused hello leaves no trace.
        checked_kiosk_id(kiosk_id)
        uids = tuple(sorted({checked_uid(u) for u in burners}))
        cached = tuple(sorted({checked_md5(m) for m in images}))
        for field_name, value in (("cache_used", cache_used), ("cache_max", cache_max)):
            if value is not None and (type(value) is not int or value < 0):
                raise BadRequest(
                    f"{field_name} must be an integer >= 0 or absent, got {value!r}",
                    bp.ErrorCode.BAD_NUMBER,
                )
        name = checked_text("name", name, MAX_KIOSK_TEXT)
        version = checked_text("version", version, MAX_VERSION)
        kiosk = self._kiosk(kiosk_id)
        kiosk.name, kiosk.version = name, version
        kiosk.burners = uids
        kiosk.images = cached
        kiosk.cache_used, kiosk.cache_max = cache_used, cache_max
        # A drive moved to another box belongs to that box only.
        for other in self._kiosks.values():
            if other is not kiosk and set(other.burners) & set(uids):
                other.burners = tuple(u for u in other.burners if u not in uids)
                self._kiosk_changed(other)
        self._set_link(kiosk, LinkState.ONLINE)
        self._kiosk_changed(kiosk)

    def kiosk_link(self, kiosk_id: int, link: LinkState, *, name: str | None = None) -> None:
        """A kiosk's link came up, dropped (waiting within its grace period) or ended."""
        if not isinstance(link, LinkState):
            raise BadRequest(f"unknown link state {link!r}", bp.ErrorCode.BAD_ENTRY)
        if name is not None:
            name = checked_text("name", name, MAX_KIOSK_TEXT)
        kiosk = self._kiosk(kiosk_id)
        changed = self._set_link(kiosk, link)
        if name is not None and name != kiosk.name:
            kiosk.name = name
            changed = True
        if changed:
            self._kiosk_changed(kiosk)

    def kiosk_drive_gone(self, kiosk_id: int, uid: str) -> None:
        """A kiosk stopped using one of its burners (unplugged)."""
        uid = checked_uid(uid)
        kiosk = self._kiosks.get(checked_kiosk_id(kiosk_id))
        if kiosk is not None and uid in kiosk.burners:
            kiosk.burners = tuple(u for u in kiosk.burners if u != uid)
            self._kiosk_changed(kiosk)

    def _kiosk(self, kiosk_id: int) -> Kiosk:
        kiosk = self._kiosks.get(checked_kiosk_id(kiosk_id))
        if kiosk is None:
            kiosk = self._kiosks[kiosk_id] = Kiosk(kiosk_id)
        return kiosk

    def _set_link(self, kiosk: Kiosk, link: LinkState) -> bool:
        if kiosk.link is link and kiosk.since is not None:
            return False
        kiosk.link, kiosk.since = link, self._wall()
        log.info(
            "kiosk link",
            extra={"session": self.session_id, "kiosk": kiosk.id, "link": link.value},
        )
        return True

    def _kiosk_changed(self, kiosk: Kiosk) -> None:
        self._dirty_kiosks.add(kiosk.id)
        self._announce(channels.kiosk(self.session_id, kiosk.id), self.kiosk_dict(kiosk))

    def _kiosk_record(self, kiosk: Kiosk) -> KioskRecord:
        return KioskRecord(
            session_id=self.session_id,
            id=kiosk.id,
            name=kiosk.name,
            version=kiosk.version,
            link=kiosk.link.value,
            since=kiosk.since,
            burners=kiosk.burners,
            images=kiosk.images,
            cache_used=kiosk.cache_used,
            cache_max=kiosk.cache_max,
        )

    def kiosk_dict(self, kiosk: Kiosk) -> dict[str, object]:
        """A kiosk, JSON-ready; its cached images carry the name and size the room knows."""
        cache = []
        for md5 in kiosk.images:
            info = self._images.get(md5)
            cache.append(
                {
                    "md5": md5,
                    "name": None if info is None else info.name,
                    "size": None if info is None else info.size,
                }
            )
        return {
            "id": kiosk.id,
            "name": kiosk.name,
            "version": kiosk.version,
            "link": kiosk.link.value,
            "since": kiosk.since,
            "burners": list(kiosk.burners),
            "images": cache,
            "cache_used": kiosk.cache_used,
            "cache_max": kiosk.cache_max,
        }
