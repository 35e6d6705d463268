"""The block backend's write, in its worker thread: the target's start blanked first, the body
written chunk by chunk from page-aligned buffers (all-zero chunks left to BLKZEROOUT where the
kernel confirms it) while the source is digested beside it, and the image's first chunk written
last, only once the digest matched."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import xxhash

from appliance.drives.base import (
    Cancelled,
    CorruptImage,
    MediaTooSmall,
    NoMedia,
    SourceImage,
    WriteProtected,
)
from appliance.drives.blockio import (
    BLKROGET,
    MIN_PIECE,
    PROGRESS_INTERVAL,
    AlignedBuffer,
    BlockHooks,
    Cancel,
    Shared,
    check_stop,
    io_error,
    ioctl_int,
    open_error,
    sector_size,
    target_size,
    zero_out,
)
from appliance.drives.imagefile import ImageFile


class BlockWriter:
    """The write worker of `BlockDrive` (runs in its worker thread)."""

    _path: str
    _chunk: int
    _sparse: bool
    _hooks: BlockHooks
    _held: ImageFile | None
    # XXH3-64 of each chunk the last write put down, from the buffer it was written from: the
    # verify that follows reads only the target and compares, instead of reading the image again.
    _sums: tuple[int, ...] | None
    zeroed_bytes: int

    def _write_sync(
        self,
        image: SourceImage,
        shared: Shared,
        stop: threading.Event,
        nudge: Callable[[], None],
    ) -> None:
        path = self._path
        try:
            fd = os.open(path, os.O_RDWR | os.O_DIRECT | os.O_EXCL | os.O_CLOEXEC)
        except OSError as exc:
            raise open_error(path, exc) from exc
        read_only = False
        try:
            with contextlib.suppress(OSError):
                read_only = stat.S_ISBLK(os.fstat(fd).st_mode) and bool(ioctl_int(fd, BLKROGET))
            if read_only:
                raise WriteProtected(f"{path} is write-protected (lock switch?)")
            try:
                capacity = target_size(fd)
            except OSError as exc:
                raise io_error(path, exc, image.size, "size probe", 0) from exc
            if capacity == 0:
                # A card reader with no card, or a stick pulled as it was plugged: the node is
                # there but holds nothing. That is missing media, not small media.
                raise NoMedia(f"{path} holds no media (0 bytes): put a card or stick in")
            if capacity < image.size:
                raise MediaTooSmall(
                    f"{path} holds {capacity} bytes but the image needs {image.size}"
                )
            sector = sector_size(fd)
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
        shared: Shared,
        stop: threading.Event,
        nudge: Callable[[], None],
    ) -> None:
        path, size, chunk = self._path, image.size, self._chunk
        if size == 0:
            raise CorruptImage(f"{image.path} is empty")
        first_len = min(chunk, size)
        zeros = AlignedBuffer(chunk)
        first = AlignedBuffer(chunk)
        # Two buffers in turn: chunk n+1 is read while chunk n is written and hashed.
        data = (AlignedBuffer(chunk), AlignedBuffer(chunk))
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
        ahead = ThreadPoolExecutor(1, thread_name_prefix=f"read-{path}")
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
                sums = [xxhash.xxh3_64_intdigest(head)]

            # 3. The body, chunk 1..n in order; all-zero chunks may become BLKZEROOUT. Chunk
            #    n+1 is read (and summed) on the reader thread while chunk n goes to the device.
            self.zeroed_bytes = 0
            piece = chunk
            zero_cmp = bytearray(chunk)  # bytearray == memoryview compares with memcmp
            spans = list(enumerate(range(first_len, size, chunk), start=1))

            def fill(turn: int, off: int, hashed: Future[None] | None) -> int:
                if hashed is not None:
                    hashed.result()  # the hasher is done with this buffer: refill it
                with views[turn][: min(off + chunk, size) - off] as part:
                    src.read_into(part, off)
                    return xxhash.xxh3_64_intdigest(part)

            if spans:
                reading = ahead.submit(fill, 1, spans[0][1], None)
            for n, off in spans:
                check_stop(stop)
                end = min(off + chunk, size)
                turn = n % 2
                sums.append(reading.result())
                if digest is not None:
                    # Its own slice, which lives as long as the hash needs it.
                    hashing[turn] = digest.submit(hasher.update, views[turn][: end - off])
                if n < len(spans):
                    reading = ahead.submit(fill, 1 - turn, spans[n][1], hashing[1 - turn])
                with views[turn][: end - off] as part:
                    is_zero = self._sparse and end - off == chunk and zero_cmp == part
                    if is_zero and zero_out(fd, off, chunk):
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
            check_stop(stop)
            with first.view(first_len) as head:
                self._write_range(fd, head, 0, first_len, sector, chunk, shared, stop, final=True)
            shared.done = size
            os.fsync(fd)
            self._sums = tuple(sums)
        except Cancel:
            raise Cancelled(f"write to {path} cancelled; its start is left blank") from None
        except OSError as exc:
            raise io_error(path, exc, size, "write", shared.done) from exc
        finally:
            ahead.shutdown(wait=True)  # no read still fills a buffer closed below
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
        shared: Shared,
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
                raise Cancel
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
        buf = AlignedBuffer(sector)
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

    def _drop_held(self) -> None:
        self._sums = None
        held, self._held = self._held, None
        if held is not None:
            held.close()
