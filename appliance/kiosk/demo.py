"""An in-memory agent for the kiosk: simulated drives and a small catalog on a controllable clock.

`DemoHandler` implements `ControlHandler` without hardware, cache or coordinator, so the kiosk
can be tried on a laptop (`burnstand-kiosk --demo`) and its tests can drive a whole burn
deterministically: time only moves when `advance()` is called (or, in the demo, when
`run_clock()` ticks it with wall time). Failures are injected per drive with `fail_next()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import tempfile
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from appliance.control import (
    AgentStatus,
    BurnAccepted,
    ControlError,
    ControlServer,
    DriveKind,
    DriveState,
    DriveView,
    EventListener,
    ImageView,
    JobView,
    Listeners,
    NoMedia,
    Phase,
    QueueEntry,
    ResultView,
    fits,
    media_for_size,
)

T = TypeVar("T")
TICK = 0.25  # virtual seconds per progress step, as real drives report 4 times a second


@dataclass
class _Failure:
    code: str
    message: str
    phase: Phase
    at_percent: float


@dataclass
class _Job:
    job_id: str
    image: ImageView
    phase: Phase = Phase.WRITE
    done: int = 0


@dataclass
class DemoDrive:
    uid: str
    path: str
    name: str
    capabilities: frozenset[str]
    capacity: int | None
    speed: float  # bytes per virtual second when writing; read-back runs twice as fast
    kind: DriveKind = DriveKind.SIMULATED
    state: DriveState = DriveState.IDLE
    job: _Job | None = None
    last_result: ResultView | None = None
    failure: _Failure | None = None

    def view(self) -> DriveView:
        job: JobView | None = None
        if self.job is not None:
            j = self.job
            total = j.image["size"]
            speed = self.speed * (2 if j.phase is Phase.VERIFY else 1)
            job = {
                "job_id": j.job_id,
                "image": j.image["sha256"],
                "image_name": j.image["name"],
                "phase": j.phase.value,
                "done": j.done,
                "total": total,
                "percent": round(100.0 * j.done / total, 1) if total else 100.0,
                "speed": speed,
                "eta": (total - j.done) / speed,
            }
        return {
            "uid": self.uid,
            "name": self.name,
            "path": self.path,
            "kind": self.kind.value,
            "capabilities": sorted(self.capabilities),
            "capacity": self.capacity,
            "state": self.state.value,
            "job": job,
            "last_result": self.last_result,
        }


def image_entry(name: str, size: int, notes: str = "") -> ImageView:
    """A catalog entry with stable made-up digests (the demo has no files behind it)."""
    sha = hashlib.sha256(name.encode()).hexdigest()
    md5 = hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()
    return {
        "sha256": sha,
        "md5": md5,
        "name": name,
        "size": size,
        "notes": notes,
        "media": media_for_size(size),
    }


def demo_catalog() -> list[ImageView]:
    return [
        image_entry(
            "Ubuntu 26.04 Desktop amd64", 5_900_000_000, "The full desktop. Needs a Blu-ray or USB."
        ),
        image_entry("Ubuntu 26.04 Server amd64", 2_600_000_000, "Install on servers; DVD-sized."),
        image_entry("Xubuntu 26.04 Minimal", 650_000_000, "Light and quick. Fits on a CD."),
    ]


def demo_drives(speed: float = 40e6) -> list[DemoDrive]:
    return [
        DemoDrive(
            "a1" * 16, "sim:left", "Left burner", frozenset({"CDR", "DVDR"}), 4_700_000_000, speed
        ),
        DemoDrive(
            "b2" * 16,
            "sim:right",
            "Right burner",
            frozenset({"CDR", "DVDR", "BDR"}),
            25_000_000_000,
            speed,
        ),
        DemoDrive(
            "c3" * 16, "sim:usb", "USB slot", frozenset({"BLOCK"}), 32_000_000_000, speed * 2
        ),
    ]


@dataclass
class DemoHandler:
    """A `ControlHandler` over `DemoDrive`s. Not thread-safe: call it on its event loop."""

    drive_list: list[DemoDrive] = field(default_factory=demo_drives)
    catalog: list[ImageView] = field(default_factory=demo_catalog)
    link: str = "online"
    coordinator: str = "http://127.0.0.1:8080"
    cache_used: int = 9_150_000_000
    cache_max: int = 32_000_000_000
    version: str = "0.1.0"
    language: str = "en"  # the kiosk's default language, as an agent's config sets it
    reload_after: float | None = None  # virtual seconds until an ejected tray gets a new blank
    _listeners: Listeners = field(default_factory=Listeners)
    _job_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _ejected_at: dict[str, float] = field(default_factory=dict)
    now: float = 0.0

    # --- ControlHandler --------------------------------------------------------------------

    async def drives(self) -> list[DriveView]:
        return [d.view() for d in self.drive_list]

    async def images(self) -> list[ImageView]:
        return list(self.catalog)

    async def queue(self) -> list[QueueEntry]:
        return [
            {
                "job_id": d.job.job_id,
                "drive": d.uid,
                "image": d.job.image["sha256"],
                "state": "writing" if d.job.phase is Phase.WRITE else "verifying",
            }
            for d in self.drive_list
            if d.job is not None
        ]

    async def jobs(self) -> list[dict[str, Any]]:
        return []  # the demo keeps no journal

    async def burn(self, image: str, drive: str) -> BurnAccepted:
        img = self._image(image)
        target = self._pick(img) if drive == "auto" else self._drive(drive)
        if target.job is not None:
            raise ControlError("busy", f"{target.name} is busy with another disc")
        if target.state is not DriveState.IDLE:
            raise NoMedia(f"Put a blank disc in {target.name} and close the tray")
        if not fits(target.view(), img):
            raise ControlError("no-fit", f"{img['name']} does not fit in {target.name}")
        target.job = _Job(f"job-{next(self._job_ids)}", img)
        target.state = DriveState.BUSY
        target.last_result = None
        self._emit_drive(target)
        return {"job_id": target.job.job_id, "drive": target.uid}

    async def cancel(self, drive: str) -> None:
        d = self._drive(drive)
        if d.job is None:
            raise ControlError("not-burning", f"nothing is burning in {d.name}")
        self._finish(d, "cancelled", "The burn was cancelled by an operator.")

    async def eject(self, drive: str) -> None:
        d = self._drive(drive)
        if d.job is not None:
            raise ControlError("busy", f"{d.name} is burning; cancel it first")
        self._eject(d)

    async def eject_all(self) -> list[str]:
        out = []
        for d in self.drive_list:
            if d.job is None:
                self._eject(d)
                out.append(d.uid)
        return out

    async def name(self, drive: str, name: str) -> DriveView:
        d = self._drive(drive)
        d.name = name
        self._emit_drive(d)
        return d.view()

    async def status(self) -> AgentStatus:
        return self._status_now()

    def add_listener(self, listener: EventListener) -> Callable[[], None]:
        return self._listeners.add(listener)

    # --- test and demo controls ------------------------------------------------------------

    def fail_next(
        self,
        drive: str,
        code: str,
        message: str,
        *,
        phase: Phase = Phase.WRITE,
        at_percent: float = 50.0,
    ) -> None:
        self._drive(drive).failure = _Failure(code, message, phase, at_percent)

    def load_media(self, drive: str) -> None:
        """A visitor put a blank in and closed the tray."""
        d = self._drive(drive)
        d.state = DriveState.IDLE
        self._ejected_at.pop(d.uid, None)
        self._emit_drive(d)

    def set_link(self, link: str) -> None:
        self.link = link
        self._emit({"event": "status", "status": self._status_now()})

    async def advance(self, seconds: float) -> None:
        """Move virtual time on by `seconds`, one progress tick at a time."""
        for _ in range(max(1, round(seconds / TICK))):
            self.now += TICK
            for d in self.drive_list:
                if d.job is not None:
                    self._step(d)
                elif (
                    self.reload_after is not None
                    and d.uid in self._ejected_at
                    and self.now - self._ejected_at[d.uid] >= self.reload_after
                ):
                    self.load_media(d.uid)
            await asyncio.sleep(0)  # let the socket writers run between ticks

    async def run_clock(self, interval: float = TICK) -> None:
        """Tick with wall time until cancelled (the interactive demo)."""
        while True:
            await asyncio.sleep(interval)
            await self.advance(interval)

    # --- internals -------------------------------------------------------------------------

    def _status_now(self) -> AgentStatus:
        return {
            "version": self.version,
            "link": self.link,
            "coordinator": self.coordinator,
            "cache_used": self.cache_used,
            "cache_max": self.cache_max,
            "drives": len(self.drive_list),
            "language": self.language,
        }

    def _image(self, sha256: str) -> ImageView:
        for img in self.catalog:
            if img["sha256"] == sha256.lower():
                return img
        raise ControlError("not-found", f"no image {sha256!r} in the catalog")

    def _drive(self, uid: str) -> DemoDrive:
        for d in self.drive_list:
            if d.uid == uid:
                return d
        raise ControlError("not-found", f"no drive {uid!r} on this kiosk")

    def _pick(self, img: ImageView) -> DemoDrive:
        free = [
            d
            for d in self.drive_list
            if d.job is None and d.state is DriveState.IDLE and fits(d.view(), img)
        ]
        if not free:
            raise ControlError("no-drive", "No free burner can take this image right now")
        # The smallest medium that fits, so a CD image does not use up a Blu-ray or a stick.
        return min(free, key=lambda d: (d.capacity or float("inf"), len(d.capabilities)))

    def _eject(self, d: DemoDrive) -> None:
        d.state = DriveState.TRAY_OPEN
        self._ejected_at[d.uid] = self.now
        self._emit_drive(d)

    def _step(self, d: DemoDrive) -> None:
        job = d.job
        assert job is not None  # noqa: S101 - only called for drives with a job
        total = job.image["size"]
        speed = d.speed * (2 if job.phase is Phase.VERIFY else 1)
        job.done = min(total, job.done + int(speed * TICK))
        f = d.failure
        if f is not None and f.phase is job.phase and 100.0 * job.done / total >= f.at_percent:
            d.failure = None
            self._finish(d, f.code, f.message)
            return
        view = d.view()
        self._emit({"event": "progress", "drive": d.uid, "job": view["job"]})
        if job.done >= total:
            if job.phase is Phase.WRITE:
                job.phase, job.done = Phase.VERIFY, 0
                self._emit_drive(d)
            else:
                self._finish(d, None, "Written and verified.")

    def _finish(self, d: DemoDrive, reason: str | None, message: str) -> None:
        job = d.job
        assert job is not None  # noqa: S101 - only called for drives with a job
        result: ResultView = {
            "job_id": job.job_id,
            "image": job.image["sha256"],
            "image_name": job.image["name"],
            "ok": reason is None,
            "reason": reason,
            "message": message,
        }
        d.job = None
        d.last_result = result
        # Like the real pipeline: the disc comes out at the end, good or bad.
        d.state = DriveState.TRAY_OPEN
        self._ejected_at[d.uid] = self.now
        self._emit({"event": "finished", "drive": d.uid, "result": result})
        self._emit_drive(d)

    def _emit_drive(self, d: DemoDrive) -> None:
        self._emit({"event": "drive", "drive": d.view()})

    def _emit(self, event: dict[str, object]) -> None:
        self._listeners.emit(event)


class DemoAgent:
    """A `DemoHandler` served on a real control socket from a background thread with its own
    event loop, for callers that do not own a loop: `burnstand-kiosk --demo`, snapshot tests.
    `call()` runs a coroutine function against the handler on that loop and waits for it."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        handler: DemoHandler | None = None,
        realtime: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="burnstand-demo-")
            path = Path(self._tmp.name) / "agent.sock"
        self.path = path
        self.handler = handler or DemoHandler(reload_after=5.0 if realtime else None)
        self.realtime = realtime
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: ControlServer | None = None
        self._clock: asyncio.Task[None] | None = None

    def __enter__(self) -> DemoAgent:
        self._thread.start()
        self._submit(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _submit(self, coro: Awaitable[T]) -> T:
        async def run() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(self.timeout)

    async def _start(self) -> None:
        self._server = ControlServer(self.handler, self.path)
        await self._server.start()
        if self.realtime:
            self._clock = asyncio.create_task(self.handler.run_clock())

    async def _stop(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock
        if self._server is not None:
            await self._server.close()
            self._server = None

    def call(self, fn: Callable[[DemoHandler], Awaitable[T]]) -> T:
        return self._submit(fn(self.handler))

    def stop(self) -> None:
        """Stop serving (the kiosk sees the agent vanish); `restart()` brings it back."""
        if self._thread.is_alive():
            self._submit(self._stop())

    def restart(self) -> None:
        self._submit(self._start())

    def close(self) -> None:
        self.stop()
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(self.timeout)
        if not self._loop.is_running():
            self._loop.close()
        if self._tmp is not None:
            self._tmp.cleanup()
