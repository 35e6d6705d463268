"""Block backend: writes an image to a USB stick, SD card or loop device, then reads it back.

The image is read by position (never mapped: a file that shrinks under a map is SIGBUS, see
appliance.drives.imagefile) into page-aligned buffers that go straight to `os.write` on an
O_DIRECT|O_EXCL descriptor, so nothing is copied in Python and nothing is left in the page cache
to fool the read-back; an image file changed mid-burn fails the job as `image-changed`. The
first chunk of the target is zeroed before anything else and the image's first chunk is written
last, after the source's digest matched: a cancelled, failed or half-written target never looks
bootable. All device I/O runs in one worker thread per target; the event loop only sees
`Progress`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import hashlib
import logging
import mmap
import os
import stat
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import xxhash

from appliance.drives.base import (
    BurnError,
    Cancelled,
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
    TargetBusy,
    VerifyMismatch,
    WriteProtected,
)
from appliance.drives.blockstream import StreamRecord, streams, verify_stream, write_stream
from appliance.drives.imagefile import ImageFile
from appliance.images.formats import resolve

log = logging.getLogger(__name__)

# Linux <linux/fs.h> block ioctls (64-bit layouts).
BLKROGET = 0x125E
BLKFLSBUF = 0x1261
BLKSSZGET = 0x1268
BLKGETSIZE64 = 0x80081272
BLKZEROOUT = 0x127F

MiB = 1024 * 1024
DEFAULT_CHUNK = 8 * MiB
PAGE = mmap.PAGESIZE
# Below this the writer splits a chunk so a slow stick still moves the bar 4 times a second.
MIN_PIECE = 1 * MiB
PROGRESS_INTERVAL = 0.2  # seconds between progress events (>= 4/s, with margin)

_libc = ctypes.CDLL(None, use_errno=True)
_memcmp = _libc.memcmp
_memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
_memcmp.restype = ctypes.c_int


@dataclass
class BlockHooks:
    """Test seams, called in the worker thread. `after_chunk(n)` runs after the n-th chunk
    (counting from 1) of the image body reached the target; raising from it aborts the write.
    `after_verify_chunk(n)` runs after the n-th chunk (from 1) of the read-back matched."""

    after_chunk: Callable[[int], None] | None = None
    after_verify_chunk: Callable[[int], None] | None = None


# --------------------------------------------------------------------------- aligned buffers


class _AlignedBuffer:
    """Page-aligned anonymous memory, as O_DIRECT wants for address, length and offset."""

    def __init__(self, size: int) -> None:
        self.size = max(PAGE, -(-size // PAGE) * PAGE)
        self.mm = mmap.mmap(-1, self.size)
        self._anchor: Any = ctypes.c_char.from_buffer(self.mm)
        self.base = ctypes.addressof(self._anchor)

    def view(self, n: int) -> memoryview:
        return memoryview(self.mm)[:n]

    def close(self) -> None:
        self._anchor = None
        self.mm.close()


# --------------------------------------------------------------------------- helpers


def _ioctl_u64(fd: int, request: int) -> int:
    buf = fcntl.ioctl(fd, request, b"\0" * 8)
    return int(struct.unpack("=Q", buf)[0])


def _ioctl_int(fd: int, request: int) -> int:
    buf = fcntl.ioctl(fd, request, b"\0" * 4)
    return int(struct.unpack("=i", buf)[0])


def _target_size(fd: int) -> int:
    st = os.fstat(fd)
    if stat.S_ISBLK(st.st_mode):
        return _ioctl_u64(fd, BLKGETSIZE64)
    return st.st_size


def _sector_size(fd: int) -> int:
    if stat.S_ISBLK(os.fstat(fd).st_mode):
        with contextlib.suppress(OSError):
            return max(512, _ioctl_int(fd, BLKSSZGET))
    return 512


def _zero_out(fd: int, offset: int, length: int) -> bool:
    """Ask the device to make [offset, offset+length) read as zeros. True only if the kernel
    said it did (BLKZEROOUT either offloads, e.g. a punched hole under a loop device, or
    writes the zeros itself); any refusal means the caller must write the zeros."""
    try:
        fcntl.ioctl(fd, BLKZEROOUT, struct.pack("=QQ", offset, length))
    except OSError:
        return False
    return True


def _open_error(path: str, exc: OSError, *, written: bool = False) -> BurnError:
    """Why `path` cannot be opened; `written` when this job already wrote it, so a target that
    is gone now was pulled, not missing from the start."""
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return WriteProtected(f"{path} is write-protected or not writable ({exc.strerror})")
    if exc.errno == errno.EBUSY:
        return TargetBusy(f"{path} is in use (mounted or opened by another program); unmount it")
    if exc.errno in (errno.ENOENT, errno.ENXIO, errno.ENODEV, errno.ENOMEDIUM):
        if written:
            return DrivePulled(f"{path} was removed after it was written ({exc.strerror})")
        return NoMedia(f"no target at {path} ({exc.strerror})")
    return BurnError(f"cannot open {path}: {exc.strerror}")


def _io_error(path: str, exc: OSError, expected_size: int, what: str, offset: int) -> BurnError:
    """Turn an error in the middle of a write or read into the reason a user can act on."""
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return WriteProtected(f"{path} refused the write at {offset} ({exc.strerror})")
    if _vanished(path, expected_size) or exc.errno in (errno.ENXIO, errno.ENODEV):
        return DrivePulled(f"{path} was removed or stopped answering during {what} at {offset}")
    return BurnError(f"{what} failed on {path} at byte {offset}: {exc.strerror}")


def _vanished(path: str, expected_size: int) -> bool:
    """A pulled USB stick disappears or shrinks to 0 bytes; check the node afresh."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return True
    try:
        return _target_size(fd) < expected_size
    except OSError:
        return True
    finally:
        os.close(fd)


