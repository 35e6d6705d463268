"""The kiosk's image cache: content-addressed by SHA-256, filled by resumable, verified downloads.

An image is stored as `<root>/<sha256>.img` with a `<sha256>.json` sidecar holding its size, its
XXH3-128 digest (what each burn recomputes while writing) and its last use. It only gets there
after its SHA-256 matched the take's. A download (`download.Download`, fed by a `ByteSource`)
grows in `<root>/partial/<sha256>.part` and resumes from that file's size after a dropped
connection or a restart. `start_fetch` hands out that growing file, so a block burn writes while
it downloads (every burn of the same take shares one download); `end_fetch`, when the last burn
let go, proves a complete file and admits it. A wrong hash or size refuses the image
(`CorruptImage`) and deletes it; a full disk (`DiskFull`) deletes the partial file and nothing
else. The cache stays under `max_bytes` by evicting the least recently used images, never one
that is pinned (queued or burning).
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
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import xxhash

from appliance.drives.base import BurnError, CorruptImage, DiskFull, SourceImage
from appliance.images.bmap import MAX_BMAP
from appliance.images.download import (
    Download,
    DownloadError,
    forget,
    start_download_to,
    wait_until_readable,
)
from appliance.images.sources import ByteSource

log = logging.getLogger(__name__)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
READ_CHUNK = 4 << 20


@dataclass(eq=False)
class Fetch:
    """A take's image on its way into the cache, shared by every burn of it."""

    sha256: str
    name: str
    download: Download
    users: int = 0

    def growing(self) -> SourceImage:
        """The partial file as a burn reads it: readers wait for bytes still to come, and
        the burn checks the SHA-256 before the target's first block goes down."""
        dl = self.download
        return SourceImage(path=dl.path, size=dl.size, sha256=self.sha256, name=self.name)


@dataclass(frozen=True, slots=True)
class _Entry:
    sha256: str
    size: int
    xxh3_128: str
    name: str
    last_used: float


def _check_sha(sha256: str) -> str:
    sha = sha256.strip().lower()
    if not _HEX64.match(sha):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return sha


