"""The agent: the composition root on the Pi that owns drives, burns, cache, journal, LEDs and link.

`Agent` builds every appliance part from an `AgentConfig`, implements the control socket's
`ControlHandler` for the kiosk and `burnstand-agent status`, and speaks the coordinator's payloads
over an `AgentLink` (imported lazily, so the agent runs offline without it). Burns run from the
content-addressed cache; a take the cache lacks is fetched first. Every finished job is in the
journal before anyone hears of it, and results travel upstream only from the journal's unreported
list while the link is online, each marked reported once the link has queued it: a kiosk with no
coordinator keeps burning and syncs later, nothing lost and nothing twice. The kiosk UI is another
process, so it can die without stopping a burn. `run(config)` is `burnstand-agent run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import itertools
import json
import logging
import os
import signal
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp import web

from appliance import __version__
from appliance.burn.job import BurnJob, JobProgress, JobResult, JobStateChanged
from appliance.config import AgentConfig, SimulatedDriveConfig
from appliance.control import (
    AgentStatus,
    BurnAccepted,
    ControlError,
    ControlServer,
    DriveView,
    EventListener,
    ImageView,
    JobView,
    Listeners,
    QueueEntry,
    ResultView,
    fits,
    media_for_size,
)
from appliance.drives.base import (
    BurnError,
    Drive,
    DriveInfo,
    DriveKind,
    DriveState,
    NoMedia,
    Phase,
    SourceImage,
)
from appliance.drives.simulated import SimulatedDrive
from appliance.drives.targets import TargetRefused, make_drive
from appliance.drives.uid import drive_uid
from appliance.fileburn import FileBurn, run_file_burn
from appliance.images.cache import DownloadFailed, ImageCache
from appliance.journal import JobRecord, JobState, Journal
from appliance.leds import LedConfig, LedState, Panel
from appliance.leds import LinkState as LedLink
from appliance.metrics import AgentMetrics, start_server
from wire.agentmsg import MAX_NOTES

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.json"
# The burn protocol's names for what a drive writes (seed 004's CAP words).
_WIRE_CAPS = {"CDR": "BURNCDR", "DVDR": "BURNDVDR", "BDR": "BURNBDR", "BLOCK": "BLOCK"}
JOURNAL_FILE = "journal.sqlite3"
# What a drive's job id reads while `burnstand-agent burn` runs a file burn on it.
CLI_JOB = "cli"
FETCH_FAILED = "download-failed"


# --- the link, as the agent needs it ------------------------------------------------------------


class LinkState(enum.StrEnum):
    """Mirrors appliance.link.LinkState so the agent works (offline) without that module."""

    OFFLINE = "offline"
    CONNECTING = "connecting"
    ONLINE = "online"
    PENDING = "pending"
    # Enrollment refused for good (rejected by a show admin, or the code was spent).
    REJECTED = "rejected"


class Link(Protocol):
    @property
    def state(self) -> Any: ...

    async def start(self) -> None: ...

    async def send(self, payload: dict[str, Any]) -> None: ...

    async def close(self, *, formal: bool = True) -> None: ...


LinkFactory = Callable[..., Link]
"""Called like `AgentLink(url, credential, on_message=..., on_state=..., session=...)`."""


def _default_link_factory() -> LinkFactory | None:
    try:
        from appliance.link import AgentLink  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        log.warning("appliance.link is not available; the agent runs offline")
        return None
    return AgentLink  # type: ignore[no-any-return,unused-ignore]


# --- per drive state ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Take:
    """A catalog entry: what the coordinator's `catalog` and `burn` messages describe."""

    sha256: str
    md5: str
    size: int
    name: str
    notes: str = ""
    url: str = ""
    extracted_size: int | None = None  # a compressed image: what it unpacks to
    extracted_sha256: str | None = None
    content: str | None = None  # the catalog's `media`: disk, iso, hybrid, unknown

    @classmethod
    def from_payload(cls, raw: dict[str, Any]) -> Take:
        sha = _sha256(raw["sha256"])
        size = int(raw["size"])
        if size <= 0:
            raise ValueError(f"size must be positive, not {size}")
        return cls(
            sha256=sha,
            md5=str(raw.get("md5") or "").lower(),
            size=size,
            name=str(raw.get("name") or sha[:12]),
            notes=str(raw.get("notes") or ""),
            url=str(raw.get("url") or ""),
            extracted_size=_positive_or_none(raw.get("extracted_size")),
            extracted_sha256=(
                None if raw.get("extracted_sha256") is None else _sha256(raw["extracted_sha256"])
            ),
            # "media" from the coordinator's catalog, "content" from the agent's saved copy.
            content=str(raw.get("media") or raw.get("content") or "") or None,
        )

    def view(self) -> ImageView:
        unpacked = self.extracted_size or self.size
        return {
            "sha256": self.sha256,
            "md5": self.md5,
            "name": self.name,
            "size": self.size,
            "notes": self.notes,
            "media": media_for_size(unpacked, self.content),
            "extracted_size": self.extracted_size,
            "content": self.content,
        }


