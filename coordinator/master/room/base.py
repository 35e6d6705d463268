"""The state a room holds, what it shows of it, and its fan-out to members, pub/sub and the store.

`RoomBase` keeps the members, burners, kiosks, images and queue of one session. Nothing is sent
from here: `_send` and `_to_watchers` queue replies for members, `_announce` queues pub/sub
changes, and the dirty sets say what `drain` hands over to be persisted. The room's other parts
(`dispatch`, `stats`, `kiosks` and the `Room` itself in `core`) build on it."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from coordinator.master import channels
from coordinator.master.room.effects import (
    BurnerRecord,
    Change,
    Effects,
    KioskRecord,
    Outbound,
    Payload,
    QueueSnapshot,
    burner_from_record,
    kiosk_from_record,
)
from coordinator.master.room.values import (
    CAP_IMAGES_FIT,
    QLIST_FIT,
    Burner,
    DispatchPolicy,
    ImageInfo,
    Kiosk,
    LinkState,
    Member,
    Run,
)
from wire import burnproto as bp


class RoomBase:
    def __init__(
        self,
        session_id: str,
        *,
        policy: DispatchPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        queue: Iterable[tuple[str, int]] = (),
        burners: Iterable[BurnerRecord] = (),
        kiosks: Iterable[KioskRecord] = (),
    ) -> None:
        self.session_id = session_id.lower()
        self.policy = policy or DispatchPolicy()
        self._clock = clock
        # Kiosk link times are shown to people and outlive a restart: wall clock, not monotonic.
        self._wall = wall
        self.suspended = False
        self._members: dict[str, Member] = {}
        self._burners: dict[str, Burner] = {}
        self._images: dict[str, ImageInfo] = {}
        self._queue: list[Run] = [Run(md5, count) for md5, count in queue if count > 0]
        self._effects = Effects()
        self._dirty_queue = False
        self._dirty_burners: set[str] = set()
        self._kiosks: dict[int, Kiosk] = {}
        self._dirty_kiosks: set[int] = set()
        for kiosk_record in kiosks:
            kiosk = kiosk_from_record(kiosk_record)
            if kiosk.link is not LinkState.OFFLINE:
                # Its link lived in the process that stopped; it comes back online with a new one.
                kiosk.link, kiosk.since = LinkState.OFFLINE, wall()
                self._dirty_kiosks.add(kiosk.id)
            self._kiosks[kiosk.id] = kiosk
        for record in burners:
            self._burners[record.uid] = burner_from_record(record)
        for burner in self._burners.values():
            # A burn that was in flight when the master stopped never reported its result:
            # put it back at the head so the disc is still made.
            if burner.job is not None:
                self._requeue(burner.job)
                burner.resumable, burner.job = burner.job, None
                self._dirty_burners.add(burner.uid)

    # ---- views -------------------------------------------------------------------------------

    @property
    def members(self) -> Mapping[str, Member]:
        return self._members

    @property
    def burners(self) -> Mapping[str, Burner]:
        return self._burners

    @property
    def kiosks(self) -> Mapping[int, Kiosk]:
        return self._kiosks

    @property
    def queue(self) -> tuple[tuple[str, int], ...]:
        return tuple((run.md5, run.count) for run in self._queue)

    @property
    def queued(self) -> int:
        return sum(run.count for run in self._queue)

    def queue_list(self) -> bp.QList:
        """The queue, next first. Requeued burns may push it past `max_queue`; the tail beyond
        one frame is left out rather than making the reply unsendable."""
        md5s = (run.md5 for run in self._queue for _ in range(run.count))
        return bp.QList(tuple(itertools.islice(md5s, QLIST_FIT)))

    def status_list(self) -> bp.SList:
        entries = [
            bp.SListEntry(b.uid, b.name, b.status)
            for b in sorted(self._burners.values(), key=lambda b: b.uid)
            if b.connected and b.status is not None
        ]
        return bp.SList(tuple(entries))

    def fleet_capabilities(self) -> bp.Cap:
        caps: set[bp.Capability] = set()
        images: set[str] = set()
        for burner in self._burners.values():
            if burner.connected:
                caps |= burner.capabilities
                images |= burner.images
        # Kiosks may burn every take of a large catalog: the answer names as many as one frame
        # holds (in md5 order), rather than being a frame too large to send at all.
        return bp.Cap(
            tuple(c for c in bp.Capability if c in caps),
            tuple(sorted(images))[:CAP_IMAGES_FIT],
        )

    def burner_dict(self, burner: Burner) -> dict[str, object]:
        """A burner, JSON-ready, with the name of the image it burns where the room knows it
        (so no screen has to show a digest while a disc burns)."""
        info = None if burner.job is None else self._images.get(burner.job.lower())
        return burner.as_dict() | {"image": None if info is None else info.name}

    def image(self, md5: str) -> ImageInfo | None:
        return self._images.get(md5.lower())

    def knows_image(self, md5: str) -> bool:
        md5 = md5.lower()
        return md5 in self._images or any(md5 in b.images for b in self._burners.values())

    def learn_image(self, info: ImageInfo) -> None:
        """Remember what the catalog said of an image (the master looks it up off the room)."""
        self._images[info.md5.lower()] = info

    def members_with_credential(self, credential_id: str) -> list[Member]:
        return [m for m in self._members.values() if m.credential_id == credential_id]

    # ---- fan-out: what members are sent, what is announced and persisted -------------------

    def drain(self) -> Effects:
        """Take everything the room wants sent, announced and persisted since the last drain."""
        effects, self._effects = self._effects, Effects()
        if self._dirty_queue:
            effects.writes.append(QueueSnapshot(self.session_id, self.queue))
        for uid in sorted(self._dirty_burners):
            effects.writes.append(self._record(self._burners[uid]))
        for kiosk_id in sorted(self._dirty_kiosks):
            effects.writes.append(self._kiosk_record(self._kiosks[kiosk_id]))
        self._dirty_queue = False
        self._dirty_burners.clear()
        self._dirty_kiosks.clear()
        return effects

    def _send(self, member_id: str, payload: Payload) -> None:
        self._effects.outbound.append(Outbound(member_id, payload))

    def _to_watchers(self, payload: Payload) -> None:
        for member in self._members.values():
            if member.watches:
                self._send(member.id, payload)

    def _announce(self, channel: str, data: Mapping[str, object]) -> None:
        self._effects.changes.append(Change(channel, data))

    def _queue_changed(self) -> None:
        self._dirty_queue = True
        self._to_watchers(self.queue_list())
        self._announce(
            channels.queue(self.session_id),
            {"queue": [{"md5": m, "count": c} for m, c in self.queue], "length": self.queued},
        )

    def _burner_changed(self, burner: Burner, *, persist: bool = True) -> None:
        if persist:
            self._dirty_burners.add(burner.uid)
        self._to_watchers(self.status_list())
        self._announce(
            channels.burner_status(self.session_id, burner.uid), self.burner_dict(burner)
        )

    def _record(self, burner: Burner) -> BurnerRecord:
        s = burner.stats
        return BurnerRecord(
            session_id=self.session_id,
            uid=burner.uid,
            name=burner.name,
            capabilities=tuple(sorted(c.value for c in burner.capabilities)),
            images=tuple(sorted(burner.images)),
            burned=s.burned,
            failed=s.failed,
            recent_failures=s.recent_failures,
            speed_total=s.speed_total,
            speed_samples=s.speed_samples,
            job=burner.job,
            cancelled=s.cancelled,
            common_only=burner.common_only,
            jobs=burner.jobs,
        )

    def _unqueue(self, md5: str) -> bool:
        """Take one disc of `md5` out of the queue (the first run of it); False if none."""
        for i, run in enumerate(self._queue):
            if run.md5 == md5:
                run.count -= 1
                if run.count == 0:
                    del self._queue[i]
                self._dirty_queue = True
                return True
        return False

    def _requeue(self, md5: str) -> None:
        if self._queue and self._queue[0].md5 == md5:
            self._queue[0].count += 1
        else:
            self._queue.insert(0, Run(md5, 1))
        self._dirty_queue = True

    if TYPE_CHECKING:
        # Defined by the part named; the fan-out above needs it.

        # coordinator.master.room.kiosks
        def _kiosk_record(self, kiosk: Kiosk) -> KioskRecord: ...
