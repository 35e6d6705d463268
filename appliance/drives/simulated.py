"""Simulated drive: the same `Drive` interface with no hardware, for the demo and the UI tests.

It "writes" at a configurable virtual speed, driven by an injectable clock so a test can run a
whole burn without waiting, keeps a tray state, and can be told to fail the way real drives do:
a write error at some percent, a verify mismatch, no media, or being pulled mid-write.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from appliance.drives.base import (
    BurnError,
    DriveInfo,
    DriveKind,
    DrivePulled,
    DriveState,
    MediaTooSmall,
    NoMedia,
    Phase,
    Progress,
    SourceImage,
    VerifyMismatch,
)

TICK = 0.25  # virtual seconds between progress events: 4 per second, as real drives do


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    """Wall time: the demo uses it so a simulated burn looks like a real one."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class VirtualClock:
    """Time that advances only when someone sleeps; each sleep still yields to the loop once,
    so other tasks (a UI, a cancelling test) get to run between progress events."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        self._now += max(0.0, seconds)
        await asyncio.sleep(0)


@dataclass
class SimFailures:
    """What should go wrong on the next jobs. Percentages are of the image size."""

    fail_write_at: float | None = None  # percent at which the write raises `write_error`
    write_error: type[BurnError] = BurnError
    pulled_at: float | None = None  # percent at which the drive disappears (DrivePulled)
    verify_mismatch_at: float | None = None  # percent of the read-back where bytes differ


class SimulatedDrive:
    """A pretend burner. `speed` is bytes per virtual second for writing (reading is 2x)."""

    def __init__(
        self,
        uid: str,
        path: str = "sim:0",
        *,
        speed: float = 20e6,
        capacity: int | None = 4_700_000_000,
        kind: DriveKind = DriveKind.SIMULATED,
        capabilities: frozenset[str] = frozenset({"CDR", "DVDR"}),
        clock: Clock | None = None,
        failures: SimFailures | None = None,
        media: bool = True,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._info = DriveInfo(
            uid=uid, path=path, kind=kind, capabilities=capabilities, capacity=capacity
        )
        self.speed = speed
        self.clock: Clock = clock or RealClock()
        self.failures = failures or SimFailures()
        self.media = media
        self.tray_open = False
        self.pulled = False
        self.busy = False
        self.written: str | None = None  # name of the image last fully written
        # A bad blank in the tray: it takes the write but reads back wrong (a scratched disc).
        self.bad_disc = False

    @property
    def info(self) -> DriveInfo:
        return self._info

    def write(self, image: SourceImage) -> AsyncIterator[Progress]:
        return self._phase(Phase.WRITE, image, self.speed)

    def verify(self, image: SourceImage) -> AsyncIterator[Progress]:
        return self._phase(Phase.VERIFY, image, self.speed * 2)

    async def eject(self) -> None:
        self._check_present()
        self.tray_open = True

    async def close_tray(self) -> None:
        self._check_present()
        self.tray_open = False

    async def swap_disc(self, *, bad: bool = False) -> None:
        """A visitor takes the disc out and puts a blank in (`bad`: one that will fail its
        verify), then closes the tray."""
        self._check_present()
        self.media, self.written, self.bad_disc = True, None, bad
        self.tray_open = False

    async def state(self) -> DriveState:
        if self.pulled:
            return DriveState.GONE
        if self.busy:
            return DriveState.BUSY
        if self.tray_open:
            return DriveState.TRAY_OPEN
        return DriveState.IDLE if self.media else DriveState.EMPTY

    def _check_present(self) -> None:
        if self.pulled:
            raise DrivePulled(f"{self._info.path} is gone")

    async def _phase(
        self, phase: Phase, image: SourceImage, speed: float
    ) -> AsyncIterator[Progress]:
        self._check_present()
        if self.tray_open or not self.media:
            raise NoMedia(f"no media in {self._info.path}")
        cap = self._info.capacity
        if phase is Phase.WRITE and cap is not None and cap < image.size:
            raise MediaTooSmall(
                f"{self._info.path} holds {cap} bytes, the image needs {image.size}"
            )
        f = self.failures
        if phase is Phase.WRITE:
            self.written = None
            stops = [(f.fail_write_at, "write"), (f.pulled_at, "pulled")]
        else:
            if self.written != (image.name or str(image.path)):
                raise VerifyMismatch(f"{self._info.path} does not hold this image")
            mismatch_at = 50.0 if self.bad_disc else f.verify_mismatch_at
            stops = [(mismatch_at, "mismatch")]
        total = image.size
        start = self.clock.now()
        done = 0
        self.busy = True
        try:
            while True:
                reached = 100.0 * done / total if total else 100.0
                for at, what in stops:
                    if at is not None and reached >= at:
                        self._fail(what, done)
                if done >= total:
                    break
                await self.clock.sleep(TICK)
                done = min(total, done + max(1, int(speed * TICK)))
                elapsed = max(self.clock.now() - start, 1e-9)
                rate = done / elapsed
                yield Progress(phase, done, total, rate, (total - done) / rate)
        finally:
            self.busy = False
        if phase is Phase.WRITE:
            self.written = image.name or str(image.path)

    def _fail(self, what: str, done: int) -> None:
        path = self._info.path
        if what == "pulled":
            self.pulled = True
            raise DrivePulled(f"{path} was pulled at byte {done}")
        if what == "mismatch":
            raise VerifyMismatch(f"{path} differs from the image at byte {done}")
        raise self.failures.write_error(f"simulated write failure on {path} at byte {done}")
