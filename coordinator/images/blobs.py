"""The content-addressed image store: ``DIR/images/<sha256>``, filled by streamed, verified uploads.

An upload is written to a temporary file in the same folder while SHA-256 and MD5 are computed on
the way, one chunk at a time on a worker thread (so neither the disk nor the hashing blocks the
event loop, and at most two chunks are in memory). Only when size and both digests match what the
catalog expects is the file fsynced and renamed to its SHA-256; on any refusal, a full disk, a
client that goes away or a cancelled handler, the temporary file is removed. Files are never
rewritten once present, so a reader can serve them while uploads run.

A *resumable* upload (``receive_range``, the REST API's ``Content-Range`` uploads) instead keeps
what arrived in ``.resume-<sha256>.part`` when the connection breaks, so the client can go on
from the offset it asks for; the whole file is hashed and checked once its last byte is in.
Leftovers nobody resumed for ``RESUME_KEEP_SECONDS`` are removed at start.

Every image that enters the store gets its chunk manifest (``wire.swarm``: a SHA-256 per 4 MiB
chunk, computed on the same pass as the other digests) in ``manifests/<sha256>.json``, written
before the image's own name appears, so kiosks can share the image chunk by chunk. An image
stored before manifests existed gets one on first ask (``manifest``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from coordinator.errors import Conflict, Invalid, Problem
from wire.swarm import Manifest, ManifestBuilder, ManifestError

log = logging.getLogger(__name__)

CHUNK_SIZE = 256 * 1024
"""Largest piece of an upload held in memory at once (two may be: one writing, one arriving)."""

BMAP_SUFFIX = "/bmap"  # of an image's URL: its block map
PARTIAL_PREFIX = ".upload-"
PARTIAL_SUFFIX = ".part"
RESUME_PREFIX = ".resume-"
RESUME_KEEP_SECONDS = 7 * 24 * 3600
MANIFESTS_DIRNAME = "manifests"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


STALL_SECONDS = 60.0
"""An upload that sends nothing for this long is given up, so a stalled client holds no file."""


class InsufficientStorage(Problem):
    status = 507
    slug = "insufficient-storage"
    title = "Not enough space in the image store"


class UploadStalled(Problem):
    status = 408
    slug = "upload-stalled"
    title = "The upload stopped sending"


def is_sha256(text: str) -> bool:
    return _SHA256.fullmatch(text) is not None


@dataclass(frozen=True)
class Expected:
    """What the catalog says an image is: the upload must match all three."""

    size: int
    sha256: str
    md5: str


@dataclass(frozen=True)
class Received:
    """An image now in the store, and how it arrived."""

    path: Path
    size: int
    sha256: str
    md5: str
    created: bool  # False when another upload stored the same image first
    chunks: int
    largest_chunk: int


class _Sink:
    """A temporary file plus running digests; every method runs on a worker thread."""

    def __init__(self, file: BinaryIO, path: Path) -> None:
        self.file = file
        self.path = path
        self.md5 = hashlib.md5()  # noqa: S324  # the burn protocol names images by MD5
        self.chunks = ManifestBuilder()  # the whole file's SHA-256 and each chunk's

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.md5.update(chunk)
        self.chunks.feed(chunk)

    def commit(self, dest: Path) -> bool:
        """Make the file durable under ``dest``; False if ``dest`` already existed."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        try:
            # A hard link fails atomically if another upload of the same image won the race.
            os.link(self.path, dest)
        except FileExistsError:
            return False
        finally:
            self.path.unlink()
        dir_fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new name survives a power cut, not just the bytes
        finally:
            os.close(dir_fd)
        return True

    def discard(self) -> None:
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class ImageStore:
    """The image files of one coordinator, named by their SHA-256."""

    def __init__(
        self, root: Path, *, chunk_size: int = CHUNK_SIZE, stall_seconds: float = STALL_SECONDS
    ) -> None:
        self.root = root
        self.chunk_size = chunk_size
        self.stall_seconds = stall_seconds
        self._resuming: set[str] = set()  # sha256s with a resumable upload running

    def path(self, sha256: str) -> Path:
        if not is_sha256(sha256):
            raise ValueError(f"not a lowercase SHA-256: {sha256!r}")
        return self.root / sha256

    def has(self, sha256: str) -> bool:
        """Whether the image is present (a stat: call it off the loop)."""
        return self.path(sha256).is_file()

    def bmap_path(self, sha256: str) -> Path:
        """Where the block map of an image with empty space is kept (`bmaps`)."""
        return self.path(sha256).with_suffix(".bmap")

    def has_bmap(self, sha256: str) -> bool:
        return self.bmap_path(sha256).is_file()

    def save_bmap(self, sha256: str, text: str) -> None:
        """Keep an image's block map (worker thread); written whole, then renamed."""
        dest = self.bmap_path(sha256)
        tmp = dest.with_name(f"{PARTIAL_PREFIX}{sha256}.bmap{PARTIAL_SUFFIX}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, dest)

    def manifest_path(self, sha256: str) -> Path:
        return self.root / MANIFESTS_DIRNAME / f"{self.path(sha256).name}.json"

    def save_manifest(self, manifest: Manifest) -> None:
        """Write a manifest atomically (worker thread)."""
        path = self.manifest_path(manifest.sha256)
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(manifest.encode())
        os.replace(tmp, path)

    def manifest_digest(self, sha256: str) -> str | None:
        """SHA-256 of the image's stored manifest (it is stored in its canonical form), None
        when there is none yet (a read: call it off the loop)."""
        try:
            return hashlib.sha256(self.manifest_path(sha256).read_bytes()).hexdigest()
        except FileNotFoundError:
            return None

    def manifest(self, sha256: str) -> Manifest | None:
        """The image's chunk manifest, None when the image is not here (worker thread). One that
        is missing or unreadable is made again from the image."""
        image = self.path(sha256)
        if not image.is_file():
            return None
        with contextlib.suppress(OSError, ValueError, ManifestError):
            known = Manifest.from_json(json.loads(self.manifest_path(sha256).read_bytes()))
            if known.sha256 == sha256:
                return known
        builder = ManifestBuilder()
        with image.open("rb") as f:
            while chunk := f.read(self.chunk_size):
                builder.feed(chunk)
        made = builder.finish()
        self.save_manifest(made)
        log.info("image manifest made", extra={"sha256": sha256, "chunks": made.count})
        return made

    def prepare(self) -> int:
        """Create the folder and remove uploads a crash left half-written; returns how many."""
        self.root.mkdir(parents=True, exist_ok=True)
        removed = 0
        for leftover in self.root.glob(f"{PARTIAL_PREFIX}*{PARTIAL_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
                removed += 1
        too_old = time.time() - RESUME_KEEP_SECONDS
        for stale in self.root.glob(f"{RESUME_PREFIX}*{PARTIAL_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                if stale.stat().st_mtime < too_old:
                    stale.unlink()
                    removed += 1
        return removed

    def _resume_path(self, sha256: str) -> Path:
        if not is_sha256(sha256):
            raise ValueError(f"not a lowercase SHA-256: {sha256!r}")
        return self.root / f"{RESUME_PREFIX}{sha256}{PARTIAL_SUFFIX}"

    def resume_offset(self, sha256: str) -> int:
        """How many bytes of a resumable upload of ``sha256`` are kept (a stat: off the loop)."""
        try:
            return self._resume_path(sha256).stat().st_size
        except FileNotFoundError:
            return 0

    def drop_resume(self, sha256: str) -> None:
        """Forget what a resumable upload of ``sha256`` kept, so the next one starts at byte 0
        (a file removal: off the loop). Refused while that upload is being received."""
        if sha256 in self._resuming:
            raise Conflict(f"another upload of image {sha256} is running; try again when it ends")
        self._resume_path(sha256).unlink(missing_ok=True)

    def resuming(self, sha256: str) -> bool:
        """Whether a resumable upload of ``sha256`` is being received right now."""
        return sha256 in self._resuming

    async def _next_chunk(
        self, source: AsyncIterator[bytes], size: int, total: int, *, resumable: bool
    ) -> bytes | None:
        """The next chunk of an upload, None at its end; `UploadStalled` (saying what was kept)
        when none arrives within `stall_seconds`."""
        try:
            async with asyncio.timeout(self.stall_seconds):
                return await anext(source)
        except StopAsyncIteration:
            return None
        except TimeoutError as exc:
            kept = f"{size} bytes are kept to resume from" if resumable else "nothing was kept"
            raise UploadStalled(
                f"no data for {self.stall_seconds:g} s after {size} of {total} bytes; {kept}"
            ) from exc

    async def receive_range(
        self, chunks: AsyncIterable[bytes], expected: Expected, start: int, end: int
    ) -> Received | int:
        """Append bytes ``start``..``end`` (inclusive) of the ``expected`` image to its resumable
        upload. Returns the new offset while bytes are missing, or the stored image once the
        last one is in and size, SHA-256 and MD5 match (``Invalid`` otherwise, and the kept
        bytes are dropped so the next try starts clean). ``start`` must be the kept offset.
        """
        sha256 = expected.sha256
        if sha256 in self._resuming:
            raise Conflict(f"another upload of image {sha256} is running; try again when it ends")
        self._resuming.add(sha256)
        try:
            return await self._receive_range(chunks, expected, start, end)
        finally:
            self._resuming.discard(sha256)

    async def _receive_range(
        self, chunks: AsyncIterable[bytes], expected: Expected, start: int, end: int
    ) -> Received | int:
        loop = asyncio.get_running_loop()
        path = self._resume_path(expected.sha256)
        have = await loop.run_in_executor(None, self.resume_offset, expected.sha256)
        if start != have:
            raise Conflict(
                f"this upload holds {have} of {expected.size} bytes; resume from byte {have} "
                f"(Content-Range: bytes {have}-{expected.size - 1}/{expected.size})",
                field="offset",
            )
        file = await loop.run_in_executor(None, path.open, "ab")
        size = have
        try:
            source = aiter(chunks)
            while True:
                chunk = await self._next_chunk(source, size, expected.size, resumable=True)
                if chunk is None:
                    break
                if size + len(chunk) > end + 1:
                    raise Invalid(
                        f"the body holds more than the {end - start + 1} bytes its "
                        f"Content-Range names",
                        field="size",
                    )
                await asyncio.shield(loop.run_in_executor(None, file.write, chunk))
                size += len(chunk)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage(
                    f"the image store is full after {size} of {expected.size} bytes"
                ) from exc
            raise
        finally:
            # What arrived stays for the next try, whatever ended this one.
            await asyncio.shield(loop.run_in_executor(None, file.close))
            log.info(
                "resumable upload paused" if size < expected.size else "resumable upload complete",
                extra={"sha256": expected.sha256, "offset": size, "size": expected.size},
            )
        if size < expected.size:
            return size
        return await loop.run_in_executor(None, self._finish_resumed, path, expected)

    def _finish_resumed(self, path: Path, expected: Expected) -> Received:
        md5 = hashlib.md5()  # noqa: S324  # the burn protocol's name
        chunks = ManifestBuilder()
        count = largest = size = 0
        with path.open("rb") as f:
            while chunk := f.read(self.chunk_size):
                md5.update(chunk)
                chunks.feed(chunk)
                size += len(chunk)
                count += 1
                largest = max(largest, len(chunk))
            try:
                manifest = chunks.finish()
                _check(expected, size, manifest.sha256, md5.hexdigest())
            except Invalid:
                path.unlink()
                raise
        self.save_manifest(manifest)
        sink = _Sink(path.open("rb+"), path)
        created = sink.commit(self.path(expected.sha256))
        return self._received(expected, size, created, count, largest)

    def _received(
        self, expected: Expected, size: int, created: bool, chunks: int, largest: int
    ) -> Received:
        return Received(
            path=self.path(expected.sha256),
            size=size,
            sha256=expected.sha256,
            md5=expected.md5,
            created=created,
            chunks=chunks,
            largest_chunk=largest,
        )

    def _open_partial(self) -> _Sink:
        path = self.root / f"{PARTIAL_PREFIX}{secrets.token_hex(8)}{PARTIAL_SUFFIX}"
        # "x": never clobber; the random name makes a clash a bug, not a race to lose.
        file = path.open("xb")
        os.fchmod(file.fileno(), 0o644)
        return _Sink(file, path)

    async def receive(self, chunks: AsyncIterable[bytes], expected: Expected) -> Received:
        """Stream ``chunks`` into the store if they are exactly the ``expected`` image.

        Raises ``Invalid`` (422, ``field`` naming size, sha256 or md5) when they are not, and
        ``InsufficientStorage`` (507) when the disk fills up; nothing is left behind either way.
        """
        loop = asyncio.get_running_loop()
        sink = await loop.run_in_executor(None, self._open_partial)
        pending: asyncio.Future[None] | None = None
        size = count = largest = 0
        committed = False
        log.info("image upload started", extra={"sha256": expected.sha256, "partial": sink.path})
        source = aiter(chunks)
        try:
            while True:
                chunk = await self._next_chunk(source, size, expected.size, resumable=False)
                if chunk is None:
                    break
                if not chunk:
                    continue
                size += len(chunk)
                count += 1
                largest = max(largest, len(chunk))
                if size > expected.size:
                    raise Invalid(
                        f"upload is larger than the take's size of {expected.size} bytes",
                        field="size",
                    )
                # One write in flight while the next chunk arrives: overlap, bounded memory.
                # Shielded: a cancelled handler must not cancel the future of a write the
                # thread is still doing, or the cleanup could close the file under it.
                if pending is not None:
                    await asyncio.shield(pending)
                pending = loop.run_in_executor(None, sink.write, chunk)
            if pending is not None:
                await asyncio.shield(pending)
                pending = None
            manifest = sink.chunks.finish()
            _check(expected, size, manifest.sha256, sink.md5.hexdigest())
            await loop.run_in_executor(None, self.save_manifest, manifest)
            created = await loop.run_in_executor(None, sink.commit, self.path(expected.sha256))
            committed = True
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage(
                    f"the image store is full after {size} of {expected.size} bytes; "
                    "nothing was kept"
                ) from exc
            raise
        finally:
            if not committed:
                # Shielded so a cancelled handler (client gone) still waits for the cleanup.
                await asyncio.shield(_discard(loop, sink, pending))
                log.info(
                    "image upload abandoned",
                    extra={"sha256": expected.sha256, "received": size, "partial": sink.path},
                )
        return self._received(expected, size, created, count, largest)


async def _discard(
    loop: asyncio.AbstractEventLoop, sink: _Sink, pending: asyncio.Future[None] | None
) -> None:
    if pending is not None:
        # The write in flight must finish before the file is closed under it.
        with contextlib.suppress(Exception):
            await pending
    await loop.run_in_executor(None, sink.discard)


def _check(expected: Expected, size: int, sha256: str, md5: str) -> None:
    if size != expected.size:
        raise Invalid(
            f"upload has {size} bytes but the take's size is {expected.size}", field="size"
        )
    if sha256 != expected.sha256:
        raise Invalid(
            f"upload's SHA-256 is {sha256} but the take's is {expected.sha256}", field="sha256"
        )
    if md5 != expected.md5:
        raise Invalid(f"upload's MD5 is {md5} but the take's is {expected.md5}", field="md5")
