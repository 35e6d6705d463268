"""Kiosks fetching an image from each other: real peer servers and a real origin on 127.0.0.1, real
cache files, the coordinator's real tracker and token code, and peers that lie.

Every chunk is checked before it is written; a peer that sends a wrong chunk or too many bytes is
banned and reported, one that stalls or closes mid-chunk is dropped, and the honest sources finish
the image with the right digest. Peer tokens that are missing, forged, expired or of another show
get 403. A fetch resumes from the verified prefix an earlier run left; a manifest that does not
describe the take's file never lets a byte into the cache; a full disk keeps nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from appliance.config import ShareConfig
from appliance.drives.base import CorruptImage, DiskFull
from appliance.images.cache import ImageCache
from appliance.swarm.engine import ChunkFetch, PeerInfo
from appliance.swarm.peer import Offer, PeerServer
from appliance.swarm.service import Sharing
from coordinator.swarm import PeerKeys, Tracker
from wire import agentmsg as am
from wire import swarm as sw

CHUNK = 64 * 1024
SHOW = 1
WAIT = 20.0
_RANGE = re.compile(r"bytes=(\d+)-(\d+)")


def blob(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def manifest_of(data: bytes) -> sw.Manifest:
    builder = sw.ManifestBuilder(CHUNK)
    builder.feed(data)
    return builder.finish()


@dataclass
class Served:
    """An HTTP server in the test: the origin, or a peer that lies in one way."""

    data: bytes
    mode: str = "honest"  # honest | corrupt | long | stall | close
    bytes_out: int = 0
    requests: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    address: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        match = _RANGE.fullmatch(request.headers.get("Range", ""))
        assert match is not None
        start, end = int(match[1]), int(match[2])
        body = self.data[start : end + 1]
        if self.mode == "corrupt":
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        elif self.mode == "long":
            body += b"extra"
        resp = web.StreamResponse(
            status=206, headers={"Content-Range": f"bytes {start}-{end}/{len(self.data)}"}
        )
        resp.content_length = len(body)
        await resp.prepare(request)
        if self.mode in ("stall", "close"):
            await resp.write(body[: len(body) // 2])
            if self.mode == "close":
                assert request.transport is not None
                request.transport.abort()
                return resp
            await self.release.wait()  # held until the test ends: the fetcher must give up
        await resp.write(body)
        self.bytes_out += len(body)
        await resp.write_eof()
        return resp


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Served], Awaitable[Served]]]:
    runners: list[tuple[web.AppRunner, Served]] = []

    async def start(served: Served) -> Served:
        app = web.Application()
        app.router.add_get("/{tail:.*}", served.handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        served.address = f"127.0.0.1:{port}"
        served.url = f"http://127.0.0.1:{port}/image"
        runners.append((runner, served))
        return served

    yield start
    for runner, served in runners:
        served.release.set()
        await runner.cleanup()


KEY = sw.show_key(b"k" * 32, SHOW)


def token(show: int = SHOW, expires: float | None = None, key: bytes = KEY) -> str:
    return sw.issue_token(key, show, 7, int(expires if expires is not None else time.time() + 600))


@pytest.fixture
async def peer_server(tmp_path: Path) -> AsyncIterator[tuple[PeerServer, bytes]]:
    data = blob(5 * CHUNK + 100, 1)
    path = tmp_path / "held.img"
    path.write_bytes(data)
    held = {"n": len(data)}
    server = PeerServer(
        lambda sha: Offer(path, len(data), lambda: held["n"]) if sha == "a" * 64 else None,
        host="127.0.0.1",
        port=0,
        max_uploads=1,
    )
    server.set_key(SHOW, KEY)
    await server.start()
    yield server, data
    await server.close()


async def peer_get(
    http: aiohttp.ClientSession, server: PeerServer, tok: str | None, rng: str
) -> tuple[int, bytes, dict[str, Any]]:
    headers = {"Range": rng}
    if tok is not None:
        headers["Authorization"] = f"Bearer {tok}"
    url = f"http://127.0.0.1:{server.port}/peer/v1/images/{'a' * 64}"
    async with http.get(url, headers=headers) as resp:
        body = await resp.read()
        problem = json.loads(body) if resp.status >= 400 else {}
        return resp.status, body, problem


# --- the peer server -----------------------------------------------------------------------


async def test_the_peer_server_serves_held_ranges_to_tokens_of_its_show(
    peer_server: tuple[PeerServer, bytes], http: aiohttp.ClientSession
) -> None:
    server, data = peer_server
    status, body, _ = await peer_get(http, server, token(), "bytes=100-199")
    assert (status, body) == (206, data[100:200])
    # Past what it holds: 416, not bytes it does not have.
    status, _, problem = await peer_get(http, server, token(), f"bytes=0-{len(data)}")
    assert status == 416
    assert "verified bytes held" in problem["detail"]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: None, "unknown"),
        (lambda: "not-a-token", "unknown"),
        (lambda: token(key=sw.show_key(b"other secret" * 3, SHOW)), "unknown"),
        (lambda: token(expires=time.time() - 1), "expired"),
        (lambda: token(show=2, key=sw.show_key(b"k" * 32, 2)), "show"),
    ],
)
async def test_the_peer_server_refuses_bad_tokens_with_403(
    peer_server: tuple[PeerServer, bytes],
    http: aiohttp.ClientSession,
    make: Callable[[], str | None],
    reason: str,
) -> None:
    server, _ = peer_server
    status, _, problem = await peer_get(http, server, make(), "bytes=0-9")
    assert status == 403
    assert problem["reason"] == reason
    assert server.bytes_sent == 0


async def test_the_peer_server_bounds_concurrent_uploads(
    peer_server: tuple[PeerServer, bytes], http: aiohttp.ClientSession
) -> None:
    server, data = peer_server
    server.throttle.rate = 128 * 1024  # the first upload takes two seconds or so
    url = f"http://127.0.0.1:{server.port}/peer/v1/images/{'a' * 64}"
    headers = {"Authorization": f"Bearer {token()}", "Range": f"bytes=0-{len(data) - 1}"}
    async with http.get(url, headers=headers) as first:  # headers in: the upload is running
        assert first.status == 206
        status, _, problem = await peer_get(http, server, token(), "bytes=0-9")
        assert status == 503
        assert problem["title"] == "Busy"
        assert await first.read() == data


# --- fetching chunks --------------------------------------------------------------------------


async def fetch_all(
    data: bytes,
    origin: Served,
    peers: list[Served],
    http: aiohttp.ClientSession,
    reports: list[tuple[str, str]],
) -> tuple[bytes, ChunkFetch]:
    manifest = manifest_of(data)
    every = frozenset(range(manifest.count))

    async def tracker() -> list[PeerInfo]:
        return [PeerInfo(p.address, every, frozenset()) for p in peers]

    async def report(peer: str, why: str) -> None:
        reports.append((peer, why))

    fetch = ChunkFetch(
        manifest,
        origin_url=origin.url,
        origin_session=http,
        peer_session=http,
        ask_tracker=tracker,
        token=token,
        on_bad_peer=report,
        stall=0.5,
        poll=0.05,
        patience=0.3,
        seed=3,
    )
    out = bytearray()
    async with asyncio.timeout(WAIT):
        async for index, chunk in fetch.chunks():
            assert manifest.span(index)[0] == len(out)
            out += chunk
    return bytes(out), fetch


async def test_chunks_come_from_peers_and_spare_the_origin(
    serve: Callable[[Served], Awaitable[Served]], http: aiohttp.ClientSession
) -> None:
    data = blob(20 * CHUNK + 7, 2)
    origin = await serve(Served(data))
    peers = [await serve(Served(data)), await serve(Served(data))]
    reports: list[tuple[str, str]] = []
    got, fetch = await fetch_all(data, origin, peers, http, reports)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    assert origin.bytes_out == 0  # the peers held everything
    assert all(p.bytes_out > 0 for p in peers)  # both were used
    assert fetch.counters.peer_bytes == len(data)
    assert reports == []


@pytest.mark.parametrize(
    ("mode", "banned"),
    [("corrupt", True), ("long", True), ("stall", False), ("close", False)],
)
async def test_a_lying_peer_is_left_and_the_honest_sources_finish(
    serve: Callable[[Served], Awaitable[Served]],
    http: aiohttp.ClientSession,
    mode: str,
    banned: bool,
) -> None:
    data = blob(12 * CHUNK + 3, 4)
    origin = await serve(Served(data))
    liar = await serve(Served(data, mode=mode))
    reports: list[tuple[str, str]] = []
    got, fetch = await fetch_all(data, origin, [liar], http, reports)
    assert got == data
    assert liar.requests >= 1
    assert fetch.counters.origin_bytes == len(data)  # every chunk came from the honest origin
    if banned:
        assert fetch.counters.banned == {liar.address}
        [(peer, why)] = reports
        assert peer == liar.address
        assert ("digest" if mode == "corrupt" else "bytes, the manifest says") in why or (
            "SHA-256" in why
        )
    else:
        assert fetch.counters.banned == set()
        assert reports == []


# --- the agent's sharing, with a cache and the coordinator's tracker ------------------------


@dataclass
class Kiosk:
    sharing: Sharing
    cache: ImageCache


class ShowTracker:
    """The coordinator's tracker and peer keys, reached the way the link would carry them."""

    def __init__(self, tmp: Path) -> None:
        self.tracker = Tracker()
        self.keys = PeerKeys(tmp / "peer.key")
        self.keys.load()
        self.sent: list[dict[str, Any]] = []

    def link(self, kiosk_id: int) -> Callable[[dict[str, Any]], Awaitable[bool]]:
        holder: dict[str, Sharing] = {}

        async def send(payload: dict[str, Any]) -> bool:
            self.sent.append(payload)
            message = am.parse_from_agent(payload)
            sharing = holder["sharing"]
            match message:
                case am.Have():
                    self.tracker.update(SHOW, f"link{kiosk_id}", kiosk_id, "k", message)
                case am.Want(sha256=sha):
                    peers = self.tracker.peers(SHOW, sha, f"link{kiosk_id}")
                    asyncio.get_running_loop().call_soon(sharing.on_message, peers.to_json())
            return True

        send.holder = holder  # type: ignore[attr-defined]
        return send

    def attach(self, sharing: Sharing, kiosk_id: int) -> None:
        sharing.send.holder["sharing"] = sharing  # type: ignore[attr-defined]
        sharing.on_message(self.keys.issue(SHOW, kiosk_id).to_json())


