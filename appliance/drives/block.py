"""Block backend: writes an image to a USB stick, SD card or loop device, then reads it back.

The image is read by position (never mapped: a file that shrinks under a map is SIGBUS, see
appliance.drives.imagefile) into page-aligned buffers that go straight to `os.write` on an
O_DIRECT|O_EXCL descriptor, so nothing is copied in Python and nothing is left in the page cache
to fool the read-back; an image file changed mid-burn fails the job as `image-changed`. The
first chunk of the target is zeroed before anything else and the image's first chunk is written
last, after the source's digest matched: a cancelled, failed or half-written target never looks
bootable. All device I/O runs in one worker thread per target; the event loop only sees
`Progress`.

The write worker is `appliance.drives.blockwrite`, the ioctls, buffers and error reasons it
shares with the verify are `appliance.drives.blockio`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import xxhash

from appliance.drives.base import (
    Cancelled,
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
from appliance.drives.blockio import (
    BLKFLSBUF,
    DEFAULT_CHUNK,
    MIN_PIECE,
    PAGE,
    PROGRESS_INTERVAL,
    AlignedBuffer,
    BlockHooks,
    Cancel,
    Shared,
    check_stop,
    eta,
    io_error,
    memcmp,
    open_error,
    read_full,
    round_up,
    sector_size,
    target_size,
    vanished,
)
from appliance.drives.blockstream import StreamRecord, streams, verify_stream, write_stream
from appliance.drives.blockwrite import BlockWriter
from appliance.drives.imagefile import ImageFile
from appliance.images.formats import resolve


class BlockDrive(BlockWriter):
    """A USB stick, SD card or loop device written with O_DIRECT. Cancel by cancelling the task
    that iterates `write`/`verify`; the worker stops after its current write."""

    def __init__(
        self,
        path: str,
        uid: str,
        *,
        chunk_size: int = DEFAULT_CHUNK,
        hooks: BlockHooks | None = None,
        model: str = "",
        sparse: bool = True,
    ) -> None:
        if chunk_size < MIN_PIECE or chunk_size % PAGE:
            raise ValueError(f"chunk_size must be a multiple of {PAGE} and >= {MIN_PIECE}")
        self._path = path
        self._uid = uid
        self._chunk = chunk_size
        self._hooks = hooks or BlockHooks()
        self._model = model
        # Leave all-zero chunks to BLKZEROOUT (only ever where the kernel confirmed it).
        self._sparse = sparse
        self._busy = False
        self.zeroed_bytes = 0  # bytes of the last write left to BLKZEROOUT instead of written
        # (size, SHA-256) of the image the last write unpacked, when it was asked to measure it
        self.unpacked: tuple[int, str] | None = None
        self._held: ImageFile | None = None  # the last write's image, kept for its verify
        self._sums: tuple[int, ...] | None = None
        self._stream: StreamRecord | None = None  # what the last unpacked write put down

    @property
    def info(self) -> DriveInfo:
        capacity: int | None = None
        block = 512
        with contextlib.suppress(OSError):
            fd = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                capacity = target_size(fd)
                block = sector_size(fd)
            finally:
                os.close(fd)
        return DriveInfo(
            uid=self._uid,
            path=self._path,
            kind=DriveKind.BLOCK,
            capabilities=frozenset({"BLOCK"}),
            capacity=capacity,
            model=self._model,
            block_size=block,
        )

    @property
    def chunk_size(self) -> int:
        return self._chunk

    @property
    def path(self) -> str:
        return self._path

    def write(self, image: SourceImage) -> AsyncIterator[Progress]:
        return self._run(Phase.WRITE, image, self._write_any)

    def verify(self, image: SourceImage) -> AsyncIterator[Progress]:
        return self._run(Phase.VERIFY, image, self._verify_any)

    def _write_any(
        self, image: SourceImage, shared: Shared, stop: threading.Event, nudge: Callable[[], None]
    ) -> None:
        """A compressed image, one with a bmap or one still downloading goes through
        appliance.drives.blockstream; a plain file through the mmap writer below."""
        self._stream = None
        image = resolve(image)
        if not streams(image):
            self._write_sync(image, shared, stop, nudge)
        else:
            self._drop_held()
            self._stream = write_stream(self, image, shared, stop, nudge)

    def _verify_any(
        self, image: SourceImage, shared: Shared, stop: threading.Event, nudge: Callable[[], None]
    ) -> None:
        image = resolve(image)
        if not streams(image):
            self._verify_sync(image, shared, stop, nudge)
        else:
            verify_stream(self, image, self._stream, shared, stop, nudge)

    async def eject(self) -> None:
        # A stick has no tray: flush the kernel's buffers so it can be pulled safely.
        await asyncio.to_thread(self._flush)

    async def close_tray(self) -> None:
        return None

    async def state(self) -> DriveState:
        if self._busy:
            return DriveState.BUSY
        return await asyncio.to_thread(self._probe_state)

    # ----------------------------------------------------------------- async <-> thread plumbing

    async def _run(
        self,
        phase: Phase,
        image: SourceImage,
        work: Callable[[SourceImage, Shared, threading.Event, Callable[[], None]], None],
    ) -> AsyncIterator[Progress]:
        loop = asyncio.get_running_loop()
        shared = Shared(phase=phase)
        stop = threading.Event()
        wake: asyncio.Queue[None] = asyncio.Queue()
        finished: asyncio.Future[None] = loop.create_future()

        def nudge() -> None:
            loop.call_soon_threadsafe(wake.put_nowait, None)

        def settle(exc: BaseException | None) -> None:
            if finished.done():
                return
            if exc is None:
                finished.set_result(None)
            else:
                finished.set_exception(exc)

        def body() -> None:
            err: BaseException | None = None
            try:
                work(image, shared, stop, nudge)
            except BaseException as exc:  # handed to the event loop as is
                err = exc
            loop.call_soon_threadsafe(settle, err)
            loop.call_soon_threadsafe(wake.put_nowait, None)

        thread = threading.Thread(target=body, name=f"burn-{phase}-{self._path}", daemon=True)
        self._busy = True
        started = time.monotonic()
        window: list[tuple[float, int]] = [(started, 0)]
        total = image.size
        last_emit = 0.0
        thread.start()
        try:
            while not finished.done():
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel that
                # races with the queue, and then a cancelled burn would keep writing.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PROGRESS_INTERVAL):
                        await wake.get()
                now = time.monotonic()
                if now - last_emit < PROGRESS_INTERVAL / 2 and not finished.done():
                    continue  # a fast device nudges per chunk; ~10 events/s are plenty
                total = shared.total or total
                last_emit = now
                done = shared.done
                window.append((now, done))
                while len(window) > 2 and now - window[0][0] > 3.0:
                    window.pop(0)
                t0, d0 = window[0]
                speed = (done - d0) / (now - t0) if now > t0 else 0.0
                if not finished.done():
                    yield Progress(shared.phase, done, total, speed, eta(done, total, speed))
            finished.result()
            total = shared.total or total
            elapsed = max(time.monotonic() - started, 1e-9)
            yield Progress(phase, total, total, total / elapsed, 0.0)
        finally:
            stop.set()
            # The worker stops after its current write; wait for it even if we are being
            # cancelled, so the target is never left with a thread still writing to it.
            while not finished.done():
                try:
                    await asyncio.shield(finished)
                except asyncio.CancelledError:
                    continue
                except BaseException:  # the error is read below
                    break
            self._busy = False
            if finished.done() and not finished.cancelled():
                finished.exception()  # mark retrieved so asyncio does not log it

    # ----------------------------------------------------------------- the worker: verify

    def _verify_sync(
        self,
        image: SourceImage,
        shared: Shared,
        stop: threading.Event,
        nudge: Callable[[], None],
    ) -> None:
        path, size, chunk = self._path, image.size, self._chunk
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECT | os.O_EXCL | os.O_CLOEXEC)
        except OSError as exc:
            raise open_error(path, exc, written=self._held is not None) from exc
        try:
            sector = sector_size(fd)
            capacity = target_size(fd)
            if capacity == 0 and self._held is not None:
                # Written a moment ago and now empty: the stick or card was pulled (a loop
                # device detached), which is not a target that was too small.
                raise DrivePulled(f"{path} was removed after it was written (it holds 0 bytes)")
            if capacity == 0:
                raise NoMedia(f"{path} holds no media (0 bytes): nothing to read back")
            if capacity < size:
                raise MediaTooSmall(f"{path} is smaller than the image; it cannot hold it")
            held, self._held = self._held, None
            sums, self._sums = self._sums, None
            if held is not None and not held.same_file(image.path, size):
                held.close()
                held = None
            if held is None or sums is None or len(sums) != -(-size // chunk):
                sums = None
            # The write's own descriptor, when it wrote this file: a change since then shows.
            src = held or ImageFile(image.path, size)
            buf, mine = AlignedBuffer(chunk), AlignedBuffer(chunk)
            try:
                try:
                    if sums is not None:
                        self._compare_sums(fd, sums, buf, size, sector, shared, stop, nudge)
                    else:
                        self._compare(fd, src, buf, mine, size, sector, shared, stop, nudge)
                except VerifyMismatch:
                    src.check()  # a difference because the file changed is not a bad burn
                    raise
                src.check()
            finally:
                buf.close()
                mine.close()
                src.close()
        except Cancel:
            raise Cancelled(f"verify of {path} cancelled") from None
        except OSError as exc:
            raise io_error(path, exc, size, "verify", shared.done) from exc
        finally:
            os.close(fd)

    def _compare(
        self,
        fd: int,
        src: ImageFile,
        buf: AlignedBuffer,
        mine: AlignedBuffer,
        size: int,
        sector: int,
        shared: Shared,
        stop: threading.Event,
        nudge: Callable[[], None],
    ) -> None:
        # Serial on purpose: a read-ahead thread was measured slower here (GIL hand-offs cost
        # more than the compare, which is a memcmp of two buffers).
        for n, off, want in self._target_chunks(fd, buf, size, sector, stop):
            with mine.view(want) as part:
                src.read_into(part, off)
            # memcmp through ctypes releases the GIL, so parallel verifies use every core.
            if memcmp(buf.base, mine.base, want) != 0:
                raise self._differs(off, want)
            self._verified(n, off + want, shared, nudge)

    def _compare_sums(
        self,
        fd: int,
        sums: tuple[int, ...],
        buf: AlignedBuffer,
        size: int,
        sector: int,
        shared: Shared,
        stop: threading.Event,
        nudge: Callable[[], None],
    ) -> None:
        """The target against what this drive's write put down (each chunk's XXH3-64 from the
        buffer it was written from): one read of the target, no second read of the image."""
        for n, off, want in self._target_chunks(fd, buf, size, sector, stop):
            with buf.view(want) as view:
                same = xxhash.xxh3_64_intdigest(view) == sums[n - 1]
            if not same:
                raise self._differs(off, want)
            self._verified(n, off + want, shared, nudge)

    def _target_chunks(
        self, fd: int, buf: AlignedBuffer, size: int, sector: int, stop: threading.Event
    ) -> Iterator[tuple[int, int, int]]:
        """Read the target chunk by chunk into `buf`: (chunk number from 1, offset, length). A
        short read is a pulled drive when the node went away, else a target that ended early."""
        path, chunk = self._path, self._chunk
        for n, off in enumerate(range(0, size, chunk), start=1):
            check_stop(stop)
            want = min(chunk, size - off)
            got = read_full(fd, buf, off, round_up(want, sector))
            if got < want:
                if vanished(path, size):
                    raise DrivePulled(f"{path} disappeared during verify at byte {off + got}")
                raise VerifyMismatch(f"{path} ended early: read {off + got} of {size} bytes")
            yield n, off, want

    def _differs(self, off: int, want: int) -> VerifyMismatch:
        return VerifyMismatch(
            f"{self._path} differs from the image in bytes {off}..{off + want - 1}"
        )

    def _verified(self, n: int, done: int, shared: Shared, nudge: Callable[[], None]) -> None:
        shared.done = done
        nudge()
        if self._hooks.after_verify_chunk is not None:
            self._hooks.after_verify_chunk(n)

    # ----------------------------------------------------------------- misc

    def _flush(self) -> None:
        self._drop_held()
        with contextlib.suppress(OSError):
            fd = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                os.fsync(fd)
                if stat.S_ISBLK(os.fstat(fd).st_mode):
                    fcntl.ioctl(fd, BLKFLSBUF, 0)
            finally:
                os.close(fd)

    def _probe_state(self) -> DriveState:
        if not os.path.exists(self._path):
            return DriveState.GONE
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ENOMEDIUM, errno.ENXIO):
                return DriveState.EMPTY
            return DriveState.GONE
        try:
            return DriveState.IDLE if target_size(fd) > 0 else DriveState.EMPTY
        finally:
            os.close(fd)