def _positive_or_none(value: Any) -> int | None:
    if value is None:
        return None
    n = int(value)
    if n <= 0:
        raise ValueError(f"extracted_size must be positive, not {n}")
    return n


def _sha256(value: Any) -> str:
    sha = str(value).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ValueError(f"not a SHA-256: {sha!r}")
    return sha


@dataclass(eq=False)
class _Slot:
    drive: Drive
    name: str
    state: DriveState = DriveState.IDLE
    job: BurnJob | None = None
    take: Take | None = None
    job_id: str | None = None  # set from acceptance on, before the BurnJob exists (fetching)
    job_view: JobView | None = None
    last_result: ResultView | None = None
    sent_status: str | None = None
    task: asyncio.Task[None] | None = None

    @property
    def info(self) -> DriveInfo:
        return self.drive.info

    @property
    def busy(self) -> bool:
        return self.job_id is not None

    def view(self) -> DriveView:
        info = self.info
        return {
            "uid": info.uid,
            "name": self.name,
            "path": info.path,
            "kind": info.kind.value,
            "capabilities": sorted(info.capabilities),
            "capacity": info.capacity,
            "state": DriveState.BUSY.value if self.busy else self.state.value,
            "job": self.job_view,
            "last_result": self.last_result,
        }


def _proto_status(slot: _Slot) -> str:
    """The burn protocol's STATUS word for a drive."""
    if slot.job_view is not None:
        view = slot.job_view
        overall = view["percent"] / 2 + (50 if view["phase"] == Phase.VERIFY.value else 0)
        return f"{int(overall)}%"
    if slot.busy:
        return "0%"
    if slot.state is DriveState.TRAY_OPEN:
        if slot.last_result is not None:
            return "MD5PASS" if slot.last_result["ok"] else "MD5FAIL"
        return "TRAYOPEN"
    if slot.state in (DriveState.EMPTY, DriveState.GONE):
        return "EMPTY"
    return "IDLE"


def _cancel(slot: _Slot) -> None:
    if slot.task is not None:
        slot.task.cancel()


def _simulated_drive(conf: SimulatedDriveConfig) -> SimulatedDrive:
    return SimulatedDrive(
        drive_uid(conf.path),
        conf.path,
        speed=conf.speed,
        capacity=conf.capacity,
        capabilities=conf.capabilities,
    )


# --- the agent ---------------------------------------------------------------------------------