def _eta(done: int, total: int, speed: float) -> float | None:
    return (total - done) / speed if speed > 0 else None


class _Cancel(Exception):
    """Raised inside the worker when the async side asked it to stop."""


def _check(stop: threading.Event) -> None:
    if stop.is_set():
        raise _Cancel


@dataclass
class _Shared:
    """State the worker thread updates and the event loop reads (ints are atomic under the GIL)."""

    done: int = 0
    phase: Phase = Phase.WRITE
    total: int = 0  # set by a writer that learns the size as it goes (an unpacked stream)


# --------------------------------------------------------------------------- the drive


class BlockDrive:
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
        self._held: ImageFile | None = None  # the last write's image, kept for its verify
        self._stream: StreamRecord | None = None  # what the last unpacked write put down

    @property
    def info(self) -> DriveInfo:
        capacity: int | None = None
        block = 512
        with contextlib.suppress(OSError):
            fd = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                capacity = _target_size(fd)
                block = _sector_size(fd)
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
        self, image: SourceImage, shared: _Shared, stop: threading.Event, nudge: Callable[[], None]
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
        self, image: SourceImage, shared: _Shared, stop: threading.Event, nudge: Callable[[], None]
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
        work: Callable[[SourceImage, _Shared, threading.Event, Callable[[], None]], None],
    ) -> AsyncIterator[Progress]:
        loop = asyncio.get_running_loop()
        shared = _Shared(phase=phase)
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
                    yield Progress(shared.phase, done, total, speed, _eta(done, total, speed))
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

    # ----------------------------------------------------------------- the worker: write

    def _write_sync(
        self,
        image: SourceImage,
        shared: _Shared,
        stop: threading.Event,
        nudge: Callable[[], None],
    ) -> None:
        path = self._path
        try:
            fd = os.open(path, os.O_RDWR | os.O_DIRECT | os.O_EXCL | os.O_CLOEXEC)
        except OSError as exc:
            raise _open_error(path, exc) from exc
        read_only = False
        try:
            with contextlib.suppress(OSError):
                read_only = stat.S_ISBLK(os.fstat(fd).st_mode) and bool(_ioctl_int(fd, BLKROGET))
            if read_only:
                raise WriteProtected(f"{path} is write-protected (lock switch?)")
            try:
                capacity = _target_size(fd)
            except OSError as exc:
                raise _io_error(path, exc, image.size, "size probe", 0) from exc
            if capacity == 0:
                # A card reader with no card, or a stick pulled as it was plugged: the node is
                # there but holds nothing. That is missing media, not small media.
                raise NoMedia(f"{path} holds no media (0 bytes): put a card or stick in")
            if capacity < image.size:
                raise MediaTooSmall(
                    f"{path} holds {capacity} bytes but the image needs {image.size}"
                )
            sector = _sector_size(fd)
            self._drop_held()
            src = ImageFile(image.path, image.size)
            try:
                self._write_body(fd, src, image, sector, shared, stop, nudge)
            except BaseException:
                src.close()
                raise
            # Kept for the verify that follows, which then also notices a change since the write.
            self._held = src
        finally:
            os.close(fd)

    def _write_body(
        self,
        fd: int,
        src: ImageFile,
        image: SourceImage,
        sector: int,
        shared: _Shared,
        stop: threading.Event,
        nudge: Callable[[], None],
    ) -> None:
        path, size, chunk = self._path, image.size, self._chunk
        if size == 0:
            raise CorruptImage(f"{image.path} is empty")
        first_len = min(chunk, size)
        zeros = _AlignedBuffer(chunk)
        first = _AlignedBuffer(chunk)
        # Two buffers in turn: chunk n+1 is read and written while chunk n is still hashed.
        data = (_AlignedBuffer(chunk), _AlignedBuffer(chunk))
        views = [memoryview(b.mm) for b in data]
        hashing: list[Future[None] | None] = [None, None]
        # Source integrity: SHA-256 for an unproven image, XXH3-128 for one the cache proved.
        # The digest is taken from the very buffer each chunk is written from, in a thread
        # beside the device writes (both release the GIL), so every byte is read once.
        want: str | None = None
        hasher: Any = None
        if image.sha256 and not image.proven:
            want, hasher = image.sha256.lower(), hashlib.sha256()
        elif image.xxh3_128:
            want, hasher = image.xxh3_128.lower(), xxhash.xxh3_128()
        digest = ThreadPoolExecutor(1, thread_name_prefix=f"hash-{path}") if hasher else None
        try:
            # 1. The target's first chunk becomes zeros before anything else lands, so a job that
            #    stops anywhere after this leaves a target with no partition table or boot code.
            #    Only the image's own span is blanked: bytes past a short image stay as they were.
            whole = first_len // sector * sector
            if whole:
                self._pwrite_span(fd, zeros.view(whole), 0, size)
            if whole < first_len:
                self._write_tail(fd, zeros.view(first_len - whole), whole, sector, size)
            os.fsync(fd)
            shared.done = 0

            # 2. The image's first chunk is read now (the digest starts there) and written last,
            #    from this same buffer, so what is written is what was hashed.
            with first.view(first_len) as head:
                src.read_into(head, 0)
                if digest is not None:
                    digest.submit(hasher.update, head).result()

            # 3. The body, chunk 1..n in order; all-zero chunks may become BLKZEROOUT.
            self.zeroed_bytes = 0
            piece = chunk
            zero_cmp = bytearray(chunk)  # bytearray == memoryview compares with memcmp
            for n, off in enumerate(range(first_len, size, chunk), start=1):
                _check(stop)
                end = min(off + chunk, size)
                turn = n % 2
                if (earlier := hashing[turn]) is not None:
                    earlier.result()  # the hasher is done with this buffer: refill it
                with views[turn][: end - off] as part:
                    src.read_into(part, off)
                    if digest is not None:
                        # Its own slice, which lives as long as the hash needs it.
                        hashing[turn] = digest.submit(hasher.update, views[turn][: end - off])
                    is_zero = self._sparse and end - off == chunk and zero_cmp == part
                    if is_zero and _zero_out(fd, off, chunk):
                        self.zeroed_bytes += chunk
                        shared.done = end - first_len
                    else:
                        piece = self._write_range(
                            fd, part, off, end, sector, piece, shared, stop, bias=first_len
                        )
                nudge()
                if self._hooks.after_chunk is not None:
                    self._hooks.after_chunk(n)

            # 4. Only a source that proved itself, and did not change meanwhile (digest or
            #    not), gets its first chunk written.
            for pending in hashing:
                if pending is not None:
                    pending.result()
            src.check()
            got = None if hasher is None else hasher.hexdigest()
            if want is not None and got != want:
                raise CorruptImage(
                    f"{image.path} does not match its digest (expected {want}, got {got});"
                    " the target was left blank at its start"
                )
            _check(stop)
            with first.view(first_len) as head:
                self._write_range(fd, head, 0, first_len, sector, chunk, shared, stop, final=True)
            shared.done = size
            os.fsync(fd)
        except _Cancel:
            raise Cancelled(f"write to {path} cancelled; its start is left blank") from None
        except OSError as exc:
            raise _io_error(path, exc, size, "write", shared.done) from exc
        finally:
            if digest is not None:
                digest.shutdown(wait=True)  # no hash still reads a buffer closed below
            hashing.clear()
            for v in views:
                v.release()
            zeros.close()
            first.close()
            for b in data:
                b.close()

    def _write_range(
        self,
        fd: int,
        data: memoryview,
        start: int,
        end: int,
        sector: int,
        piece: int,
        shared: _Shared,
        stop: threading.Event,
        *,
        final: bool = False,
        bias: int = 0,
    ) -> int:
        """Write image bytes [start, end), held in `data`, at the same offset of the target;
        return the piece size to use next (smaller when the device is slow, so progress keeps
        flowing)."""
        aligned_end = start + (end - start) // sector * sector
        off = start
        while off < aligned_end:
            if stop.is_set() and not final:
                raise _Cancel
            n = min(piece, aligned_end - off)
            t0 = time.monotonic()
            with data[off - start : off - start + n] as span:
                self._pwrite_span(fd, span, off, end)
            if time.monotonic() - t0 > PROGRESS_INTERVAL and piece > MIN_PIECE:
                piece = max(MIN_PIECE, piece // 2)
            off += n
            if not final:
                shared.done = off - bias
        if aligned_end < end:
            with data[aligned_end - start : end - start] as tail:
                self._write_tail(fd, tail, aligned_end, sector, end)
            if not final:
                shared.done = end - bias
        return piece

    def _write_tail(self, fd: int, data: memoryview, offset: int, sector: int, size: int) -> None:
        """The last partial sector: O_DIRECT can only write whole sectors, so the rest of that
        sector keeps what the target already holds there (read first), or zeros if it cannot be
        read. The target thus receives exactly the image's bytes and nothing past them changes."""
        buf = _AlignedBuffer(sector)
        try:
            view = buf.view(sector)
            try:
                got = os.preadv(fd, [view], offset)
            except OSError:
                got = 0
            if got < sector:
                view[:] = bytes(sector)
            view[: len(data)] = data
            self._pwrite_span(fd, view, offset, size)
        finally:
            del view
            buf.close()

    @staticmethod
    def _pwrite_span(fd: int, data: memoryview, offset: int, size: int) -> None:
        written = 0
        total = len(data)
        while written < total:
            n = os.pwrite(fd, data[written:], offset + written)
            if n <= 0:
                raise OSError(errno.EIO, "device accepted no bytes")
            written += n

    # ----------------------------------------------------------------- the worker: verify

    def _verify_sync(
        self,
        image: SourceImage,
        shared: _Shared,
        stop: threading.Event,
        nudge: Callable[[], None],
    ) -> None:
        path, size, chunk = self._path, image.size, self._chunk
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECT | os.O_EXCL | os.O_CLOEXEC)
        except OSError as exc:
            raise _open_error(path, exc, written=self._held is not None) from exc
        try:
            sector = _sector_size(fd)
            capacity = _target_size(fd)
            if capacity == 0 and self._held is not None:
                # Written a moment ago and now empty: the stick or card was pulled (a loop
                # device detached), which is not a target that was too small.
                raise DrivePulled(f"{path} was removed after it was written (it holds 0 bytes)")
            if capacity == 0:
                raise NoMedia(f"{path} holds no media (0 bytes): nothing to read back")
            if capacity < size:
                raise MediaTooSmall(f"{path} is smaller than the image; it cannot hold it")
            held, self._held = self._held, None
            if held is not None and not held.same_file(image.path, size):
                held.close()
                held = None
            # The write's own descriptor, when it wrote this file: a change since then shows.
            src = held or ImageFile(image.path, size)
            buf, mine = _AlignedBuffer(chunk), _AlignedBuffer(chunk)
            try:
                try:
                    self._compare(fd, src, buf, mine, size, sector, shared, stop, nudge)
                except VerifyMismatch:
                    src.check()  # a difference because the file changed is not a bad burn
                    raise
                src.check()
            finally:
                buf.close()
                mine.close()
                src.close()
        except _Cancel:
            raise Cancelled(f"verify of {path} cancelled") from None
        except OSError as exc:
            raise _io_error(path, exc, size, "verify", shared.done) from exc
        finally:
            os.close(fd)

    def _compare(
        self,
        fd: int,
        src: ImageFile,
        buf: _AlignedBuffer,
        mine: _AlignedBuffer,
        size: int,
        sector: int,
        shared: _Shared,
        stop: threading.Event,
        nudge: Callable[[], None],
    ) -> None:
        # Serial on purpose: a read-ahead thread was measured slower here (GIL hand-offs cost
        # more than the compare, which is a memcmp of two buffers).
        path, chunk = self._path, self._chunk
        for n, off in enumerate(range(0, size, chunk), start=1):
            _check(stop)
            want = min(chunk, size - off)
            got = _read_full(fd, buf, off, _round_up(want, sector))
            if got < want:
                if _vanished(path, size):
                    raise DrivePulled(f"{path} disappeared during verify at byte {off + got}")
                raise VerifyMismatch(f"{path} ended early: read {off + got} of {size} bytes")
            with mine.view(want) as part:
                src.read_into(part, off)
            # memcmp through ctypes releases the GIL, so parallel verifies use every core.
            if _memcmp(buf.base, mine.base, want) != 0:
                raise VerifyMismatch(
                    f"{path} differs from the image in bytes {off}..{off + want - 1}"
                )
            shared.done = off + want
            nudge()
            if self._hooks.after_verify_chunk is not None:
                self._hooks.after_verify_chunk(n)

    # ----------------------------------------------------------------- misc

    def _drop_held(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.close()

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
            return DriveState.IDLE if _target_size(fd) > 0 else DriveState.EMPTY
        finally:
            os.close(fd)


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _read_full(fd: int, buf: _AlignedBuffer, offset: int, span: int) -> int:
    """Read up to `span` bytes at `offset` into `buf` with O_DIRECT; fewer only at the end."""
    view = buf.view(span)
    got = 0
    try:
        while got < span:
            n = os.preadv(fd, [view[got:]], offset + got)
            if n <= 0:
                break
            got += n
    finally:
        view.release()
    return got