def _digest_file(path: Path) -> tuple[int, str, str]:
    """Size, SHA-256 and XXH3-128 of a file in one read (worker thread)."""
    sha, fast, size = hashlib.sha256(), xxhash.xxh3_128(), 0
    buf = bytearray(READ_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            sha.update(view[:n])
            fast.update(view[:n])
            size += n
    return size, sha.hexdigest(), fast.hexdigest()


def _fetch_small(source: ByteSource, path: Path, limit: int) -> None:
    """A small file (a block map) read whole from `source`, kept at `path` (worker thread)."""
    opened = source.open(0)
    try:
        if opened.total > limit:
            raise DownloadError(f"{source.what} is {opened.total} bytes, more than {limit}")
        data = bytearray()
        while len(data) < opened.total and (piece := opened.body.read(opened.total - len(data))):
            data += piece
    finally:
        opened.body.close()
    if len(data) != opened.total:
        raise DownloadError(f"{source.what} ended after {len(data)} of {opened.total} bytes")
    tmp = path.with_suffix(".bmap.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _is_enospc(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


class ImageCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._partial = root / "partial"
        self._entries: dict[str, _Entry] = {}
        self._pins: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._fetches: dict[str, Fetch] = {}
        self._clock = 0.0
        self._partial.mkdir(parents=True, exist_ok=True)
        self._load()

    # ---- index -----------------------------------------------------------------------------

    def _img(self, sha: str) -> Path:
        return self.root / f"{sha}.img"

    def _meta(self, sha: str) -> Path:
        return self.root / f"{sha}.json"

    def _load(self) -> None:
        for meta in self.root.glob("*.json"):
            try:
                data = json.loads(meta.read_text())
                entry = _Entry(
                    sha256=_check_sha(data["sha256"]),
                    size=int(data["size"]),
                    xxh3_128=str(data["xxh3_128"]),
                    name=str(data.get("name", "")),
                    last_used=float(data.get("last_used", 0.0)),
                )
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("cache sidecar unreadable, dropping path=%s", meta)
                self._drop(meta.stem)
                continue
            img = self._img(entry.sha256)
            if not img.is_file() or img.stat().st_size != entry.size:
                log.warning("cache image missing or truncated, dropping sha256=%s", entry.sha256)
                self._drop(entry.sha256)
                continue
            self._entries[entry.sha256] = entry
            self._clock = max(self._clock, entry.last_used)
        for img in self.root.glob("*.img"):
            if img.stem not in self._entries:
                img.unlink(missing_ok=True)  # an image without a sidecar was never proven

    def _now(self) -> float:
        # Strictly increasing, so two uses in the same clock tick still order for LRU.
        self._clock = max(time.time(), self._clock + 1e-6)
        return self._clock

    def _drop(self, sha: str) -> None:
        self._entries.pop(sha, None)
        self._img(sha).unlink(missing_ok=True)
        self._meta(sha).unlink(missing_ok=True)
        self._bmap(sha).unlink(missing_ok=True)

    def _bmap(self, sha: str) -> Path:
        return self.root / f"{sha}.bmap"

    def _write_meta(self, entry: _Entry) -> None:
        tmp = self._meta(entry.sha256).with_suffix(".json.tmp")
        tmp.write_text(
            json.dumps(
                {
                    "sha256": entry.sha256,
                    "size": entry.size,
                    "xxh3_128": entry.xxh3_128,
                    "name": entry.name,
                    "last_used": entry.last_used,
                }
            )
        )
        os.replace(tmp, self._meta(entry.sha256))

    @property
    def used_bytes(self) -> int:
        return sum(e.size for e in self._entries.values())

    def __contains__(self, sha256: str) -> bool:
        return sha256.lower() in self._entries

    def _source(self, entry: _Entry) -> SourceImage:
        return SourceImage(
            path=self._img(entry.sha256),
            size=entry.size,
            sha256=entry.sha256,
            xxh3_128=entry.xxh3_128,
            proven=True,
            name=entry.name,
        )

    async def get(self, sha256: str) -> SourceImage | None:
        """The cached image, or None; a cached file that lost bytes is refused and removed."""
        sha = _check_sha(sha256)
        entry = self._entries.get(sha)
        if entry is None:
            return None
        img = self._img(sha)
        try:
            size = (await asyncio.to_thread(img.stat)).st_size
        except FileNotFoundError:
            size = -1
        if size != entry.size:
            await asyncio.to_thread(self._drop, sha)
            raise CorruptImage(
                f"cached image {sha[:12]}… is {size} bytes, expected {entry.size}; removed"
            )
        entry = _Entry(sha, entry.size, entry.xxh3_128, entry.name, self._now())
        self._entries[sha] = entry
        await asyncio.to_thread(self._write_meta, entry)
        return self._source(entry)

    # ---- pins and eviction -----------------------------------------------------------------

    def pin(self, sha256: str) -> None:
        sha = _check_sha(sha256)
        self._pins[sha] = self._pins.get(sha, 0) + 1

    def unpin(self, sha256: str) -> None:
        sha = _check_sha(sha256)
        left = self._pins.get(sha, 0) - 1
        if left > 0:
            self._pins[sha] = left
        else:
            self._pins.pop(sha, None)

    @contextlib.contextmanager
    def pinned(self, sha256: str) -> Iterator[None]:
        """Keep an image from eviction while a job holds it (queued or burning)."""
        self.pin(sha256)
        try:
            yield
        finally:
            self.unpin(sha256)

    def is_pinned(self, sha256: str) -> bool:
        return sha256.lower() in self._pins

    def _make_room(self, needed: int) -> None:
        """Evict least recently used, unpinned images until `needed` more bytes fit."""
        if needed > self.max_bytes:
            raise DiskFull(
                f"an image of {needed} bytes is larger than the cache ({self.max_bytes})"
            )
        victims = sorted(
            (e for e in self._entries.values() if e.sha256 not in self._pins),
            key=lambda e: e.last_used,
        )
        for victim in victims:
            if self.used_bytes + needed <= self.max_bytes:
                break
            log.info("cache evict sha256=%s size=%d", victim.sha256, victim.size)
            self._drop(victim.sha256)
        if self.used_bytes + needed > self.max_bytes:
            raise DiskFull(
                f"cache full: {self.used_bytes} bytes held by images queued or burning, "
                f"{needed} more needed, limit {self.max_bytes}"
            )

    # ---- for the swarm (appliance.swarm) ----------------------------------------------------

    def partial_path(self, sha256: str) -> Path:
        """Where a download of the image grows (verified chunks when the swarm feeds it)."""
        return self._partial / f"{_check_sha(sha256)}.part"

    def held(self, sha256: str) -> tuple[Path, int] | None:
        """Path and size of a cached image, without counting as a use (for serving peers)."""
        entry = self._entries.get(sha256.lower())
        return None if entry is None else (self._img(entry.sha256), entry.size)

    def downloading(self, sha256: str) -> bool:
        """Whether a download of the image is running (its partial file is growing)."""
        return sha256.lower() in self._fetches

    # ---- adding ----------------------------------------------------------------------------

    def _lock(self, sha: str) -> asyncio.Lock:
        return self._locks.setdefault(sha, asyncio.Lock())

    async def _admit(
        self, part: Path, sha: str, size: int | None, name: str, *, link: bool = False
    ) -> SourceImage:
        """Prove a complete file and move it into the cache (`link`: and leave it where it is
        too, for readers still opening it), or remove it."""
        actual, digest, fast = await asyncio.to_thread(_digest_file, part)
        if size is not None and actual != size:
            await asyncio.to_thread(part.unlink, True)
            raise CorruptImage(f"image {name or sha[:12]} is {actual} bytes, the take says {size}")
        if digest != sha:
            await asyncio.to_thread(part.unlink, True)
            raise CorruptImage(
                f"image {name or sha[:12]} has SHA-256 {digest}, the take says {sha}; removed"
            )
        entry = _Entry(sha, actual, fast, name, self._now())
        try:
            await asyncio.to_thread(self._write_meta, entry)
        except OSError as exc:
            await asyncio.to_thread(part.unlink, True)
            await asyncio.to_thread(self._meta(sha).unlink, True)
            if _is_enospc(exc):
                raise DiskFull(f"disk full while caching {name or sha[:12]}") from exc
            raise
        if link:
            await asyncio.to_thread(self._img(sha).unlink, True)
            await asyncio.to_thread(os.link, part, self._img(sha))
        else:
            await asyncio.to_thread(os.replace, part, self._img(sha))
        self._entries[sha] = entry
        log.info("cache add sha256=%s size=%d", sha, actual)
        return self._source(entry)

    async def add_file(self, path: Path, sha256: str, name: str = "") -> SourceImage:
        """Copy a local image into the cache after proving it against `sha256`."""
        sha = _check_sha(sha256)
        async with self._lock(sha):
            if sha in self._entries:
                cached = await self.get(sha)
                if cached is not None:
                    return cached
            size = (await asyncio.to_thread(path.stat)).st_size
            self._make_room(size)
            part = self._partial / f"{sha}.part"
            try:
                await asyncio.to_thread(shutil.copyfile, path, part)
            except OSError as exc:
                part.unlink(missing_ok=True)
                if _is_enospc(exc):
                    raise DiskFull(f"disk full while caching {path}") from exc
                raise
            return await self._admit(part, sha, size, name or path.name)

    async def start_fetch(
        self, source: ByteSource, sha256: str, size: int, name: str = ""
    ) -> Fetch:
        """Start downloading an image the cache lacks (or join the download under way), resuming
        a partial file. Raises DownloadError (404, refused) or CorruptImage (another length).
        Every call is paired with `end_fetch`."""
        sha = _check_sha(sha256)
        async with self._lock(sha):
            fetch = self._fetches.get(sha)
            if fetch is None or fetch.download.error is not None:  # none, or one that failed
                self._make_room(size)
                part = self._partial / f"{sha}.part"
                dl = await asyncio.to_thread(start_download_to, source, part, size)
                fetch = Fetch(sha, name or source.what.rsplit("/", 1)[-1], dl)
                self._fetches[sha] = fetch
            fetch.users += 1
            return fetch

    async def end_fetch(self, fetch: Fetch) -> SourceImage | None:
        """A burn is done with `fetch`. A complete download is proven and admitted (and
        returned; CorruptImage when it is not the take's image) by the first burn to end after
        it completed: linked, so other burns still reading the partial file keep it. The last
        burn stops an unfinished download and keeps its partial file to resume, unless the disk
        was full."""
        fetch.users -= 1
        dl = fetch.download
        async with self._lock(fetch.sha256):
            try:
                if dl.done:
                    if fetch.sha256 in self._entries:
                        return await self.get(fetch.sha256)
                    return await self._admit(
                        dl.path, fetch.sha256, dl.size, fetch.name, link=fetch.users > 0
                    )
                if isinstance(dl.error, DiskFull) and fetch.users == 0:
                    await asyncio.to_thread(dl.path.unlink, True)
                    raise DiskFull(f"{dl.error}; partial file removed") from dl.error
                return None
            finally:
                if fetch.users == 0:
                    if self._fetches.get(fetch.sha256) is fetch:
                        del self._fetches[fetch.sha256]
                    forget(dl)
                    if dl.done:
                        await asyncio.to_thread(dl.path.unlink, True)

    async def open_for_burn(
        self, source: ByteSource, sha256: str, size: int, name: str = "", *, stream: bool
    ) -> tuple[SourceImage, Fetch | None]:
        """The image a burn reads: the cached one; else a download. A burn that writes while
        downloading (`stream`) gets the growing file as soon as its format can be told, with
        the `Fetch` to hand to `end_fetch` when it is done; any other burn gets the proven file
        once the download is complete."""
        cached = await self.get(sha256)
        if cached is not None:
            return cached, None
        if not stream:
            return await self.fetch(source, sha256, size, name), None
        fetch = await self.start_fetch(source, sha256, size, name)
        try:
            await asyncio.to_thread(wait_until_readable, fetch.download)
        except BaseException:
            await self.end_fetch(fetch)
            raise
        return fetch.growing(), fetch

    async def block_map(self, source: ByteSource, sha256: str) -> Path | None:
        """The block map of image `sha256`, kept beside it; None when it cannot be had (the
        burn then writes the whole image, which is slower but as good)."""
        path = self._bmap(_check_sha(sha256))
        if await asyncio.to_thread(path.is_file):
            return path
        try:
            await asyncio.to_thread(_fetch_small, source, path, MAX_BMAP)
        except (BurnError, OSError) as exc:
            log.warning("no block map sha256=%s error=%s", sha256, exc)
            return None
        return path

    async def forget_block_map(self, sha256: str) -> None:
        """A block map that did not match its image goes, so the next burn fetches it anew."""
        await asyncio.to_thread(self._bmap(_check_sha(sha256)).unlink, True)

    async def fetch(
        self, source: ByteSource, sha256: str, size: int, name: str = ""
    ) -> SourceImage:
        """Download (or resume) an image whole, prove it, and return it from the cache."""
        sha = _check_sha(sha256)
        cached = await self.get(sha)
        if cached is not None:
            return cached
        fetch = await self.start_fetch(source, sha, size, name)
        try:
            await asyncio.to_thread(fetch.download.wait_done)
        finally:
            admitted = await self.end_fetch(fetch)
        if admitted is None:  # pragma: no cover - wait_done returned, so the file is whole
            raise DownloadError(f"the download of {source.what} did not finish")
        return admitted
