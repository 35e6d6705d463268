"""The agent's side of the link to the coordinator: connecting, enrolling, and what travels on it.

`Uplink` starts the link (or the enrollment that earns its credential), keeps the link state the
kiosk and the LEDs show, says hello with the drives and the cached images, sends each drive's
burn-protocol STATUS when it changes, and reports finished jobs from the journal's unreported list
(`Uplink.report_results`) only while online, so nothing is lost or sent twice. Orders from the
coordinator (`catalog`, `burn`, `open`, `cancel`, `name`) arrive in `Uplink._on_message`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import Any

from appliance.agent.base import AgentBase, LinkFactory, LinkState
from appliance.agent.catalog import Take, save_catalog
from appliance.agent.slot import Slot, proto_status
from appliance.control import ControlError
from appliance.drives.base import BurnError
from appliance.journal import JobRecord, JobState
from appliance.leds import LinkState as LedLink
from wire.agentmsg import MAX_NOTES

log = logging.getLogger("appliance.agent")

# The burn protocol's names for what a drive writes (seed 004's CAP words).
_WIRE_CAPS = {"CDR": "BURNCDR", "DVDR": "BURNDVDR", "BDR": "BURNBDR", "BLOCK": "BLOCK"}


def _default_link_factory() -> LinkFactory | None:
    try:
        from appliance.link import AgentLink  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        log.warning("appliance.link is not available; the agent runs offline")
        return None
    return AgentLink  # type: ignore[no-any-return,unused-ignore]


class Uplink(AgentBase):
    async def _connect(self) -> None:
        url, credential = self.config.link_url, self.config.credential
        if url is not None and credential is None and self.config.enrollment_code:
            self._link_state = LinkState.CONNECTING
            self._spawn(self._enroll(url, self.config.enrollment_code), "enrollment")
            return
        if url is None or credential is None:
            log.info("no coordinator configured; running offline")
            return
        await self._start_link(url, credential)

    async def _enroll(self, url: str, code: str) -> None:
        """Wait to be accepted (status `pending` meanwhile), then keep the credential and link."""
        from appliance.enroll import (
            Enrollment,
            EnrollmentGaveUp,
            EnrollmentRefused,
            save_credential,
        )

        show = self.config.show
        assert show is not None  # noqa: S101 - the config refuses a code without a show
        first, longest = self._enroll_interval
        enrollment = Enrollment(
            url,
            code,
            self.config.name,
            show,
            on_pending=lambda: self._on_link_state(LinkState.PENDING),
            state_dir=self.config.state_dir,
            interval_min=first,
            interval_max=longest,
        )
        try:
            credential = await enrollment.run()
        except (EnrollmentRefused, EnrollmentGaveUp) as exc:
            log.error("enrollment failed: %s", exc)  # noqa: TRY400 - the reason is the message
            self._on_link_state(LinkState.REJECTED)
            return
        path = await asyncio.to_thread(save_credential, self.config.state_dir, credential)
        log.info("enrolled; credential saved path=%s", path)
        if self._closing:
            return
        self._credential = credential
        link_url = self.config.link_url
        assert link_url is not None  # noqa: S101 - url was set to enroll
        await self._start_link(link_url, credential)

    async def _start_link(self, url: str, credential: str) -> None:
        factory = self._link_factory or _default_link_factory()
        if factory is None:
            return
        self._link_state = LinkState.CONNECTING
        self.link = factory(
            url,
            credential,
            on_message=self._on_message,
            on_state=self._on_link_state,
            session=self.config.session,
        )
        await self.link.start()

    def _on_link_state(self, state: Any) -> None:
        try:
            self._link_state = LinkState(str(state))
        except ValueError:
            log.warning("unknown link state %r", state)
            return
        log.info("link state=%s", self._link_state)
        if self.panel is not None and self.panel.link is not None:
            self.panel.link.show(
                {
                    LinkState.ONLINE: LedLink.CONNECTED,
                    LinkState.CONNECTING: LedLink.RECONNECTING,
                }.get(self._link_state, LedLink.DOWN)
            )
        self._emit({"event": "status", "status": self._status_now()})
        if self._link_state is LinkState.ONLINE:
            self._spawn(self._came_online(), "online")

    async def _came_online(self) -> None:
        await self._send_hello()
        await self.report_results()

    def _online(self) -> bool:
        return self.link is not None and self._link_state is LinkState.ONLINE

    async def _send_online(self, payload: dict[str, Any]) -> bool:
        if not self._online() or self.link is None:
            return False
        await self.link.send(payload)
        return True

    def _cache_view(self) -> tuple[frozenset[str], int]:
        cache = self.cache
        if cache is None:
            return frozenset(), 0
        return frozenset(
            t.md5 for t in self.catalog.values() if t.sha256 in cache
        ), cache.used_bytes

    async def _cache_changed(self) -> None:
        """Send a fresh hello when the cache holds other images than the last hello said."""
        if self._online() and self._cache_view() != self._sent_cache:
            await self._send_hello()

    async def _send_hello(self) -> None:
        view = self._cache_view()
        cached = sorted(view[0])
        drives = []
        for uid, slot in self.slots.items():
            slot.sent_status = proto_status(slot)
            drives.append(
                {
                    "uid": uid,
                    "name": slot.name,
                    "capabilities": sorted(_WIRE_CAPS.get(c, c) for c in slot.info.capabilities),
                    "images": cached,
                    "status": slot.sent_status,
                }
            )
        sent = await self._send_online(
            {
                "type": "hello",
                "appliance": {
                    "name": self.config.name,
                    "version": self.version,
                    "cache_used": view[1],
                    "cache_max": self.config.cache_size,
                },
                "drives": drives,
            }
        )
        if sent:
            self._sent_cache = view

    async def _send_status(self, slot: Slot) -> None:
        status = proto_status(slot)
        if status == slot.sent_status or not self._online():
            return
        slot.sent_status = status
        await self._send_online({"type": "status", "uid": slot.info.uid, "status": status})

    async def report_results(self) -> int:
        """Send every finished job the coordinator has not heard of; returns how many."""
        journal = self.journal
        if journal is None or not self._online():
            return 0
        sent = 0
        # One reporter at a time, so two triggers cannot both send the same unreported job.
        async with self._report_lock:
            for record in await journal.unreported():
                if not self._online():
                    break
                await self._send_online(await self._result_payload(record))
                await journal.mark_reported([record.id])
                sent += 1
        return sent

    async def _result_payload(self, record: JobRecord) -> dict[str, Any]:
        take = self.catalog.get(record.image_sha256 or "")
        passed = record.state is JobState.PASSED
        size = take.size if take is not None else await asyncio.to_thread(_size, record.image_path)
        return {
            "type": "result",
            "job": record.id,
            "uid": record.drive_uid,
            "md5": record.image_md5 or (take.md5 if take else ""),
            "ok": record.state is JobState.PASSED,
            "reason": record.reason,
            "bytes": size if record.state is JobState.PASSED else 0,
            "seconds": round(max(0.0, record.updated_at - record.created_at), 3),
            # The tool's words for a failure, for the operator's "details" on the dashboard.
            **({"detail": record.message[:MAX_NOTES]} if record.message and not passed else {}),
        }

    async def _on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        try:
            match kind:
                case "welcome":
                    log.info(
                        "welcomed by the coordinator session=%s show=%s",
                        message.get("session"),
                        message.get("show"),
                    )
                case "catalog":
                    await self.set_catalog(message.get("takes") or [])
                case "burn":
                    await self._burn_from_link(message)
                case "open":
                    await self.eject(str(message.get("uid")))
                case "cancel":
                    # An operator stopped the burn; the job ends as cancelled, its result is sent.
                    await self.cancel(str(message.get("uid")))
                case "name":
                    await self.name(str(message.get("uid")), str(message.get("name")))
                case "peer_token" | "peers":
                    if self.sharing is not None:
                        self.sharing.on_message(message)
                case "error":
                    log.warning(
                        "coordinator error code=%s message=%s",
                        message.get("code"),
                        message.get("message"),
                    )
                case _:
                    log.warning("unknown message from the coordinator type=%r", kind)
        except (ControlError, BurnError, KeyError, ValueError, TypeError) as exc:
            # A bad or impossible order must not take the link down; tell what the drive is doing.
            log.warning("coordinator message refused type=%s error=%s", kind, exc)
            uid = str(message.get("uid", ""))
            if uid in self.slots:
                self.slots[uid].sent_status = None
                await self._send_status(self.slots[uid])
            elif kind in ("burn", "open", "name", "cancel"):
                await self._send_online({"type": "drive_gone", "uid": uid})

    async def _burn_from_link(self, message: dict[str, Any]) -> None:
        if not message.get("sha256"):
            # No take in the coordinator's catalog: the drive said it holds the image (by md5).
            md5 = str(message.get("md5", "")).lower()
            found = [t for t in self.catalog.values() if t.md5 == md5]
            if not found:
                raise ValueError(f"no image with md5 {md5!r} in the cache")
            take = found[0]
        else:
            take = Take.from_payload(message)
            known = self.catalog.get(take.sha256)
            if known is not None:  # what the catalog knows (unpacked size, bmap), the order's URL
                take = dataclasses.replace(known, url=take.url or known.url)
        await self.start_burn(take, str(message["uid"]))

    async def set_catalog(self, takes: list[dict[str, Any]]) -> None:
        catalog: dict[str, Take] = {}
        for raw in takes:
            try:
                take = Take.from_payload(raw)
            except (KeyError, ValueError, TypeError) as exc:
                log.warning("catalog entry skipped error=%s", exc)
                continue
            catalog[take.sha256] = take
        self.catalog = catalog
        await asyncio.to_thread(save_catalog, self.config.state_dir, catalog)
        log.info("catalog updated takes=%d", len(catalog))
        await self._cache_changed()  # the same files may now stand for other takes
        if self.sharing is not None:
            shared = {t.sha256: t.manifest for t in catalog.values() if t.manifest}
            self._spawn(self.sharing.announce(shared), "share-announce")


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0