class Agent:
    """Everything the appliance does, behind the control socket's `ControlHandler` interface."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        drives: list[tuple[Drive, str]] | None = None,
        link_factory: LinkFactory | None = None,
        pin_factory: Any = None,
        enroll_interval: tuple[float, float] = (5.0, 30.0),
    ) -> None:
        self.config = config
        # (first, longest) seconds between enrollment polls; tests shorten them.
        self._enroll_interval = enroll_interval
        self.version = __version__
        self._extra_drives = list(drives or [])
        self._link_factory = link_factory
        self._pin_factory = pin_factory
        self.slots: dict[str, _Slot] = {}
        self.catalog: dict[str, Take] = {}
        # What the last hello said of the cache (md5s held, bytes used): the room dispatches
        # by it and the dashboard shows it, so a change is announced at once.
        self._sent_cache: tuple[frozenset[str], int] | None = None
        self.link: Link | None = None
        self.journal: Journal | None = None
        self.cache: ImageCache | None = None
        self.panel: Panel | None = None
        self._listeners = Listeners()
        self._http: aiohttp.ClientSession | None = None
        self._http_auth: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._report_lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._link_state = LinkState.OFFLINE
        self._closing = False

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        conf = self.config
        await asyncio.to_thread(conf.state_dir.mkdir, parents=True, exist_ok=True)
        self.journal = await Journal.open(conf.state_dir / JOURNAL_FILE)
        for job_id in self.journal.recovered:
            log.warning("job interrupted by a crash or power cut, recorded failed job=%s", job_id)
        self.cache = await asyncio.to_thread(ImageCache, conf.cache_dir, conf.cache_size)
        self.catalog = await asyncio.to_thread(self._load_catalog)
        self._http = aiohttp.ClientSession()
        if conf.credential:
            self._http_auth = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {conf.credential}"}
            )
        self.panel = self._make_panel()
        loop = asyncio.get_running_loop()
        drives: list[tuple[Drive, str]] = [(_simulated_drive(s), s.name) for s in conf.simulated]
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
        self._http_auth = aiohttp.ClientSession(headers={"Authorization": f"Bearer {credential}"})
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

    async def close(self) -> None:
        self._closing = True
        for slot in self.slots.values():
            _cancel(slot)
        tasks = [s.task for s in self.slots.values() if s.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.link is not None:
            with contextlib.suppress(Exception):
                await self.link.close()
        for http in (self._http, self._http_auth):
            if http is not None:
                await http.close()
        if self.panel is not None:
            self.panel.close()
        if self.journal is not None:
            await self.journal.close()

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("agent task failed task=%s", name)

        task = asyncio.create_task(guarded(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- drives -------------------------------------------------------------------------------

    async def _add_drive(
        self, drive: Drive, name: str, loop: asyncio.AbstractEventLoop | None = None
    ) -> _Slot:
        slot = _Slot(drive, name)
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
        _cancel(slot)
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

    async def _refresh(self, slot: _Slot) -> None:
        if not slot.busy:
            slot.state = await slot.drive.state()
            if slot.state is not DriveState.TRAY_OPEN:
                self._disc_taken(slot)
        self._emit_drive(slot)
        await self._send_status(slot)

    def _disc_taken(self, slot: _Slot) -> None:
        """The finished disc left the drive (the tray closed empty or on a new blank): the
        result lights go out, so the next visitor is not told about the last one's disc."""
        panel, path = self.panel, slot.info.path
        if panel is not None and panel.state(path) in (LedState.PASSED, LedState.FAILED):
            panel.show(path, LedState.IDLE)

    def _slot(self, uid: str) -> _Slot:
        slot = self.slots.get(uid)
        if slot is None:
            raise ControlError("not-found", f"no drive {uid!r} on this kiosk")
        return slot

    def _pick(self, take: Take) -> _Slot:
        image = take.view()
        free = [
            s
            for s in self.slots.values()
            if not s.busy
            and s.state in (DriveState.IDLE, DriveState.TRAY_OPEN)
            and fits(s.view(), image)
        ]
        if not free:
            raise ControlError("no-drive", "No free burner can take this image right now")
        # The smallest medium that fits, so a CD image does not use up a Blu-ray or a stick.
        return min(free, key=lambda s: (s.info.capacity or float("inf"), len(s.info.capabilities)))

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

    async def start_burn(self, take: Take, drive: str) -> BurnAccepted:
        """Claim a drive for `take` now and run fetch → write → verify → eject in a task."""
        slot = self._pick(take) if drive == "auto" else self._slot(drive)
        if slot.busy:
            raise ControlError("busy", f"{slot.name} is busy with another disc")
        if not fits(slot.view(), take.view()):
            raise ControlError("no-fit", f"{take.name} does not fit in {slot.name}")
        cache = self.cache
        if cache is None or (take.sha256 not in cache and not take.url):
            raise ControlError("not-found", f"{take.name} is not in the cache and has no URL")
        state = await slot.drive.state()
        if state is DriveState.TRAY_OPEN:
            # What a real burner does when a job starts: pull the tray in (the disc is there).
            await slot.drive.close_tray()
            state = await slot.drive.state()
        if state is not DriveState.IDLE:
            slot.state = state
            raise NoMedia(f"Put a blank disc in {slot.name} and close the tray")
        slot.state = state
        job_id = uuid.uuid4().hex
        slot.job_id, slot.take, slot.last_result, slot.job_view = job_id, take, None, None
        cache.pin(take.sha256)
        slot.task = asyncio.create_task(self._run_job(slot, take, job_id), name=f"job-{job_id}")
        self._emit_drive(slot)
        await self._send_status(slot)
        return {"job_id": job_id, "drive": slot.info.uid}

    async def cancel(self, drive: str) -> None:
        slot = self._slot(drive)
        if slot.task is None or not slot.busy:
            raise ControlError("not-burning", f"nothing is burning in {slot.name}")
        task = slot.task
        _cancel(slot)
        with contextlib.suppress(asyncio.CancelledError):
            await task

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

    def _status_now(self) -> AgentStatus:
        cache = self.cache
        return {
            "version": self.version,
            "link": self._link_state.value,
            "coordinator": self.config.coordinator_url or "",
            "cache_used": cache.used_bytes if cache is not None else 0,
            "cache_max": self.config.cache_size,
            "drives": len(self.slots),
            "language": self.config.kiosk_language,
        }

    # ---- file burns from the CLI ---------------------------------------------------------------

    async def burn_file(
        self, image: str, targets: list[Any], options: dict[str, Any], emit: EventListener
    ) -> list[dict[str, Any]]:
        """`burnstand-agent burn --image FILE` on this kiosk, run here with this journal. A target
        that is one of this agent's drives is taken like a kiosk burn takes it (refused while
        busy, busy while burning); any other target goes through the CLI's target checks."""
        burn = await asyncio.to_thread(FileBurn.from_request, image, targets, options)
        journal = self.journal
        assert journal is not None  # noqa: S101 - set in start()
        ours = {s.info.path: s for s in self.slots.values()}
        drives: list[Drive] = []
        claimed: list[_Slot] = []
        for target in burn.targets:
            slot = ours.get(target)
            if slot is not None:
                drives.append(slot.drive)
                claimed.append(slot)
                continue
            try:
                drives.append(
                    await asyncio.to_thread(make_drive, target, partition_ok=burn.partition_ok)
                )
            except TargetRefused as exc:
                raise ControlError("bad-target", str(exc)) from exc
        busy = [s.name for s in claimed if s.busy]
        if busy:
            raise ControlError("busy", f"{', '.join(busy)} is busy with another burn")
        for slot in claimed:
            slot.job_id, slot.take, slot.last_result, slot.job_view = CLI_JOB, None, None, None
            self._emit_drive(slot)
        try:
            return await run_file_burn(burn, drives, journal, emit)
        finally:
            for slot in claimed:
                slot.job_id = None
                if not self._closing:
                    with contextlib.suppress(BurnError):
                        await self._refresh(slot)
            self._spawn(self.report_results(), "report")

    # ---- events -------------------------------------------------------------------------------

    def _emit(self, event: dict[str, Any]) -> None:
        self._listeners.emit(event)

    def _emit_drive(self, slot: _Slot) -> None:
        self._emit({"event": "drive", "drive": slot.view()})

    # ---- jobs ---------------------------------------------------------------------------------

    async def _source(self, take: Take) -> SourceImage:
        cache = self.cache
        assert cache is not None  # noqa: S101 - set in start()
        source = await cache.get(take.sha256)
        if source is None:
            # A take uploaded to the coordinator names its image store by a relative URL.
            url = urljoin(self.config.coordinator_url or "", take.url)
            session = self._session_for(url)
            source = await cache.fetch(url, take.sha256, take.size, session, take.name)
        return dataclasses.replace(
            source,
            md5=take.md5 or None,
            name=take.name,
            extracted_size=take.extracted_size,
            extracted_sha256=take.extracted_sha256,
        )

    def _session_for(self, url: str) -> aiohttp.ClientSession:
        """The coordinator's own URLs get the appliance credential; nobody else does."""
        assert self._http is not None  # noqa: S101 - set in start()
        base = self.config.coordinator_url
        if (
            self._http_auth is not None
            and base is not None
            and urlsplit(url).netloc == urlsplit(base).netloc
        ):
            return self._http_auth
        return self._http

    async def _run_job(self, slot: _Slot, take: Take, job_id: str) -> None:
        cache, journal = self.cache, self.journal
        assert cache is not None  # noqa: S101 - set in start()
        assert journal is not None  # noqa: S101 - set in start()
        started = time.monotonic()
        result: ResultView
        try:
            try:
                source = await self._source(take)
            except asyncio.CancelledError:
                result = await self._cancelled_early(job_id, slot, take)
            except (DownloadFailed, BurnError, aiohttp.ClientError, ValueError) as exc:
                reason = exc.code if isinstance(exc, BurnError) else FETCH_FAILED
                log.warning(
                    "image fetch failed job=%s sha256=%s error=%s", job_id, take.sha256, exc
                )
                # Journaled like any failed job, so the coordinator hears about it exactly once.
                await self._journal_unrun(job_id, slot, take, JobState.FAILED, reason, str(exc))
                result = self._result_view(job_id, take, False, reason, f"Could not get it: {exc}")
            else:
                await self._cache_changed()  # a download (or an eviction) changed what it holds
                job = BurnJob(slot.drive, source, journal=journal, job_id=job_id)
                slot.job = job
                job.add_listener(lambda event: self._on_job_event(slot, event))
                try:
                    # Run in this task, so cancelling the slot's task cancels the burn itself
                    # and the job journals the cancel before it ends.
                    outcome = await job.run()
                except asyncio.CancelledError:
                    if job.result is None:
                        result = await self._cancelled_early(job_id, slot, take)
                    else:
                        result = self._result_view(
                            job_id, take, False, job.result.reason, job.result.message
                        )
                else:
                    result = self._result_view(
                        job_id, take, outcome.ok, outcome.reason, outcome.message
                    )
        finally:
            cache.unpin(take.sha256)
            slot.job, slot.job_id, slot.job_view, slot.task = None, None, None, None
            if not self._closing:
                with contextlib.suppress(BurnError):
                    slot.state = await slot.drive.state()
        slot.last_result = result
        log.info(
            "job done job=%s drive=%s ok=%s seconds=%.1f",
            job_id,
            slot.info.uid,
            result["ok"],
            time.monotonic() - started,
        )
        if self.panel is not None:
            self.panel.show(slot.info.path, LedState.PASSED if result["ok"] else LedState.FAILED)
        self._emit({"event": "finished", "drive": slot.info.uid, "result": result})
        self._emit_drive(slot)
        await self._send_status(slot)
        self._spawn(self.report_results(), "report")

    async def _cancelled_early(self, job_id: str, slot: _Slot, take: Take) -> ResultView:
        """Cancelled before the first byte: still a job the kiosk and the coordinator hear of."""
        journal = self.journal
        assert journal is not None  # noqa: S101 - set in start()
        why = "cancelled before writing"
        try:
            record = await journal.get(job_id)
            if record is None:
                await self._journal_unrun(job_id, slot, take, JobState.CANCELLED, "cancelled", why)
            elif record.state is JobState.QUEUED:
                await journal.transition(job_id, JobState.CANCELLED, "cancelled", why)
        except Exception as exc:
            # The kiosk still hears how its job ended; only the record is missing.
            log.warning("journal refused a cancelled job job=%s error=%r", job_id, exc)
        return self._result_view(
            job_id, take, False, "cancelled", "The burn was cancelled; the disc is blank."
        )

    async def _journal_unrun(
        self, job_id: str, slot: _Slot, take: Take, state: JobState, reason: str, message: str
    ) -> None:
        """Journal a job that ended before its BurnJob ran, so it is reported like any other.
        A journal that refuses is logged: the job's end still reaches the kiosk."""
        journal = self.journal
        assert journal is not None  # noqa: S101 - set in start()
        try:
            await journal.create(
                job_id, slot.info.uid, slot.info.path, take.url or take.name, take.sha256, take.md5
            )
            await journal.transition(job_id, state, reason, message)
        except Exception as exc:
            log.warning("journal refused a job that never ran job=%s error=%r", job_id, exc)

    @staticmethod
    def _result_view(
        job_id: str, take: Take, ok: bool, reason: str | None, message: str
    ) -> ResultView:
        return {
            "job_id": job_id,
            "image": take.sha256,
            "image_name": take.name,
            "ok": ok,
            "reason": reason,
            "message": message,
        }

    def _on_job_event(self, slot: _Slot, event: JobProgress | JobStateChanged | JobResult) -> None:
        if isinstance(event, JobProgress):
            take = slot.take
            slot.job_view = {
                "job_id": event.job_id,
                "image": take.sha256 if take else "",
                "image_name": take.name if take else "",
                "phase": event.phase.value,
                "done": event.done,
                "total": event.total,
                "percent": round(event.percent, 1),
                "speed": event.speed,
                "eta": event.eta,
            }
            self._emit({"event": "progress", "drive": slot.info.uid, "job": slot.job_view})
            self._spawn(self._send_status(slot), "status")
        elif isinstance(event, JobStateChanged) and self.panel is not None:
            leds = {JobState.WRITING: LedState.WRITING, JobState.VERIFYING: LedState.VERIFYING}
            if event.state in leds:
                self.panel.show(slot.info.path, leds[event.state])

    # ---- link ---------------------------------------------------------------------------------

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
            slot.sent_status = _proto_status(slot)
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

    async def _send_status(self, slot: _Slot) -> None:
        status = _proto_status(slot)
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
            if known is not None and not take.url:
                take = known
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
        await asyncio.to_thread(self._save_catalog, catalog)
        log.info("catalog updated takes=%d", len(catalog))
        await self._cache_changed()  # the same files may now stand for other takes

    def _save_catalog(self, catalog: dict[str, Take]) -> None:
        path = self.config.state_dir / CATALOG_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([dataclasses.asdict(t) for t in catalog.values()], indent=1))
        os.replace(tmp, path)

    def _load_catalog(self) -> dict[str, Take]:
        path = self.config.state_dir / CATALOG_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("saved catalog unreadable, starting empty path=%s error=%s", path, exc)
            return {}
        out: dict[str, Take] = {}
        for item in raw if isinstance(raw, list) else []:
            try:
                take = Take.from_payload(item)
            except (KeyError, ValueError, TypeError, AttributeError):
                continue
            out[take.sha256] = take
        return out


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


