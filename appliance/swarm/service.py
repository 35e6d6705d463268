"""The agent's part in sharing images with the other kiosks of its show.

`Sharing` holds the peer token and show key the coordinator sends (`peer_token`), runs the peer
server (`appliance.swarm.peer`) when the `[share]` table turns sharing on, tells the tracker what
this kiosk holds (`have`, after every connect and while downloading) and asks it who holds what
(`want` → `peers`). For a take whose image has a chunk manifest, `Sharing.source` gives the
cache's download a `SwarmSource` (`appliance.swarm.source`): verified chunks from peers and the
origin at once (`appliance.swarm.engine`), while the peer server serves others the part already
written; the cache still proves the whole file's SHA-256 before it may be burned. It answers
None when sharing cannot help (off, no manifest, a manifest that is not the take's): the agent
then reads the take's plain source, resuming from the same partial file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from appliance.config import ShareConfig
from appliance.drives.base import CorruptImage, SourceImage
from appliance.images.cache import ImageCache
from appliance.images.sources import HttpSource
from appliance.swarm.engine import ChunkFetch, Counters, PeerInfo
from appliance.swarm.peer import Offer, PeerServer
from appliance.swarm.source import SwarmSource
from wire import swarm as sw

log = logging.getLogger(__name__)

MANIFEST_PATH = "/api/v1/images/{sha256}/manifest"
TRACKER_WAIT = 5.0
POLL = 0.5  # seconds between asking the tracker while fetching
KEEP_COUNTS = 16  # finished downloads whose sources the kiosk may still show

Send = Callable[[dict[str, Any]], Awaitable[bool]]


@dataclass(slots=True)
class Progress:
    """One download, as the kiosk and the dashboard show it."""

    sha256: str
    size: int
    source: SwarmSource | None = None
    counters: Counters = field(default_factory=Counters)
    done: bool = False  # complete: no more reports of a partial state may follow the last one
    fetch: ChunkFetch | None = None
    pushing: asyncio.Task[None] | None = None  # a `have` on its way
    dirty: bool = False  # changed since that `have` was made

    def written(self) -> int:
        return 0 if self.source is None else self.source.held()


def _verified_prefix(part: Path, manifest: sw.Manifest) -> int:
    """Bytes of `part` from the start that are whole, correct chunks; the rest is cut off
    (worker thread). An earlier run only appended verified chunks, but a crash may tear the
    last one, so this is checked again rather than trusted."""
    try:
        have = part.stat().st_size
    except FileNotFoundError:
        return 0
    good = 0
    with part.open("rb") as f:
        for index in range(manifest.count):
            start, length = manifest.span(index)
            if start + length > have:
                break
            data = f.read(length)
            try:
                manifest.check_chunk(index, data)
            except sw.BadChunk:
                break
            good = start + length
    if good != have:
        with part.open("rb+") as f:
            f.truncate(good)
    return good


def lan_address(target: str) -> str:
    """The local address the kiosk reaches `target` (a URL) from: its LAN address, the one other
    kiosks of the venue reach it at. A UDP connect sends nothing (blocking: call in a thread)."""
    parts = urlsplit(target)
    host = parts.hostname or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((host, parts.port or 80))
        return str(s.getsockname()[0])


class Sharing:
    def __init__(
        self,
        config: ShareConfig,
        cache: ImageCache,
        *,
        send: Send,
        coordinator_url: str | None,
        headers_for: Callable[[str], dict[str, str]],
        download_timeout: float = 30.0,
    ) -> None:
        self.config = config
        # `[cache] download_timeout`: how long the take's own URL may go without a byte when
        # the swarm falls back to it, as for a download without sharing.
        self.download_timeout = download_timeout
        self.cache = cache
        self.send = send
        self.coordinator_url = coordinator_url
        self.headers_for = headers_for  # the credential, for the coordinator's own URLs
        self.token: str | None = None
        self.address: str | None = None
        self.server: PeerServer | None = None
        self.downloads: dict[str, Progress] = {}
        self.last: Counters | None = None  # where the last finished fetch got its bytes
        self._finished_counts: dict[str, Counters] = {}  # the latest few, for the kiosk
        self.manifests: dict[str, sw.Manifest] = {}
        self._answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._peer_http: aiohttp.ClientSession | None = None
        self._dir = cache.root / "manifests"

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._peer_http = aiohttp.ClientSession()
        await asyncio.to_thread(self._dir.mkdir, exist_ok=True)
        if not self.config.serve:
            return
        self.server = PeerServer(
            self._offer,
            host=self.config.bind,
            port=self.config.port,
            max_uploads=self.config.max_uploads,
            rate=self.config.upload_rate,
        )
        port = await self.server.start()
        host = self.config.address
        if host is None and self.coordinator_url is not None:
            try:
                host = await asyncio.to_thread(lan_address, self.coordinator_url)
            except OSError as exc:
                log.warning("cannot tell the LAN address; not serving peers error=%s", exc)
        self.address = None if host is None else f"{host}:{port}"

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()
        if self._peer_http is not None:
            await self._peer_http.close()

    def counters(self, take: Any) -> Counters | None:
        """Where the bytes of a take (anything with a `sha256`) came from, if from the swarm:
        while it downloads, and for the last few downloads after."""
        active = self.downloads.get(take.sha256)
        if active is not None:
            return active.counters
        return self._finished_counts.get(take.sha256)

    def _offer(self, sha256: str) -> Offer | None:
        held = self.cache.held(sha256)
        if held is not None:
            path, size = held
            return Offer(path, size, lambda: size)
        active = self.downloads.get(sha256)
        if active is not None and active.source is not None and self.cache.downloading(sha256):
            return Offer(self.cache.partial_path(sha256), active.size, active.source.held)
        return None

    # ---- the link ----------------------------------------------------------------------------

    def on_message(self, message: dict[str, Any]) -> None:
        match message.get("type"):
            case "peer_token":
                self.token = str(message["token"])
                if self.server is not None:
                    self.server.set_key(int(message["show"]), bytes.fromhex(str(message["key"])))
            case "peers":
                future = self._answers.pop(str(message.get("sha256")), None)
                if future is not None and not future.done():
                    future.set_result(message)

    async def announce(self, takes: dict[str, str]) -> None:
        """Tell the tracker about every cached image of the catalog with a manifest
        (`takes`: SHA-256 → manifest digest); called once online."""
        if self.address is None:
            return
        for sha, digest in takes.items():
            if self.cache.held(sha) is None:
                continue
            manifest = await self._manifest(sha, digest)
            if manifest is not None:
                await self._have(manifest, manifest.size, frozenset(), Counters())

    async def _have(
        self, manifest: sw.Manifest, written: int, fetching: frozenset[int], counters: Counters
    ) -> bool:
        done = written // manifest.chunk_size if written < manifest.size else manifest.count
        return await self.send(
            {
                "type": "have",
                "sha256": manifest.sha256,
                "count": manifest.count,
                "chunks": sw.encode_have(range(done), manifest.count),
                "fetching": sw.encode_have(fetching, manifest.count),
                "address": self.address,
                "origin_bytes": counters.origin_bytes,
                "peer_bytes": counters.peer_bytes,
            }
        )

    async def _ask(self, manifest: sw.Manifest, progress: Progress) -> list[PeerInfo]:
        if progress.done:
            return []
        fetching = progress.fetch.fetching if progress.fetch is not None else frozenset()
        await self._have(manifest, progress.written(), fetching, progress.counters)
        loop = asyncio.get_running_loop()
        future = self._answers.setdefault(manifest.sha256, loop.create_future())
        if not await self.send({"type": "want", "sha256": manifest.sha256}):
            self._answers.pop(manifest.sha256, None)
            return []
        try:
            async with asyncio.timeout(TRACKER_WAIT):
                answer = await future
        except TimeoutError:
            self._answers.pop(manifest.sha256, None)
            return []
        peers = []
        for raw in answer.get("peers") or []:
            if raw.get("address") == self.address:
                continue
            try:
                peers.append(
                    PeerInfo(
                        str(raw["address"]),
                        sw.decode_have(str(raw["chunks"]), manifest.count),
                        sw.decode_have(str(raw["fetching"]), manifest.count),
                    )
                )
            except (KeyError, sw.SwarmError) as exc:
                log.info("tracker entry skipped peer=%s error=%s", raw.get("address"), exc)
        return peers

    def _push(self, manifest: sw.Manifest, progress: Progress) -> None:
        """Send a fresh `have` soon (one at a time; a later change waits for the next one)."""
        if progress.pushing is not None and not progress.pushing.done():
            progress.dirty = True
            return

        async def push() -> None:
            for _ in range(manifest.count + 1):  # bounded: each round sends the latest state
                if progress.done:
                    return
                progress.dirty = False
                fetching = progress.fetch.fetching if progress.fetch else frozenset()
                await self._have(manifest, progress.written(), fetching, progress.counters)
                if not progress.dirty:
                    return

        progress.pushing = asyncio.create_task(push(), name="share-have")

    async def _report(self, sha256: str, address: str, reason: str) -> None:
        await self.send(
            {"type": "bad_peer", "sha256": sha256, "address": address, "reason": reason[:500]}
        )

    # ---- manifests ---------------------------------------------------------------------------

    async def _manifest(self, sha256: str, digest: str) -> sw.Manifest | None:
        """The image's manifest whose canonical digest is `digest`: kept, or fetched from the
        coordinator; None (and a log line saying why) when there is no good one."""
        known = self.manifests.get(sha256)
        if known is not None and known.digest == digest:
            return known
        path = self._dir / f"{sha256}.json"
        raw: bytes | None
        try:
            raw = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raw = await self._download_manifest(sha256)
        if raw is None:
            return None
        if hashlib.sha256(raw).hexdigest() != digest:
            # A canonical copy hashes to the digest; re-encode in case spacing differs.
            try:
                parsed = sw.Manifest.from_json(json.loads(raw))
            except (ValueError, sw.ManifestError) as exc:
                log.warning("manifest unreadable sha256=%s error=%s", sha256, exc)
                return None
            if parsed.digest != digest:
                log.warning(
                    "manifest does not match the catalog sha256=%s digest=%s", sha256, digest
                )
                return None
            raw = parsed.encode()
        try:
            manifest = sw.Manifest.from_json(json.loads(raw))
        except (ValueError, sw.ManifestError) as exc:
            log.warning("manifest unreadable sha256=%s error=%s", sha256, exc)
            return None
        await asyncio.to_thread(path.write_bytes, raw)
        self.manifests[sha256] = manifest
        return manifest

    async def _download_manifest(self, sha256: str) -> bytes | None:
        if self.coordinator_url is None or self._peer_http is None:
            return None
        url = urljoin(self.coordinator_url, MANIFEST_PATH.format(sha256=sha256))
        try:
            async with self._peer_http.get(url, headers=self.headers_for(url)) as resp:
                if resp.status != 200:
                    log.warning("manifest not served sha256=%s status=%d", sha256, resp.status)
                    return None
                return await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("manifest fetch failed sha256=%s error=%s", sha256, exc)
            return None

    # ---- fetching ----------------------------------------------------------------------------

    async def source(
        self, sha256: str, size: int, digest: str | None, url: str, headers: dict[str, str]
    ) -> SwarmSource | None:
        """Where the cache's download should read the take from: the swarm, or None when
        sharing cannot help (off, no manifest, one that is not the take's): then the take's
        plain source. A partial file an earlier run left is cut back to its verified chunks
        first, unless a download of it is running."""
        if not self.config.fetch or digest is None or self._peer_http is None:
            return None
        manifest = await self._manifest(sha256, digest)
        if manifest is None:
            return None
        try:
            manifest.check_take(sha256, size)
        except sw.ManifestMismatch as exc:
            log.warning("manifest refused sha256=%s error=%s", sha256, exc)
            return None
        if not self.cache.downloading(sha256):
            await asyncio.to_thread(_verified_prefix, self.cache.partial_path(sha256), manifest)
        progress = Progress(manifest.sha256, manifest.size)
        peer_http = self._peer_http
        source = SwarmSource(
            asyncio.get_running_loop(),
            lambda: self._chunk_fetch(manifest, progress, url, headers, peer_http),
            HttpSource(url, headers=headers, timeout=self.download_timeout),
            manifest.size,
            manifest.chunk_size,
            on_done=lambda: self._finished(manifest, progress),
        )
        progress.source = source
        self.downloads[manifest.sha256] = progress
        return source

    def _chunk_fetch(
        self,
        manifest: sw.Manifest,
        progress: Progress,
        url: str,
        headers: dict[str, str],
        peer_http: aiohttp.ClientSession,
    ) -> ChunkFetch:
        chunks = ChunkFetch(
            manifest,
            origin_url=url,
            origin_session=peer_http,
            origin_headers=headers,
            peer_session=peer_http,
            ask_tracker=lambda: self._ask(manifest, progress),
            token=lambda: self.token,
            on_bad_peer=lambda peer, why: self._report(manifest.sha256, peer, why),
            on_origin_pick=lambda: self._push(manifest, progress),
            me=self.address,
            window=self.config.window,
            stall=self.config.stall,
            poll=POLL,
        )
        # Bytes and bans add up over the fetches of one download (a resume starts another).
        chunks.counters = progress.counters
        progress.fetch = chunks
        log.info("swarm fetch sha256=%s chunks=%d", manifest.sha256, manifest.count)
        return chunks

    async def _finished(self, manifest: sw.Manifest, progress: Progress) -> None:
        counters = progress.counters
        progress.done = True
        log.info(
            "swarm fetch complete sha256=%s origin_bytes=%d peer_bytes=%d banned=%s",
            manifest.sha256,
            counters.origin_bytes,
            counters.peer_bytes,
            ",".join(sorted(counters.banned)) or "-",
        )
        self.last = counters
        self.downloads.pop(manifest.sha256, None)
        self._finished_counts[manifest.sha256] = counters
        while len(self._finished_counts) > KEEP_COUNTS:
            del self._finished_counts[next(iter(self._finished_counts))]
        await self._have(manifest, manifest.size, frozenset(), counters)

    async def fetch(
        self,
        sha256: str,
        size: int,
        digest: str | None,
        url: str,
        headers: dict[str, str],
        name: str,
    ) -> SourceImage | None:
        """Download the take through the cache from the swarm and prove it; None when sharing
        cannot help. Raises `CorruptImage` (the whole file is not the take's) and `DiskFull`."""
        source = await self.source(sha256, size, digest, url, headers)
        if source is None:
            return None
        try:
            return await self.cache.fetch(source, sha256, size, name)
        except CorruptImage:
            self.forget_manifest(sha256)
            raise
        finally:
            self.downloads.pop(sha256, None)

    def forget_manifest(self, sha256: str) -> None:
        """Every chunk matched the manifest, yet the file is not the take's: drop the manifest."""
        self.manifests.pop(sha256, None)
        (self._dir / f"{sha256}.json").unlink(missing_ok=True)
