"""The agent: the composition root on the Pi that owns drives, burns, cache, journal, LEDs and link.

`Agent` builds every appliance part from an `AgentConfig`, implements the control socket's
`ControlHandler` for the kiosk and `burnstand-agent status`, and speaks the coordinator's payloads
over an `AgentLink` (imported lazily, so the agent runs offline without it). Burns run from the
content-addressed cache; a take the cache lacks is fetched first. Every finished job is in the
journal before anyone hears of it, and results travel upstream only from the journal's unreported
list while the link is online, each marked reported once the link has queued it: a kiosk with no
coordinator keeps burning and syncs later, nothing lost and nothing twice. The kiosk UI is another
process, so it can die without stopping a burn.

This module holds the agent's lifecycle, its drives and the control-facing API; the burn
supervision is in `appliance.agent.burns` (burns the CLI hands over in `appliance.agent.fileburns`),
the link side in `appliance.agent.uplink`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import Callable
from typing import Any

from appliance.agent.burns import Burns
from appliance.agent.catalog import load_catalog
from appliance.agent.fileburns import FileBurns
from appliance.agent.slot import Slot, cancel_job, simulated_drive
from appliance.agent.uplink import Uplink
from appliance.control import (
    AgentStatus,
    BurnAccepted,
    ControlError,
    DriveView,
    EventListener,
    ImageView,
    QueueEntry,
)
from appliance.drives.base import BurnError, Drive, DriveKind, DriveState
from appliance.drives.uid import drive_uid
from appliance.images.cache import ImageCache
from appliance.journal import JobState, Journal
from appliance.leds import LedConfig, LedState, Panel
from appliance.swarm.service import Sharing

log = logging.getLogger("appliance.agent")

JOURNAL_FILE = "journal.sqlite3"


class Agent(Uplink, Burns, FileBurns):
    """Everything the appliance does, behind the control socket's `ControlHandler` interface."""

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        conf = self.config
        await asyncio.to_thread(conf.state_dir.mkdir, parents=True, exist_ok=True)
        self.journal = await Journal.open(conf.state_dir / JOURNAL_FILE)
        for job_id in self.journal.recovered:
            log.warning("job interrupted by a crash or power cut, recorded failed job=%s", job_id)
        self.cache = await asyncio.to_thread(ImageCache, conf.cache_dir, conf.cache_size)
        self.catalog = await asyncio.to_thread(load_catalog, conf.state_dir)
        self._credential = conf.credential or None
        if conf.share.fetch:
            self.sharing = Sharing(
                conf.share,
                self.cache,
                send=self._send_online,
                coordinator_url=conf.coordinator_url,
                headers_for=self._headers_for,
                download_timeout=conf.download_timeout,
            )
            await self.sharing.start()
        self.panel = self._make_panel()
        loop = asyncio.get_running_loop()
        drives: list[tuple[Drive, str]] = [(simulated_drive(s), s.name) for s in conf.simulated]
        for o in conf.optical:
            from appliance.drives.optical import OpticalDrive

            drives.append((OpticalDrive(o.path, drive_uid(o.path), run_as=o.run_as), o.name))
        drives += self._extra_drives
        for drive, name in drives:
            await self._add_drive(drive, name, loop)
        if conf.discover:
            self._spawn(self._watch_drives(), "discovery")
        await self._connect()
        log.info(
            "agent started drives=%d cached=%d catalog=%d",
            len(self.slots),
            self.cache.used_bytes,
            len(self.catalog),
        )

    def _make_panel(self) -> Panel:
        pins = self.config.leds
        led_config = LedConfig(
            drives=dict(pins.drives), link=pins.link, eject_buttons=dict(pins.eject_buttons)
        )
        if self._pin_factory is not None:
            return Panel(led_config, pin_factory=self._pin_factory)
        try:
            with warnings.catch_warnings():
                # gpiozero warns about each pin library it tries; one log line says it better.
                warnings.simplefilter("ignore")
                return Panel(led_config)
        except Exception as exc:
            from gpiozero.pins.mock import MockFactory

            log.info("no GPIO on this machine (%s); LEDs and buttons are simulated", exc)
            self._pin_factory = MockFactory()
            return Panel(led_config, pin_factory=self._pin_factory)

    async def close(self) -> None:
        self._closing = True
        for slot in self.slots.values():
            cancel_job(slot)
        tasks = [s.task for s in self.slots.values() if s.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.link is not None:
            with contextlib.suppress(Exception):
                await self.link.close()
        if self.sharing is not None:
            await self.sharing.close()
        if self.panel is not None:
            self.panel.close()
        if self.journal is not None:
            await self.journal.close()

    # ---- drives -------------------------------------------------------------------------------

    async def _add_drive(
        self, drive: Drive, name: str, loop: asyncio.AbstractEventLoop | None = None
    ) -> Slot:
        slot = Slot(drive, name)
        slot.state = await drive.state()
        self.slots[drive.info.uid] = slot
        if self.panel is not None:
            uid = drive.info.uid

            async def eject() -> None:
                await self.eject(uid)

            self.panel.bind_eject(drive.info.path, eject, loop or asyncio.get_running_loop())
        self._emit_drive(slot)
        return slot

    async def _remove_drive(self, uid: str) -> None:
        slot = self.slots.pop(uid, None)
        if slot is None:
            return
        cancel_job(slot)
        self._emit({"event": "drive", "drive": {**slot.view(), "state": DriveState.GONE.value}})
        await self._send_online({"type": "drive_gone", "uid": uid})

    async def _watch_drives(self) -> None:  # pragma: no cover - needs udev (tested by discovery)
        from appliance.drives.block import BlockDrive
        from appliance.drives.discovery import (
            Discovery,
            DriveAdded,
            DriveRemoved,
            DriveWatcher,
            MediaChanged,
        )
        from appliance.drives.optical import OpticalDrive

        conf = self.config
        watcher = DriveWatcher(Discovery(allow=conf.allow, deny=conf.deny))
        async for event in watcher.events():
            info = event.drive
            if isinstance(event, DriveAdded) and info.uid not in self.slots:
                drive: Drive
                if info.kind is DriveKind.OPTICAL:
                    drive = OpticalDrive(
                        info.path, info.uid, model=info.model, capabilities=info.capabilities
                    )
                else:
                    drive = BlockDrive(info.path, info.uid)
                await self._add_drive(drive, info.model or info.path)
                await self._send_hello()
            elif isinstance(event, DriveRemoved):
                await self._remove_drive(info.uid)
            elif isinstance(event, MediaChanged) and (slot := self.slots.get(info.uid)):
                await self._refresh(slot)

    async def media_changed(self, uid: str) -> None:
        """Someone changed the medium in drive `uid` by hand: tell the kiosk and the room."""
        await self._refresh(self._slot(uid))

    async def _refresh(self, slot: Slot) -> None:
        if not slot.busy:
            slot.state = await slot.drive.state()
            if slot.state is not DriveState.TRAY_OPEN:
                self._disc_taken(slot)
        self._emit_drive(slot)
        await self._send_status(slot)

    def _disc_taken(self, slot: Slot) -> None:
        """The finished disc left the drive (the tray closed empty or on a new blank): the
        result lights go out, so the next visitor is not told about the last one's disc."""
        panel, path = self.panel, slot.info.path
        if panel is not None and panel.state(path) in (LedState.PASSED, LedState.FAILED):
            panel.show(path, LedState.IDLE)

    # ---- ControlHandler ------------------------------------------------------------------------

    async def drives(self) -> list[DriveView]:
        return [s.view() for s in self.slots.values()]

    async def images(self) -> list[ImageView]:
        cache = self.cache
        # Offline, only what the cache holds can be burned; a take with a URL can be fetched.
        return [
            t.view()
            for t in self.catalog.values()
            if (cache is not None and t.sha256 in cache) or t.url
        ]

    async def queue(self) -> list[QueueEntry]:
        return [
            {
                "job_id": s.job_id,
                "drive": uid,
                "image": s.take.sha256 if s.take else "",
                "state": str(s.job.state) if s.job is not None else JobState.QUEUED.value,
            }
            for uid, s in self.slots.items()
            if s.job_id is not None
        ]

    async def jobs(self) -> list[dict[str, Any]]:
        journal = self.journal
        return [] if journal is None else [r.as_json() for r in await journal.jobs()]

    async def burn(self, image: str, drive: str) -> BurnAccepted:
        take = self.catalog.get(image.lower())
        if take is None:
            raise ControlError("not-found", f"no image {image!r} in the catalog")
        return await self.start_burn(take, drive)

    async def eject(self, drive: str) -> None:
        slot = self._slot(drive)
        if slot.busy:
            raise ControlError("busy", f"{slot.name} is burning; cancel it first")
        await slot.drive.eject()
        await self._refresh(slot)

    async def eject_all(self) -> list[str]:
        out = []
        for uid, slot in list(self.slots.items()):
            if slot.busy:
                continue
            try:
                await self.eject(uid)
            except BurnError as exc:
                log.warning("eject failed drive=%s error=%s", uid, exc)
                continue
            out.append(uid)
        return out

    async def name(self, drive: str, name: str) -> DriveView:
        slot = self._slot(drive)
        slot.name = name
        self._emit_drive(slot)
        return slot.view()

    async def status(self) -> AgentStatus:
        return self._status_now()

    def add_listener(self, listener: EventListener) -> Callable[[], None]:
        return self._listeners.add(listener)

    def status_now(self) -> AgentStatus:
        """The status, without waiting (for the metrics' scrape)."""
        return self._status_now()

    def drive_views(self) -> list[DriveView]:
        return [slot.view() for slot in self.slots.values()]
