"""The optical backend: burn a disc with cdrskin (or `xorriso -as cdrecord`), verify it, eject it.

An `OpticalDrive` drives a real burner (`/dev/srN`) or a libburn pseudo-drive (`stdio:PATH`, a
plain file standing in for a disc). The image is fed to the tool through a socket on its stdin by a
worker thread (read by position, never mapped, with the fast digest computed on the way; the
last chunk is held back until the digest matched and the file proved unchanged, and the tool is
killed instead, so a rotten or rewritten image never completes a disc). The tool's progress
lines ("Track 01:  12 of  64 MB written ...") are parsed and blended with what was fed to give
at least five `Progress` events a second.

Which tool: cdrskin when it can do the job, `xorriso -as cdrecord` otherwise. As root cdrskin
refuses `stdio:` pseudo-drives unless `/root/cdrskin_permissions/allow_emulated_drives` exists,
while xorriso accepts them, so root + pseudo-drive means xorriso (or cdrskin run as another user
with `run_as`). Real drives take cdrskin first. Verify reads back exactly the image's size (a
pseudo-drive is padded past it) in a thread, with O_DIRECT where the target allows it, into one
small aligned buffer, and memcmps it with the image read by position from the descriptor the
write used (so a change to the file since the write shows as `image-changed`). The tray is
driven by CDROM ioctls.

The parts: `optical_tools` (which tool, its argv, its failures), `optical_progress` (its
progress lines), `optical_feed` (the image into its stdin), `optical_verify` (the read-back) and
`optical_tray` (the CDROM ioctls); this module is the drive that runs them.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

from appliance.drives.base import (
    BurnError,
    CorruptImage,
    DriveInfo,
    DriveKind,
    DrivePulled,
    DriveState,
    MediaTooSmall,
    NoMedia,
    Phase,
    Progress,
    SourceImage,
    ToolFailed,
    ToolMissing,
    VerifyMismatch,
)
from appliance.drives.imagefile import ImageFile
from appliance.drives.optical_feed import Feeder, feed_channel, write_head
from appliance.drives.optical_progress import LineSplitter, ProgressEstimator, parse_progress
from appliance.drives.optical_tools import (
    DEFAULT_FIFO,
    MIB,
    PACIFIER_INTERVAL,
    SECTOR,
    STDIO_PREFIX,
    ToolChoice,
    ToolName,
    choose_tool,
    classify_failure,
    fifo_bytes,
    media_space,
    run_as_prefix,
    tail_text,
)
from appliance.drives.optical_tray import (
    CDROM_DRIVE_STATUS,
    CDROMCLOSETRAY,
    CDROMEJECT,
    CDS_DISC_OK,
    CDS_DRIVE_NOT_READY,
    CDS_NO_DISC,
    CDS_TRAY_OPEN,
    CDSL_CURRENT,
    IoctlFn,
    sys_ioctl,
)
from appliance.drives.optical_verify import VERIFY_CHUNK, compare
from appliance.images.formats import require_raw

log = logging.getLogger("appliance.drives.optical")

# Pseudo-drives at least this large are verified by two threads (see _verify_parts).
PARALLEL_VERIFY_MIN = 64 * MIB


class OpticalDrive:
    """A CD/DVD/BD burner or a `stdio:` pseudo-drive, driven by cdrskin or xorriso."""

    def __init__(
        self,
        path: str,
        uid: str,
        *,
        model: str = "",
        capabilities: frozenset[str] = frozenset({"CDR", "DVDR", "BDR"}),
        capacity: int | None = None,
        tool: ToolName | None = None,
        run_as: str | None = None,
        fifo_bytes: int = DEFAULT_FIFO,
        chunk_bytes: int = 4 * MIB,
        tick: float = 0.2,
        stall_timeout: float = 120.0,
        ioctl: IoctlFn = sys_ioctl,
    ) -> None:
        if not (path.startswith(STDIO_PREFIX) or path.startswith("/dev/")):
            raise ValueError(f"not an optical drive path: {path!r} (want /dev/srN or stdio:FILE)")
        self._info = DriveInfo(
            uid=uid,
            path=path,
            kind=DriveKind.OPTICAL,
            capabilities=capabilities,
            capacity=capacity,
            model=model,
            block_size=SECTOR,
        )
        self._tool = tool
        self._run_as = run_as
        self._fifo = fifo_bytes
        self._chunk = chunk_bytes
        self._tick = tick
        self._stall = stall_timeout
        self._ioctl = ioctl
        self._busy = False
        self._pseudo_tray_open = False
        # The image as the last write mapped it, kept for the verify that follows.
        self._source: ImageFile | None = None
        self._closing: set[asyncio.Future[None]] = set()
        self.last_tool: ToolName | None = None

    @property
    def info(self) -> DriveInfo:
        return self._info

    @property
    def emulated(self) -> bool:
        return self._info.path.startswith(STDIO_PREFIX)

    @property
    def target(self) -> str:
        """What to read back: the pseudo-drive's file or the device node."""
        p = self._info.path
        return p[len(STDIO_PREFIX) :] if self.emulated else p

    # ---- tray ------------------------------------------------------------------------------

    async def _tray_ioctl(self, request: int, arg: int = 0) -> int:
        try:
            return await asyncio.to_thread(self._ioctl, self._info.path, request, arg)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENXIO, errno.ENODEV):
                raise DrivePulled(f"{self._info.path} is gone: {exc.strerror}") from exc
            raise BurnError(f"{self._info.path}: tray control failed: {exc.strerror}") from exc

    def _drop_source(self) -> None:
        if self._source is not None:
            self._close_later(self._source)
            self._source = None

    def _close_later(self, source: ImageFile) -> None:
        # Off the event loop, and not in the way of a result that is already known.
        closing = asyncio.get_running_loop().run_in_executor(None, source.close)
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def eject(self) -> None:
        self._drop_source()  # a burn without verify ends here
        if self.emulated:
            self._pseudo_tray_open = True  # nothing to move; report it like a real drive would
            return
        await self._tray_ioctl(CDROMEJECT)

    async def close_tray(self) -> None:
        if self.emulated:
            self._pseudo_tray_open = False
            return
        await self._tray_ioctl(CDROMCLOSETRAY)

    async def state(self) -> DriveState:
        if self._busy:
            return DriveState.BUSY
        if self.emulated:
            if not Path(self.target).parent.is_dir():
                return DriveState.GONE
            return DriveState.TRAY_OPEN if self._pseudo_tray_open else DriveState.IDLE
        try:
            status = await self._tray_ioctl(CDROM_DRIVE_STATUS, CDSL_CURRENT)
        except DrivePulled:
            return DriveState.GONE
        return {
            CDS_NO_DISC: DriveState.EMPTY,
            CDS_TRAY_OPEN: DriveState.TRAY_OPEN,
            CDS_DRIVE_NOT_READY: DriveState.BUSY,
            CDS_DISC_OK: DriveState.IDLE,
        }.get(status, DriveState.IDLE)

    # ---- write -----------------------------------------------------------------------------

    async def _check_media(self, image: SourceImage, choice: ToolChoice) -> None:
        if self.emulated:
            self._pseudo_tray_open = False
            target = Path(self.target)
            try:
                st = await asyncio.to_thread(os.statvfs, target.parent)
            except FileNotFoundError as exc:
                raise NoMedia(
                    f"{self._info.path}: directory {target.parent} does not exist"
                ) from exc
            existing = await asyncio.to_thread(_file_size, target)
            free = st.f_bavail * st.f_frsize + existing
            if image.size > free:
                raise MediaTooSmall(
                    f"{self._info.path}: {image.size} bytes to write, {free} bytes free"
                )
            return
        state = await self.state()
        if state is DriveState.TRAY_OPEN:
            await self.close_tray()
            state = await self.state()
        if state is DriveState.GONE:
            raise DrivePulled(f"{self._info.path} is gone")
        if state in (DriveState.EMPTY, DriveState.TRAY_OPEN):
            raise NoMedia(f"{self._info.path}: no disc in the drive")
        space = self._info.capacity
        if space is None and choice.name == "cdrskin":
            space = await self._media_space(choice)
        if space == 0:
            raise NoMedia(f"{self._info.path}: the disc in the drive has no room (0 bytes)")
        if space is not None and image.size > space:
            raise MediaTooSmall(
                f"{self._info.path}: the image needs {image.size} bytes, the disc holds {space}"
            )

    async def _media_space(self, choice: ToolChoice) -> int | None:
        return await media_space(self._prefix(), choice, self._info.path)

    def _prefix(self) -> list[str]:
        return run_as_prefix(self._run_as)

    async def write(self, image: SourceImage) -> AsyncIterator[Progress]:
        if self._busy:
            raise BurnError(f"{self._info.path} is already busy")
        choice = choose_tool(
            self._info.path,
            prefer=self._tool,
            as_root=os.geteuid() == 0 and self._run_as is None,
        )
        self.last_tool = choice.name
        try:
            st = await asyncio.to_thread(os.stat, image.path)
        except OSError as exc:
            raise CorruptImage(f"cannot read the image {image.path}: {exc.strerror}") from exc
        if st.st_size != image.size:
            raise CorruptImage(f"{image.path} holds {st.st_size} bytes, the take says {image.size}")
        # A disc gets the file's bytes as they are: never the compressed bytes of an .iso.xz.
        await asyncio.to_thread(require_raw, image, "a disc burner")
        await self._check_media(image, choice)
        self._drop_source()
        source = await asyncio.to_thread(ImageFile, Path(image.path), image.size)
        self._busy = True
        ok = False
        try:
            async for p in self._burn(image, choice, source):
                yield p
            ok = True
        finally:
            self._busy = False
            if ok:
                self._source = source
            else:
                self._close_later(source)

    async def _burn(
        self, image: SourceImage, choice: ToolChoice, source: ImageFile
    ) -> AsyncIterator[Progress]:
        fifo = fifo_bytes(image.size, self._fifo)
        dev = self._info.path
        argv = [*self._prefix(), *choice.burn_argv(dev, image.size, fifo, not self.emulated)]
        log.info("burn start drive=%s tool=%s size=%d", dev, choice.name, image.size)
        rfd, wfd, channel = feed_channel()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=rfd,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError as exc:
            os.close(wfd)
            raise ToolMissing(f"{argv[0]} is not installed") from exc
        finally:
            os.close(rfd)
        start = time.monotonic()
        est = ProgressEstimator(Phase.WRITE, image.size, fifo + channel, start)
        tails: dict[str, deque[str]] = {"out": deque(maxlen=30), "err": deque(maxlen=30)}

        async def pump(stream: asyncio.StreamReader | None, key: str) -> None:
            if stream is None:
                return
            splitter = LineSplitter()
            while chunk := await stream.read(65536):
                for line in splitter.feed(chunk):
                    self._take_line(line, est, tails[key])
            for line in splitter.flush():
                self._take_line(line, est, tails[key])

        readers = [
            asyncio.create_task(pump(proc.stdout, "out")),
            asyncio.create_task(pump(proc.stderr, "err")),
        ]
        feeder = Feeder(image, source, wfd, self._chunk, blank_head=self.emulated)
        feed_task = asyncio.create_task(asyncio.to_thread(feeder.run))
        wait_task = asyncio.create_task(proc.wait())
        wfd_open = True
        try:
            last_change, last_seen = start, (-1, -1)
            while not wait_task.done():
                watch = {wait_task, feed_task} if wfd_open else {wait_task}
                # FIRST_COMPLETED: the tool reads until EOF, which it sees only once we close
                # our end, so the end of the feed must wake us at once, not at the next tick
                # (waiting for all of `watch` cost every burn up to a tick at its end).
                await asyncio.wait(watch, timeout=self._tick, return_when=asyncio.FIRST_COMPLETED)
                if feed_task.done() and wfd_open:
                    if feeder.error is not None or feed_task.exception() is not None:
                        proc.kill()  # before EOF, so the tool never finishes a short track
                        await wait_task
                    os.close(wfd)
                    wfd_open = False
                now = time.monotonic()
                seen = (feeder.fed, est.reported)
                if seen != last_seen:
                    last_change, last_seen = now, seen
                elif now - last_change > self._stall:
                    raise ToolFailed(
                        f"{choice.name} made no progress for {self._stall:.0f} s; "
                        + tail_text(tails)
                    )
                if not wait_task.done():
                    yield est.snapshot(now, feeder.fed)
            await asyncio.wait(readers, timeout=10)
            await feed_task
            if feeder.error is not None:
                raise feeder.error
            rc = wait_task.result()
            if rc != 0:
                raise classify_failure(choice.name, rc, tails)
            if feeder.fed != image.size:
                raise ToolFailed(
                    f"{choice.name} stopped after {feeder.fed} of {image.size} bytes; "
                    + tail_text(tails)
                )
            if feeder.blank_head:
                await asyncio.to_thread(
                    write_head, self.target, source, min(self._chunk, image.size)
                )
            log.info("burn done drive=%s seconds=%.2f", dev, time.monotonic() - start)
            yield est.finished(time.monotonic(), start)
        finally:
            feeder.stop.set()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if wfd_open:
                os.close(wfd)
            # The feeder sees EPIPE once the tool is gone, so this wait is short.
            await asyncio.wait({feed_task}, timeout=30)
            for t in readers:
                t.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            if not wait_task.done():
                wait_task.cancel()

    @staticmethod
    def _take_line(line: str, est: ProgressEstimator, tail: deque[str]) -> None:
        written = parse_progress(line)
        if written is not None:
            est.reported = max(est.reported, written)
        else:
            tail.append(line)

    # ---- verify ----------------------------------------------------------------------------

    async def verify(self, image: SourceImage) -> AsyncIterator[Progress]:
        start = time.monotonic()
        est = ProgressEstimator(Phase.VERIFY, image.size, 0, start)
        parts = _verify_parts(self.emulated, image.size)
        done = [0] * len(parts)
        stop = threading.Event()
        self._busy = True
        source, self._source = self._source, None
        task: asyncio.Task[None] | None = None
        try:
            # The write's descriptor while the path still names that file, so a change to it
            # since the write shows; a file put in its place is compared afresh.
            if source is None or not await asyncio.to_thread(
                source.same_file, Path(image.path), image.size
            ):
                if source is not None:
                    self._close_later(source)
                source = await asyncio.to_thread(ImageFile, Path(image.path), image.size)
            task = asyncio.create_task(self._compare_parts(source, image.size, parts, done, stop))
            while not task.done():
                await asyncio.wait({task}, timeout=self._tick)
                if not task.done():
                    yield est.snapshot(time.monotonic(), sum(done))
            try:
                task.result()
            except VerifyMismatch:
                # A difference because the file itself changed is not a bad burn.
                await asyncio.to_thread(source.check)
                raise
            except FileNotFoundError as exc:
                raise NoMedia(f"{self._info.path}: nothing to read back ({exc.strerror})") from exc
            except OSError as exc:
                if exc.errno in (errno.ENOMEDIUM, errno.ENXIO, errno.ENODEV):
                    raise NoMedia(f"{self._info.path}: {exc.strerror}") from exc
                raise DrivePulled(f"{self._info.path}: read back failed: {exc.strerror}") from exc
            await asyncio.to_thread(source.check)
            yield est.finished(time.monotonic(), start)
        finally:
            stop.set()
            if task is not None:
                await asyncio.wait({task}, timeout=30)
            if source is not None:
                self._close_later(source)
            self._busy = False

    async def _compare_parts(
        self,
        source: ImageFile,
        size: int,
        parts: list[tuple[int, int, int]],
        done: list[int],
        stop: threading.Event,
    ) -> None:
        """Run `compare` over each part in its own thread; the first failure stops the rest."""
        threads = [
            asyncio.ensure_future(
                asyncio.to_thread(
                    compare, source, self.target, size, VERIFY_CHUNK, done, stop, part
                )
            )
            for part in parts
        ]
        try:
            await asyncio.gather(*threads)
        except BaseException:
            stop.set()
            await asyncio.wait(threads, timeout=30)
            raise


