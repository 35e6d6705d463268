"""What the block backend's worker threads stand on: the Linux block ioctls, page-aligned buffers
for O_DIRECT, target size and sector probes, turning an OSError into the reason a user can act
on, and the state a worker shares with the event loop. `appliance.drives.block` (the drive) and
`appliance.drives.blockstream` (unpacked and bmap writes) both use it."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import mmap
import os
import stat
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.drives.base import (
    BurnError,
    DrivePulled,
    NoMedia,
    Phase,
    TargetBusy,
    WriteProtected,
)

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
memcmp = _libc.memcmp
memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
memcmp.restype = ctypes.c_int


@dataclass
class BlockHooks:
    """Test seams, called in the worker thread. `after_chunk(n)` runs after the n-th chunk
    (counting from 1) of the image body reached the target; raising from it aborts the write.
    `after_verify_chunk(n)` runs after the n-th chunk (from 1) of the read-back matched."""

    after_chunk: Callable[[int], None] | None = None
    after_verify_chunk: Callable[[int], None] | None = None


class AlignedBuffer:
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


def ioctl_u64(fd: int, request: int) -> int:
    buf = fcntl.ioctl(fd, request, b"\0" * 8)
    return int(struct.unpack("=Q", buf)[0])


def ioctl_int(fd: int, request: int) -> int:
    buf = fcntl.ioctl(fd, request, b"\0" * 4)
    return int(struct.unpack("=i", buf)[0])


def target_size(fd: int) -> int:
    st = os.fstat(fd)
    if stat.S_ISBLK(st.st_mode):
        return ioctl_u64(fd, BLKGETSIZE64)
    return st.st_size


def sector_size(fd: int) -> int:
    if stat.S_ISBLK(os.fstat(fd).st_mode):
        with contextlib.suppress(OSError):
            return max(512, ioctl_int(fd, BLKSSZGET))
    return 512


def zero_out(fd: int, offset: int, length: int) -> bool:
    """Ask the device to make [offset, offset+length) read as zeros. True only if the kernel
    said it did (BLKZEROOUT either offloads, e.g. a punched hole under a loop device, or
    writes the zeros itself); any refusal means the caller must write the zeros."""
    try:
        fcntl.ioctl(fd, BLKZEROOUT, struct.pack("=QQ", offset, length))
    except OSError:
        return False
    return True


def open_error(path: str, exc: OSError, *, written: bool = False) -> BurnError:
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


def io_error(path: str, exc: OSError, expected_size: int, what: str, offset: int) -> BurnError:
    """Turn an error in the middle of a write or read into the reason a user can act on."""
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return WriteProtected(f"{path} refused the write at {offset} ({exc.strerror})")
    if vanished(path, expected_size) or exc.errno in (errno.ENXIO, errno.ENODEV):
        return DrivePulled(f"{path} was removed or stopped answering during {what} at {offset}")
    return BurnError(f"{what} failed on {path} at byte {offset}: {exc.strerror}")


def vanished(path: str, expected_size: int) -> bool:
    """A pulled USB stick disappears or shrinks to 0 bytes; check the node afresh."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return True
    try:
        return target_size(fd) < expected_size
    except OSError:
        return True
    finally:
        os.close(fd)


def eta(done: int, total: int, speed: float) -> float | None:
    return (total - done) / speed if speed > 0 else None


class Cancel(Exception):
    """Raised inside the worker when the async side asked it to stop."""


def check_stop(stop: threading.Event) -> None:
    if stop.is_set():
        raise Cancel


@dataclass
class Shared:
    """State the worker thread updates and the event loop reads (ints are atomic under the GIL)."""

    done: int = 0
    phase: Phase = Phase.WRITE
    total: int = 0  # set by a writer that learns the size as it goes (an unpacked stream)


def round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def read_full(fd: int, buf: AlignedBuffer, offset: int, span: int) -> int:
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