@pytest.fixture
async def kiosks(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Kiosk]]]:
    show = ShowTracker(tmp_path)
    made: list[Sharing] = []

    async def make(
        n: int, root: Path | None = None, download_timeout: float = 30.0, **conf: Any
    ) -> Kiosk:
        cache = ImageCache(root or tmp_path / f"kiosk{n}", 64 << 20)
        config = ShareConfig(
            fetch=True,
            serve=True,
            port=0,
            bind="127.0.0.1",
            address="127.0.0.1",
            stall=0.5,
            **conf,
        )
        sharing = Sharing(
            config,
            cache,
            send=show.link(n),
            coordinator_url=None,
            headers_for=lambda _: {},
            download_timeout=download_timeout,
        )
        await sharing.start()
        show.attach(sharing, n)
        made.append(sharing)
        return Kiosk(sharing, cache)

    yield make
    for sharing in made:
        await sharing.close()


def keep_manifest(cache: ImageCache, manifest: sw.Manifest) -> None:
    """What the agent keeps after fetching the manifest from the coordinator."""
    folder = cache.root / "manifests"
    folder.mkdir(exist_ok=True)
    (folder / f"{manifest.sha256}.json").write_bytes(manifest.encode())


async def test_a_kiosk_fetches_from_another_kiosk_of_its_show_through_the_tracker(
    kiosks: Callable[..., Awaitable[Kiosk]],
    serve: Callable[[Served], Awaitable[Served]],
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    data = blob(10 * CHUNK + 11, 5)
    manifest = manifest_of(data)
    sha = manifest.sha256
    origin = await serve(Served(data))
    a = await kiosks(1)
    src = tmp_path / "a.iso"
    src.write_bytes(data)
    await a.cache.add_file(src, sha)
    keep_manifest(a.cache, manifest)
    await a.sharing.announce({sha: manifest.digest})
    b = await kiosks(2)
    keep_manifest(b.cache, manifest)
    async with asyncio.timeout(WAIT):
        source = await b.sharing.fetch(sha, len(data), manifest.digest, origin.url, {}, "x.iso")
    assert source is not None
    assert source.path.read_bytes() == data
    assert sha in b.cache
    assert origin.bytes_out == 0  # all from kiosk 1
    assert a.sharing.server is not None
    assert a.sharing.server.bytes_sent == len(data)


async def test_the_origin_fallback_waits_as_long_as_the_cache_download_timeout_says(
    kiosks: Callable[..., Awaitable[Kiosk]],
    serve: Callable[[Served], Awaitable[Served]],
) -> None:
    # `[cache] download_timeout` is how long a take's own URL may stay silent; when the swarm
    # gives up and reads the take from that URL, the same bound holds (not a fixed 30 s).
    data = blob(2 * CHUNK, 9)
    manifest = manifest_of(data)
    origin = await serve(Served(data))
    b = await kiosks(2, download_timeout=4.5)
    keep_manifest(b.cache, manifest)
    source = await b.sharing.source(manifest.sha256, len(data), manifest.digest, origin.url, {})
    assert source is not None
    assert source.origin.what == origin.url
    assert source.origin.timeout == 4.5


async def test_a_fetch_resumes_from_the_verified_prefix_an_earlier_run_left(
    kiosks: Callable[..., Awaitable[Kiosk]],
    serve: Callable[[Served], Awaitable[Served]],
    http: aiohttp.ClientSession,
) -> None:
    data = blob(8 * CHUNK, 6)
    manifest = manifest_of(data)
    origin = await serve(Served(data))
    b = await kiosks(2)
    keep_manifest(b.cache, manifest)
    # Three good chunks, then a torn, damaged fourth (a power cut mid-write).
    part = b.cache.partial_path(manifest.sha256)
    part.write_bytes(data[: 3 * CHUNK] + b"\0" * (CHUNK // 2))
    async with asyncio.timeout(WAIT):
        source = await b.sharing.fetch(
            manifest.sha256, len(data), manifest.digest, origin.url, {}, "r.iso"
        )
    assert source is not None
    assert source.path.read_bytes() == data
    assert origin.bytes_out == len(data) - 3 * CHUNK  # the kept chunks were not fetched again


async def test_a_manifest_that_does_not_describe_the_take_lets_nothing_into_the_cache(
    kiosks: Callable[..., Awaitable[Kiosk]],
    serve: Callable[[Served], Awaitable[Served]],
    http: aiohttp.ClientSession,
) -> None:
    data = blob(4 * CHUNK, 7)
    other = blob(4 * CHUNK, 8)
    sha = hashlib.sha256(data).hexdigest()
    origin = await serve(Served(other))  # the origin and the manifest agree, the take does not
    lying = sw.Manifest(len(data), sha, CHUNK, manifest_of(other).chunks)
    b = await kiosks(2)
    keep_manifest(b.cache, lying)
    with pytest.raises(CorruptImage, match="SHA-256"):
        await b.sharing.fetch(sha, len(data), lying.digest, origin.url, {}, "m.iso")
    assert sha not in b.cache
    assert not b.cache.partial_path(sha).exists()
    assert not (b.cache.root / "manifests" / f"{sha}.json").exists()
    # A manifest of another size or file is refused before a byte moves: the plain download
    # (which checks the whole file) takes over.
    wrong = manifest_of(other)
    keep_manifest(b.cache, sw.Manifest(wrong.size, sha, CHUNK, wrong.chunks))
    short = sw.Manifest(wrong.size, sha, CHUNK, wrong.chunks)
    before = origin.bytes_out
    assert await b.sharing.fetch(sha, len(data) + 1, short.digest, origin.url, {}, "m") is None
    assert origin.bytes_out == before
    # A manifest whose digest is not the catalog's is not used either.
    assert await b.sharing.fetch(sha, len(data), "0" * 64, origin.url, {}, "m") is None


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB tmpfs, so ENOSPC is the kernel's."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=True, timeout=30
    )
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True, timeout=30)


async def test_a_full_disk_keeps_nothing(
    kiosks: Callable[..., Awaitable[Kiosk]],
    serve: Callable[[Served], Awaitable[Served]],
    http: aiohttp.ClientSession,
    tiny_fs: Path,
) -> None:
    data = blob(8 * CHUNK, 9)
    manifest = manifest_of(data)
    origin = await serve(Served(data))
    b = await kiosks(2, root=tiny_fs / "cache")
    keep_manifest(b.cache, manifest)
    with pytest.raises(DiskFull, match="partial file removed"):
        await b.sharing.fetch(manifest.sha256, len(data), manifest.digest, origin.url, {}, "f")
    assert not b.cache.partial_path(manifest.sha256).exists()
    assert manifest.sha256 not in b.cache
