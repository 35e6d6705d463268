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
import re
import shutil
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import xxhash

from appliance.drives.base import (
    BurnError,
    CorruptImage,
    DriveInfo,
    DriveKind,
    DrivePulled,
    DriveState,
    ImageChanged,
    MediaTooSmall,
    NoMedia,
    Phase,
    Progress,
    SourceImage,
    ToolFailed,
    ToolMissing,
    VerifyMismatch,
    WriteProtected,
)
from appliance.drives.imagefile import ImageFile
from appliance.images.formats import require_raw

log = logging.getLogger(__name__)

# linux/cdrom.h
CDROMEJECT = 0x5309
CDROMCLOSETRAY = 0x5319
CDROM_DRIVE_STATUS = 0x5326
CDSL_CURRENT = 0x7FFFFFFF  # INT_MAX: "the current slot" for changers and plain drives alike
CDS_NO_INFO = 0
CDS_NO_DISC = 1
CDS_TRAY_OPEN = 2
CDS_DRIVE_NOT_READY = 3
CDS_DISC_OK = 4

STDIO_PREFIX = "stdio:"
MIB = 1 << 20
SECTOR = 2048
# Send buffer asked for the feed socket; the kernel caps it at net.core.wmem_max (and doubles
# it), so a default Pi gets ~416 KiB. Any size works: see _feed_channel for why a socket.
FEED_BUFFER = 4 << 20
PACIFIER_INTERVAL = 0.1  # seconds between xorriso progress lines (its -pacifier interval=)
DEFAULT_FIFO = 32 * MIB
# Read-back chunk of verify. Measured on a 256 MiB image in tmpfs: a 1 MiB buffer stays in the CPU
# cache and compares in ~0.05 s, 8-16 MiB ones take 0.06-0.10 s; a real drive reads far slower
# than either, so the size only matters for the syscall count there.
VERIFY_CHUNK = 1 * MIB
# Pseudo-drives at least this large are verified by two threads (see _verify_parts).
PARALLEL_VERIFY_MIN = 64 * MIB

_libc = ctypes.CDLL(None, use_errno=True)
_memcmp = _libc.memcmp
_memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
_memcmp.restype = ctypes.c_int
CDRSKIN_PERMISSION_FILE = Path("/root/cdrskin_permissions/allow_emulated_drives")

ToolName = Literal["cdrskin", "xorriso"]
IoctlFn = Callable[[str, int, int], int]

# "Track 01:   12 of   64 MB written (fifo 100%) [buf  99%]   4.0x." (cdrskin, stdout) and
# "xorriso : UPDATE :    7 of   20 MB written (fifo  0%) [buf  50%]" (xorriso, stderr).
_PROGRESS_RE = re.compile(r"(?<![\w.])(\d+)\s+of\s+(\d+)\s+MB\s+written")
_TOTAL_RE = re.compile(r"Total bytes read/written:\s*(\d+)\s*/\s*(\d+)")
_NO_MEDIA_RE = re.compile(r"no media|no disc|media not present|medium not present", re.I)
_TOO_SMALL_RE = re.compile(
    r"not enough (?:free )?space|too large for|exceeds (?:the )?(?:free|media)|"
    r"media capacity|capacity exceeded",
    re.I,
)
_WRITE_PROTECT_RE = re.compile(r"write[- ]protect", re.I)


def parse_progress(line: str) -> int | None:
    """Bytes written according to one progress line of cdrskin or xorriso, None if not one.

    Both tools count in MiB ("20 MB" for 20971520 bytes); the final summary line gives bytes.
    """
    m = _TOTAL_RE.search(line)
    if m:
        return int(m.group(2))
    m = _PROGRESS_RE.search(line)
    if m:
        return int(m.group(1)) * MIB
    return None


class LineSplitter:
    """Incremental splitter for tool output where progress lines end in \\r and others in \\n."""

    def __init__(self, max_line: int = 4096) -> None:
        self._buf = b""
        self._max = max_line

    def feed(self, data: bytes) -> list[str]:
        self._buf += data
        parts = re.split(rb"[\r\n]", self._buf)
        self._buf = parts.pop()
        if len(self._buf) > self._max:  # a tool that never ends a line must not grow us forever
            parts.append(self._buf)
            self._buf = b""
        return [p.decode("utf-8", "replace").strip() for p in parts if p.strip()]

    def flush(self) -> list[str]:
        rest, self._buf = self._buf, b""
        text = rest.decode("utf-8", "replace").strip()
        return [text] if text else []


class ProgressEstimator:
    """Turns coarse tool reports and the count of bytes fed into smooth, monotonic `Progress`.

    The tool reports whole MiB, about once a second for xorriso; what the feeder pushed, minus the
    tool's fifo and what the feed socket buffers, is a lower bound of what it consumed. The larger
    of the two wins.
    """

    def __init__(self, phase: Phase, total: int, lead: int, start: float) -> None:
        self.phase = phase
        self.total = total
        self.lead = lead
        self.reported = 0
        self._done = 0
        self._speed = 0.0
        self._mark_t = start
        self._mark_done = 0

    def snapshot(self, now: float, fed: int) -> Progress:
        estimate = max(self.reported, fed - self.lead)
        self._done = max(self._done, min(self.total, max(0, estimate)))
        dt = now - self._mark_t
        if dt >= 0.5:
            rate = (self._done - self._mark_done) / dt
            self._speed = rate if self._speed == 0.0 else 0.5 * self._speed + 0.5 * rate
            self._mark_t, self._mark_done = now, self._done
        left = self.total - self._done
        eta = left / self._speed if self._speed > 0 else None
        return Progress(self.phase, self._done, self.total, self._speed, eta)

    def finished(self, now: float, start: float) -> Progress:
        self._done = self.total
        elapsed = now - start
        speed = self.total / elapsed if elapsed > 0 else self._speed
        return Progress(self.phase, self.total, self.total, speed, 0.0)


@dataclass(frozen=True, slots=True)
class ToolChoice:
    name: ToolName
    exe: str

    def burn_argv(self, dev: str, size: int, fifo: int, real_drive: bool) -> list[str]:
        fs = f"fs={max(1, fifo // MIB)}m"
        if self.name == "cdrskin":
            argv = [self.exe, "-v"]
            if not real_drive:
                argv.append("--allow_emulated_drives")
            # Padding keeps the read-ahead of old CD drives from failing on the last sectors.
            argv += [f"dev={dev}", fs, "-pad", f"tsize={size}", "-"]
            return argv
        # xorriso notices the end of a burn only in its progress loop, which by default wakes
        # once per wall-clock second: every burn would then end on the next second boundary
        # (up to ~1 s lost per disc, and a wall time that comes in 0.9 s steps). A short
        # interval ends it within 0.1 s and gives ten progress lines a second.
        return [
            self.exe,
            "-pacifier",
            f"interval={PACIFIER_INTERVAL}",
            "-as",
            "cdrecord",
            "-v",
            f"dev={dev}",
            fs,
            f"tsize={size}",
            "-",
        ]


def fifo_bytes(size: int, limit: int = DEFAULT_FIFO) -> int:
    """The tool's fifo (`fs=`) for an image of `size` bytes.

    libburn waits for a full fifo before it starts writing, so a fifo much larger than the image
    would hide all progress until the very end; an eighth of the image, at most `limit`.
    """
    return min(limit, max(MIB, size // 8 // MIB * MIB))


def choose_tool(
    path: str,
    *,
    prefer: ToolName | None = None,
    as_root: bool | None = None,
    which: Callable[[str], str | None] = shutil.which,
    permission_file: Path = CDRSKIN_PERMISSION_FILE,
) -> ToolChoice:
    """Pick `xorriso -as cdrecord` or cdrskin for this target; ToolMissing when neither fits.

    Both drive the drive through libburn with the same options. xorriso comes first: on the
    same burn it used a quarter of cdrskin's CPU here (0.3 vs 1.2 CPU-s per 256 MiB; cdrskin
    reads its input 2 KiB at a time), which matters on a Pi burning while it serves its screen.
    """
    emulated = path.startswith(STDIO_PREFIX)
    root = os.geteuid() == 0 if as_root is None else as_root
    cdrskin, xorriso = which("cdrskin"), which("xorriso")
    cdrskin_fits = cdrskin is not None and (not emulated or not root or permission_file.exists())
    order: list[ToolName] = [prefer] if prefer else ["xorriso", "cdrskin"]
    for name in order:
        if name == "cdrskin" and cdrskin is not None and cdrskin_fits:
            return ToolChoice("cdrskin", cdrskin)
        if name == "xorriso" and xorriso is not None:
            return ToolChoice("xorriso", xorriso)
    if cdrskin is not None and emulated and root:
        raise ToolMissing(
            "cdrskin refuses stdio: pseudo-drives as root and xorriso is not installed "
            f"(install xorriso, or create {permission_file})"
        )
    wanted = prefer or "xorriso or cdrskin"
    raise ToolMissing(f"{wanted} is not installed (apt install cdrskin xorriso)")


def _sys_ioctl(path: str, request: int, arg: int) -> int:
    # O_NONBLOCK: opening a CD drive without it waits for (and may try to close) the tray.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return int(fcntl.ioctl(fd, request, arg))
    finally:
        os.close(fd)


@dataclass
class _Feeder:
    """Pushes the image into the tool's stdin from a worker thread, digesting it on the way."""

    image: SourceImage
    source: ImageFile
    fd: int
    chunk: int
    # A pseudo-drive is a plain file: its first chunk is fed as zeros and patched in once the
    # whole image is there, so a burn killed mid-way never leaves a file that reads as a
    # complete disc with the image's label (a real disc is written once, in order).
    blank_head: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    fed: int = 0
    error: BurnError | None = None

    def _hasher(self) -> tuple[Callable[[memoryview], None], Callable[[], str], str] | None:
        img = self.image
        if img.proven and img.xxh3_128:
            x = xxhash.xxh3_128()
            return x.update, x.hexdigest, img.xxh3_128.lower()
        if img.sha256 and not img.proven:
            h = hashlib.sha256()
            return h.update, h.hexdigest, img.sha256.lower()
        return None

    def run(self) -> None:
        size = self.image.size
        if size == 0:
            return
        view = memoryview(bytearray(min(self.chunk, size)))
        try:
            self._pump(view, size, self._hasher())
        except ImageChanged as exc:
            self.error = exc  # nothing of the last chunk was sent
        finally:
            view.release()

    def _pump(
        self,
        view: memoryview,
        size: int,
        hasher: tuple[Callable[[memoryview], None], Callable[[], str], str] | None,
    ) -> None:
        off = 0
        while off < size and not self.stop.is_set():
            n = min(self.chunk, size - off)
            with view[:n] as piece:
                self.source.read_into(piece, off)
                if off + n == size:
                    self.source.check()  # a rewritten file never gets its last chunk out
                if hasher is not None:
                    hasher[0](piece)
                    # The last chunk is withheld until the digest matched: the disc (or
                    # pseudo-drive) then never holds a complete copy of a rotten image.
                    if off + n == size and hasher[1]() != hasher[2]:
                        self.error = CorruptImage(
                            f"{self.image.path} does not match its digest (read {hasher[1]()}, "
                            f"expected {hasher[2]}); burn stopped before the last block"
                        )
                        return
                out = memoryview(bytes(n)) if self.blank_head and off == 0 else piece
                sent = 0
                while sent < n:
                    try:
                        sent += os.write(self.fd, out[sent:])
                    except (BrokenPipeError, ConnectionResetError):
                        # The tool died; its exit status tells why. Some kernels report a
                        # socket peer that closed with unread input as a reset.
                        return
            off += n
            self.fed = off


def _write_head(target: str, source: ImageFile, length: int) -> None:
    """Put the image's first `length` bytes at the start of a pseudo-drive file, last of all
    (worker thread); a source changed since it was hashed is refused first."""
    head = bytearray(length)
    with memoryview(head) as view:
        source.read_into(view, 0)
    source.check()
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
        try:
            if os.pwrite(fd, head, 0) != length:
                raise OSError(errno.EIO, "short write")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise BurnError(
            f"{target}: could not write the image's first bytes: {exc.strerror}"
        ) from exc


def _open_target(target: str) -> tuple[int, bool]:
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


def _compare(
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
    fd, direct = _open_target(target)
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
        ioctl: IoctlFn = _sys_ioctl,
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
        proc = await asyncio.create_subprocess_exec(
            *self._prefix(),
            choice.exe,
            f"dev={self._info.path}",
            "--tell_media_space",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return None
        m = re.search(rb"^\s*(\d+)\s*$", out, re.M)
        return int(m.group(1)) * SECTOR if proc.returncode == 0 and m else None

    def _prefix(self) -> list[str]:
        if self._run_as is None:
            return []
        runuser = shutil.which("runuser")
        if runuser is None:
            raise ToolMissing("runuser is needed to run the burn tool as another user")
        return [runuser, "-u", self._run_as, "--"]

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
        rfd, wfd, channel = _feed_channel()
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
        feeder = _Feeder(image, source, wfd, self._chunk, blank_head=self.emulated)
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
                        + _tail_text(tails)
                    )
                if not wait_task.done():
                    yield est.snapshot(now, feeder.fed)
            await asyncio.wait(readers, timeout=10)
            await feed_task
            if feeder.error is not None:
                raise feeder.error
            rc = wait_task.result()
            if rc != 0:
                raise _classify(choice.name, rc, tails)
            if feeder.fed != image.size:
                raise ToolFailed(
                    f"{choice.name} stopped after {feeder.fed} of {image.size} bytes; "
                    + _tail_text(tails)
                )
            if feeder.blank_head:
                await asyncio.to_thread(
                    _write_head, self.target, source, min(self._chunk, image.size)
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
        """Run `_compare` over each part in its own thread; the first failure stops the rest."""
        threads = [
            asyncio.ensure_future(
                asyncio.to_thread(
                    _compare, source, self.target, size, VERIFY_CHUNK, done, stop, part
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


def _feed_channel() -> tuple[int, int, int]:
    """The tool's stdin and our end of it: (its read fd, our write fd, bytes it can buffer).

    A Unix stream socket rather than a pipe. cdrskin reads its input 2 KiB at a time, and a full
    pipe wakes its writer as soon as one 4 KiB page is free: one wake-up of the feeder per page,
    ~43000 sleeps of the feeder per 256 MiB, costing ~0.5 CPU-s on top of the ~1.3 the burn itself
    takes, and making an unprivileged cdrskin 1.4-1.7x slower than with the image file on its
    stdin. A socket wakes a blocked sender only once the receiver has drained three quarters of
    its send buffer: 40 sleeps per 256 MiB with a 4 MiB buffer, ~700 with a Pi's default
    wmem_max. The tool reads it like a pipe (EOF when we close our end). A bigger pipe does not
    help (the wake-up is per freed page whatever the size), nor does splice.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with contextlib.suppress(OSError):
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, FEED_BUFFER)
        # One-way: the tool cannot write back into the feed, nor we read from it.
        ours.shutdown(socket.SHUT_RD)
        theirs.shutdown(socket.SHUT_WR)
        buffered = ours.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    except OSError:
        ours.close()
        theirs.close()
        raise
    return theirs.detach(), ours.detach(), buffered


def _file_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def _tail_text(tails: dict[str, deque[str]], lines: int = 8) -> str:
    picked = [ln for ln in (*tails["out"], *tails["err"]) if not ln.startswith("Track ")]
    return " | ".join(picked[-lines:]) or "(no output)"


def _classify(tool: str, rc: int, tails: dict[str, deque[str]]) -> BurnError:
    text = "\n".join((*tails["out"], *tails["err"]))
    detail = _tail_text(tails)
    if _NO_MEDIA_RE.search(text):
        return NoMedia(f"{tool}: no writable disc: {detail}")
    if _TOO_SMALL_RE.search(text):
        return MediaTooSmall(f"{tool}: the image does not fit on the disc: {detail}")
    if _WRITE_PROTECT_RE.search(text):
        return WriteProtected(f"{tool}: the disc is write-protected: {detail}")
    return ToolFailed(f"{tool} exited with status {rc}: {detail}")