def _verify_parts(pseudo: bool, size: int) -> list[tuple[int, int, int]]:
    """How verify splits the read-back: (slot, start, end) per thread.

    A `pseudo`-drive (a stdio: file) is read by two threads, each comparing half: reading back a
    file that is in memory is bound by one core's memcpy + memcmp, and halves take ~0.035 s
    instead of ~0.06 s per 256 MiB here. A real drive is read by one: two readers make it seek.
    """
    if not pseudo or size < PARALLEL_VERIFY_MIN:
        return [(0, 0, size)]
    mid = size // 2 // VERIFY_CHUNK * VERIFY_CHUNK  # chunk-aligned, as O_DIRECT wants
    return [(0, 0, mid), (1, mid, size)]


def _file_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


# The drive, and the names of its parts that tests and the benchmark import from here.
__all__ = [
    "CDROMCLOSETRAY",
    "CDROMEJECT",
    "CDROM_DRIVE_STATUS",
    "CDS_DISC_OK",
    "CDS_NO_DISC",
    "CDS_TRAY_OPEN",
    "MIB",
    "PACIFIER_INTERVAL",
    "VERIFY_CHUNK",
    "LineSplitter",
    "OpticalDrive",
    "ToolChoice",
    "ToolName",
    "choose_tool",
    "fifo_bytes",
    "parse_progress",
]