@dataclass
class Running:
    """An agent serving its control socket; `stop()` ends both."""

    agent: Agent
    server: ControlServer
    extra: list[asyncio.Task[Any]] = field(default_factory=list)
    metrics: web.AppRunner | None = None

    async def stop(self) -> None:
        for task in self.extra:
            task.cancel()
        await asyncio.gather(*self.extra, return_exceptions=True)
        if self.metrics is not None:
            await self.metrics.cleanup()
        await self.server.close()
        await self.agent.close()


async def serve(config: AgentConfig, *, socket: Path | None = None, **agent_args: Any) -> Running:
    """Start an agent and its control socket (the kiosk can connect once this returns)."""
    agent = Agent(config, **agent_args)
    await agent.start()
    server = ControlServer(agent, socket or config.socket, file_burner=agent)
    try:
        await server.start()
    except BaseException:
        await agent.close()
        raise
    running = Running(agent, server)
    if config.metrics_port is not None:
        try:
            running.metrics = await start_server(AgentMetrics(agent), config.metrics_port)
        except BaseException:
            await running.stop()
            raise
    return running


async def run(config: AgentConfig, *, socket: Path | None = None) -> None:
    """`burnstand-agent run`: serve until SIGINT/SIGTERM, telling systemd how it goes."""
    from plumbing import sdnotify

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running = await serve(config, socket=socket)
    running.extra.append(asyncio.create_task(sdnotify.watchdog_loop(lambda: True)))
    try:
        sdnotify.ready(f"{len(running.agent.slots)} drive(s)")
    except sdnotify.NotifyError as exc:
        log.warning("cannot notify systemd error=%s", exc)
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(sdnotify.NotifyError):
            sdnotify.stopping()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await running.stop()
