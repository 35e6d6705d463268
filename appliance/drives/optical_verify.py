"""Verify of an optical burn: read the target back (O_DIRECT where allowed) and memcmp it with the
image read by position, in worker threads; the first difference is reported by its offset."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
import threading

from appliance.drives.base import (
    DrivePulled,
    NoMedia,
    VerifyMismatch,
)
from appliance.drives.imagefile import ImageFile
from appliance.drives.optical_tools import MIB, SECTOR

# Read-back chunk of verify. Measured on a 256 MiB image in tmpfs: a 1 MiB buffer stays in the CPU
# cache and compares in ~0.05 s, 8-16 MiB ones take 0.06-0.10 s; a real drive reads far slower
# than either, so the size only matters for the syscall count there.
VERIFY_CHUNK = 1 * MIB


_libc = ctypes.CDLL(None, use_errno=True)
_memcmp = _libc.memcmp
_memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
_memcmp.restype = ctypes.c_int


def open_target(target: str) -> tuple[int, bool]:
    """Open what to read back, with O_DIRECT where the filesystem or device allows it."""
    for direct in (True, False):
        try:
            return os.open(target, os.O_RDONLY | (os.O_DIRECT if direct else 0)), direct
        except OSError as exc:
            if direct and exc.errno == errno.EINVAL:
                continue
            if not target.startswith("/dev/") and exc.errno == errno.ENOENT:
                raise NoMedia(f"{target}: nothing was burned there") from exc
            if exc.errno in (errno.ENOENT, errno.ENXIO, errno.ENODEV):
                raise DrivePulled(f"{target} is gone: {exc.strerror}") from exc
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def compare(
    src: ImageFile,
    target: str,
    size: int,
    chunk: int,
    done: list[int],
    stop: threading.Event,
    part: tuple[int, int, int] = (0, 0, 0),
) -> None:
    """Read back `size` bytes of the target and compare them with the image (worker thread).

    The target is read with pread into one small page-aligned buffer, the image by position
    into another, and the two compared by memcmp (ctypes releases the GIL, so
    parallel drives verify side by side): one pass over each side, no other copies. `part`
    (slot, start, end) limits it to bytes [start, end) and counts them in `done[slot]`, so a
    pseudo-drive is verified by several threads at once; (0, 0, 0) means the whole image.
    """
    slot, start, end = part
    if end == 0:
        end = size
    if size == 0 or start >= end:
        return
    fd, direct = open_target(target)
    if not direct and target.startswith("/dev/"):
        # A device without O_DIRECT: drop cached pages so we read what the medium holds.
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    chunk = max(SECTOR, chunk // SECTOR * SECTOR)
    buf = mmap.mmap(-1, chunk)  # page-aligned, as O_DIRECT wants
    mine = mmap.mmap(-1, chunk)
    view = memoryview(buf)
    anchors = (ctypes.c_char.from_buffer(mine), ctypes.c_char.from_buffer(buf))
    s_addr, b_addr = (ctypes.addressof(a) for a in anchors)
    try:
        off = start
        for _ in range(-(-(end - start) // chunk) + 1):  # bounded: each pass moves on by a chunk
            if off >= end or stop.is_set():
                break
            n = min(chunk, end - off)
            want = -(-n // SECTOR) * SECTOR if direct else n
            try:
                got = _read_full(fd, view[:want], off)
            except OSError as exc:
                if not (direct and exc.errno == errno.EINVAL):
                    raise
                # Opened with O_DIRECT but refused at the first read (some filesystems do).
                os.close(fd)
                fd, direct = os.open(target, os.O_RDONLY), False
                got = _read_full(fd, view[:n], off)
            if got < n:
                raise VerifyMismatch(
                    f"{target} holds only {off + got} of {size} bytes of the image"
                )
            with memoryview(mine)[:n] as wanted:
                src.read_into(wanted, off)
            if _memcmp(s_addr, b_addr, n) != 0:
                first = _first_difference(mine[:n], buf[:n])
                raise VerifyMismatch(
                    f"{target} differs from the image at byte {off + first} "
                    f"(of {size}): the burn is bad"
                )
            off += n
            done[slot] = off - start
    finally:
        del anchors
        view.release()
        buf.close()
        mine.close()
        os.close(fd)


def _read_full(fd: int, buf: memoryview, offset: int) -> int:
    got = 0
    for _ in range(1 + len(buf) // SECTOR):  # bounded: each pass reads at least one byte
        if got >= len(buf):
            break
        n = os.preadv(fd, [buf[got:]], offset + got)
        if n == 0:
            break
        got += n
    return got


def _first_difference(a: bytes, b: bytes) -> int:
    """Offset of the first byte where two equally long blocks differ (only on a mismatch)."""
    lo, hi = 0, len(a)
    for _ in range(64):  # bisect: the common prefix is [0, lo)
        if hi - lo <= 1:
            break
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo
