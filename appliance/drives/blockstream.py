"""Write an unpacked stream (an `.img.xz`, `.zst`, `.gz`, `.bz2`, `.zip`) to a block target.

The decoder runs in a reader thread (or its own process) that fills a small pool of page-aligned
buffers while the writer thread puts the previous ones on the device with O_DIRECT, so unpacking
overlaps writing. The reader counts what it unpacked and stops the decoder the moment the stream
grows past the target or past the size the take (or the container) states: no zip bomb fills a
card. As with a raw image the target's first chunk is blanked first and the stream's first
chunk is written last, only once the decoder finished cleanly (format CRCs, no early end), the
delivered file matched its digest and the stream matched its declared `extracted_sha256`. The
writer keeps an XXH3 digest per chunk of what it wrote; the read-back compares against those,
so verify checks the target against the extracted stream without unpacking it twice.
"""

from __future__ import annotations

import hashlib
import os
import queue
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash

from appliance.drives.base import (
    BurnError,
    Cancelled,
    CorruptImage,
    MediaTooSmall,
    SourceImage,
    VerifyMismatch,
    WriteProtected,
)
from appliance.drives.blockio import (
    BLKROGET,
    AlignedBuffer,
    Cancel,
    Shared,
    check_stop,
    io_error,
    ioctl_int,
    open_error,
    read_full,
    round_up,
    sector_size,
    target_size,
)
from appliance.drives.holecheck import HoleChecker, HoleRun
from appliance.images.bmap import BadBmap, RangeChecker, load_bmap
from appliance.images.download import active, open_image
from appliance.images.formats import Encoding
from appliance.images.stream import Decoder, RawReader, open_decoder

if TYPE_CHECKING:
    from appliance.drives.block import BlockDrive

_BUFFERS = 4  # in flight between reader and writer, besides the held-back first chunk
_POLL = 0.1  # seconds between checks of the stop flag while waiting on the other thread


@dataclass(frozen=True)
class StreamRecord:
    """What a stream write put on the target, for the read-back that follows."""

    image: Path
    size: int
    chunk: int
    digests: tuple[int, ...]  # XXH3-64 of each chunk, in order
    zeroed: frozenset[int] = frozenset()  # offsets of chunks already read back as zeros


def streams(image: SourceImage) -> bool:
    """Whether a (resolved) image is written through here rather than mapped whole."""
    return (
        image.encoding != Encoding.RAW.value
        or image.bmap is not None
        or active(Path(image.path)) is not None
    )


def _get(q: queue.Queue[Any], stop: threading.Event, halt: threading.Event | None = None) -> Any:
    while True:
        if stop.is_set() or (halt is not None and halt.is_set()):
            raise Cancel
        try:
            return q.get(timeout=_POLL)
        except queue.Empty:
            continue


def _file_digest(image: SourceImage, stop: threading.Event) -> tuple[str, str] | None:
    """(want, got) for the file as delivered, like the raw path checks it; None when unchecked."""
    hasher: Any
    if image.sha256 and not image.proven:
        want, hasher = image.sha256.lower(), hashlib.sha256()
    elif image.xxh3_128:
        want, hasher = image.xxh3_128.lower(), xxhash.xxh3_128()
    else:
        return None
    buf = bytearray(4 * 1024 * 1024)
    view = memoryview(buf)
    f = open_image(Path(image.path), stop)
    try:
        while not stop.is_set():
            n = f.readinto(view)
            if not n:
                break
            hasher.update(view[:n])
    finally:
        f.close()
    return want, hasher.hexdigest()


# (buffer, bytes in it, hole): a hole of a bmap burn was skipped, not read; its buffer holds
# whatever it held before, and the bytes it stands for are zeros.
Piece = tuple[AlignedBuffer, int, bool]


class _Reader(threading.Thread):
    """Unpacks into pooled buffers and hands pieces to the writer; a None ends it, an exception
    travels in place of the data."""

    def __init__(
        self,
        decoder: Decoder,
        image: SourceImage,
        chunk: int,
        limit: int,
        why: str,
        ranges: RangeChecker | None = None,
    ):
        super().__init__(name=f"unpack-{Path(image.path).name}", daemon=True)
        self.ranges = ranges
        self.decoder, self.image, self.chunk, self.limit, self.why = (
            decoder,
            image,
            chunk,
            limit,
            why,
        )
        self.buffers = [AlignedBuffer(chunk) for _ in range(_BUFFERS + 1)]
        self.free: queue.Queue[AlignedBuffer] = queue.Queue()
        for b in self.buffers:
            self.free.put(b)
        self.full: queue.Queue[Piece | BaseException | None] = queue.Queue()
        self.halt = threading.Event()
        self.digests: list[int] = []
        self._zero_digests: dict[int, int] = {}
        self._mapped = 0  # bmap: the first range that may still overlap the next chunk
        self.sha = hashlib.sha256() if image.extracted_sha256 or image.measure_extracted else None
        self.total = 0

    def _skipped_hole(self) -> int:
        """Bytes of a bmap hole stepped over without reading (a raw image's file hole), or 0.
        The first chunk is always read: it is written last, from its buffer."""
        ranges = self.ranges
        if ranges is None or not self.total or not isinstance(self.decoder, RawReader):
            return 0
        bmap = ranges.bmap
        n = min(self.chunk, bmap.image_size - self.total)
        self._mapped = index = bmap.first_mapped_at_or_after(self._mapped, self.total)
        if n <= 0 or not bmap.is_hole(index, self.total, self.total + n):
            return 0
        return n if self.decoder.skip_hole(n) else 0

    def _zeros_of(self, n: int) -> int:
        digest = self._zero_digests.get(n)
        if digest is None:
            digest = self._zero_digests[n] = xxhash.xxh3_64_intdigest(bytes(n))
        if self.sha is not None:
            self.sha.update(bytes(n))
        return digest

    def run(self) -> None:
        never = threading.Event()
        try:
            while True:
                buf = _get(self.free, never, self.halt)
                hole = self._skipped_hole()
                if hole:
                    self.digests.append(self._zeros_of(hole))
                    self._count(hole)
                    self.full.put((buf, hole, True))
                    continue
                # Views are released on every path: a live one would keep the buffer mapped.
                with buf.view(self.chunk) as view:
                    n = self.decoder.readinto(view)
                    with view[:n] as data:
                        if n:
                            self.digests.append(xxhash.xxh3_64_intdigest(data))
                        if n and self.sha is not None:
                            self.sha.update(data)
                        if n and self.ranges is not None:
                            self.ranges.feed(self.total, data)
                if n == 0:
                    self.decoder.finish()
                    self.full.put(None)
                    return
                self._count(n)
                self.full.put((buf, n, False))
        except BaseException as exc:  # handed to the writer thread as is
            self.full.put(exc)

    def _count(self, n: int) -> None:
        """Stop the unpacker the moment the stream grows past its limit."""
        self.total += n
        if self.total <= self.limit:
            return
        self.decoder.stop()
        name = Path(self.image.path).name
        if self.why == "declared":
            raise CorruptImage(
                f"{name} unpacks to more than the {self.limit} bytes it declares; stopped there "
                "and left the target blank at its start"
            )
        raise MediaTooSmall(
            f"{name} unpacks to more than the {self.limit} bytes the target holds; stopped "
            "there and left the target blank at its start"
        )

    def chunks(self, stop: threading.Event) -> Iterator[Piece]:
        """The unpacked chunks in order, as pieces; each buffer goes back to `free` once used.
        What went wrong in the unpacker is raised here."""
        while True:
            item = _get(self.full, stop)
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self.halt.set()
        self.decoder.stop()
        self.join()
        self.decoder.close()
        for b in self.buffers:
            b.close()


def _open_target(path: str, flags: int) -> int:
    try:
        fd = os.open(path, flags | os.O_DIRECT | os.O_EXCL | os.O_CLOEXEC)
    except OSError as exc:
        raise open_error(path, exc) from exc
    if flags & os.O_RDWR:
        read_only = False
        try:
            read_only = stat.S_ISBLK(os.fstat(fd).st_mode) and bool(ioctl_int(fd, BLKROGET))
        except OSError:
            read_only = False
        if read_only:
            os.close(fd)
            raise WriteProtected(f"{path} is write-protected (lock switch?)")
    return fd


def write_stream(
    drive: BlockDrive,
    image: SourceImage,
    shared: Shared,
    stop: threading.Event,
    nudge: Callable[[], None],
) -> StreamRecord:
    """Unpack `image` onto the drive's target; the record feeds `verify_stream`."""
    path, chunk = drive.path, drive.chunk_size
    stated = image.extracted_size
    bmap = load_bmap(image.bmap) if image.bmap is not None else None
    if bmap is not None:
        if stated is not None and stated != bmap.image_size:
            raise BadBmap(
                f"the bmap {image.bmap} describes an image of {bmap.image_size} bytes, "
                f"{Path(image.path).name} is {stated}"
            )
        stated = bmap.image_size
    drive.unpacked = None
    drive.zeroed_bytes = 0
    fd = _open_target(path, os.O_RDWR)
    reader: _Reader | None = None
    holes: HoleChecker | None = None
    zero_buf: AlignedBuffer | None = None
    digest_thread: threading.Thread | None = None
    digest_out: list[tuple[str, str] | None] = []
    digest_stop = threading.Event()
    capacity = 1  # until probed: a pulled target reads as smaller than this
    try:
        capacity = target_size(fd)
        sector = sector_size(fd)
        if stated is not None and stated > capacity:
            raise MediaTooSmall(
                f"{path} holds {capacity} bytes but {Path(image.path).name} unpacks to {stated}"
            )
        shared.total = stated if stated is not None else image.size
        # 1. Blank the start first: a job stopped anywhere after this leaves no boot code.
        span = min(chunk, capacity, stated if stated is not None else chunk)
        blank = span // sector * sector
        if blank:
            zeros = AlignedBuffer(blank)
            try:
                drive._pwrite_span(fd, zeros.view(blank), 0, capacity)
            finally:
                zeros.close()
            os.fsync(fd)

        # 2. The delivered file's digest, beside the writer; the unpacker, beside both.
        def hash_file() -> None:
            try:
                digest_out.append(_file_digest(image, digest_stop))
            except BurnError as exc:  # a download that failed: the reader reports it too
                digest_out.append(("", f"unreadable: {exc}"))

        digest_thread = threading.Thread(target=hash_file, name=f"hash-{path}", daemon=True)
        digest_thread.start()
        limit, why = (stated, "declared") if stated is not None else (capacity, "target")
        checker = None if bmap is None else RangeChecker(bmap, Path(image.path).name)
        reader = _Reader(open_decoder(image, stop), image, chunk, limit, why, checker)
        reader.start()

        # 3. Chunks 1..n in order; chunk 0 is kept back for the end.
        mapped = 0  # bmap: the first range that may still overlap the next chunk
        first: tuple[AlignedBuffer, int] | None = None
        off = 0
        zero_cmp = bytearray(chunk)
        n_chunk = 0
        holes = HoleChecker(fd, chunk, sector)
        holes.start()
        zero_buf = AlignedBuffer(chunk)  # what a device that cannot zero by itself is given

        def write_zeros(at: int, length: int) -> None:
            with zero_buf.view(length) as part:
                _put(drive, fd, part, at, sector, capacity)

        run = HoleRun(fd, holes, write_zeros)
        for buf, n, skipped in reader.chunks(stop):
            if first is None:
                first = (buf, n)
                off = n
                continue
            n_chunk += 1
            with buf.view(n) as view:
                hole = False
                if skipped:
                    hole = True
                elif bmap is not None:
                    mapped = bmap.first_mapped_at_or_after(mapped, off)
                    hole = bmap.is_hole(mapped, off, off + n)
                    if hole and zero_cmp[:n] != view:
                        raise BadBmap(
                            f"the bmap does not match {Path(image.path).name}: it says bytes "
                            f"{off}..{off + n - 1} are empty, but they hold data"
                        )
                elif drive._sparse and n == chunk:
                    hole = zero_cmp == view
                if hole and n % sector == 0:
                    run.add(off, n)
                else:
                    run.flush()
                    if skipped:
                        view[:] = zero_cmp[:n]  # a partial sector: written, as zeros
                    _put(drive, fd, view, off, sector, capacity)
            reader.free.put(buf)
            off += n
            shared.done = off if stated is not None else reader.decoder.consumed()
            nudge()
            if drive._hooks.after_chunk is not None:
                drive._hooks.after_chunk(n_chunk)
        if first is None:
            raise CorruptImage(f"{Path(image.path).name} unpacks to nothing")
        if stated is not None and off != stated:
            raise CorruptImage(
                f"{Path(image.path).name} unpacked to {off} bytes but declares {stated}; "
                "the target was left blank at its start"
            )

        run.flush()
        drive.zeroed_bytes = run.zeroed
        # 4. Every check before the first chunk goes down, the zeroed holes' read-back first.
        check_stop(stop)
        held, holes = holes, None
        held.finish()
        if held.bad is not None:
            raise VerifyMismatch(f"{path}: {held.bad}; the target was left blank at its start")
        while digest_thread.is_alive():
            check_stop(stop)
            digest_thread.join(_POLL)
        checked = digest_out[0] if digest_out else None
        if checked is not None and checked[0] != checked[1]:
            raise CorruptImage(
                f"{image.path} does not match its digest (expected {checked[0]}, got "
                f"{checked[1]}); the target was left blank at its start"
            )
        if reader.sha is not None and image.extracted_sha256:
            got = reader.sha.hexdigest()
            if got != image.extracted_sha256.lower():
                raise CorruptImage(
                    f"{Path(image.path).name} unpacks to an image that does not match its "
                    f"extracted_sha256 (expected {image.extracted_sha256}, got {got}); the "
                    "target was left blank at its start"
                )
        check_stop(stop)
        fbuf, fn = first
        with fbuf.view(fn) as view:
            _put(drive, fd, view, 0, sector, capacity)
        os.fsync(fd)
        shared.total = off
        shared.done = off
        if reader.sha is not None and image.encoding != Encoding.RAW.value:
            drive.unpacked = (off, reader.sha.hexdigest())
        return StreamRecord(
            Path(image.path), off, chunk, tuple(reader.digests), frozenset(held.zeros)
        )
    except Cancel:
        raise Cancelled(f"write to {path} cancelled; its start is left blank") from None
    except OSError as exc:
        raise io_error(path, exc, capacity, "write", shared.done) from exc
    finally:
        digest_stop.set()
        if zero_buf is not None:
            zero_buf.close()
        if holes is not None:
            holes.abandon()
        if reader is not None:
            reader.close()
        if digest_thread is not None:
            digest_thread.join()
        os.close(fd)


def _put(drive: BlockDrive, fd: int, data: memoryview, off: int, sector: int, cap: int) -> None:
    """Whole sectors straight from the buffer, a last partial sector read-modify-written."""
    whole = len(data) // sector * sector
    if whole:
        with data[:whole] as part:
            drive._pwrite_span(fd, part, off, cap)
    if whole < len(data):
        with data[whole:] as part:
            drive._write_tail(fd, part, off + whole, sector, cap)


def verify_stream(
    drive: BlockDrive,
    image: SourceImage,
    record: StreamRecord | None,
    shared: Shared,
    stop: threading.Event,
    nudge: Callable[[], None],
) -> None:
    """Read the target back and compare each chunk with what the write unpacked; without a
    record (no write in this process) unpack the image afresh and compare with that."""
    path = drive.path
    if record is None or record.image != Path(image.path):
        record = _record_by_unpacking(drive, image, stop)
    size, chunk = record.size, record.chunk
    shared.total = size
    fd = _open_target(path, os.O_RDONLY)
    buf = AlignedBuffer(chunk)
    try:
        sector = sector_size(fd)
        for i, off in enumerate(range(0, size, chunk)):
            check_stop(stop)
            want = min(chunk, size - off)
            # A chunk the device zeroed was read back as zeros while the write went on.
            if off not in record.zeroed:
                got = read_full(fd, buf, off, round_up(want, sector))
                if got < want:
                    raise VerifyMismatch(f"{path} ended early: read {off + got} of {size} bytes")
                with buf.view(want) as view:
                    same = xxhash.xxh3_64_intdigest(view) == record.digests[i]
                if not same:
                    raise VerifyMismatch(
                        f"{path} differs from the unpacked image in bytes {off}..{off + want - 1}"
                    )
            shared.done = off + want
            nudge()
            if drive._hooks.after_verify_chunk is not None:
                drive._hooks.after_verify_chunk(i + 1)
    except Cancel:
        raise Cancelled(f"verify of {path} cancelled") from None
    except OSError as exc:
        raise io_error(path, exc, size, "verify", shared.done) from exc
    finally:
        buf.close()
        os.close(fd)


def _record_by_unpacking(
    drive: BlockDrive, image: SourceImage, stop: threading.Event
) -> StreamRecord:
    chunk = drive.chunk_size
    limit = image.extracted_size if image.extracted_size is not None else 1 << 62
    reader = _Reader(open_decoder(image, stop), image, chunk, limit, "declared")
    reader.start()
    try:
        for buf, _, _ in reader.chunks(stop):
            reader.free.put(buf)
    except Cancel:
        raise Cancelled(f"verify of {drive.path} cancelled") from None
    finally:
        reader.close()
    return StreamRecord(Path(image.path), reader.total, chunk, tuple(reader.digests))
