"""Fetch one image chunk by chunk from several sources at once, verified, handed out in order.

`ChunkFetch.chunks(first)` yields the image's chunks from chunk `first` on, in order, each one
checked against the manifest (`wire.swarm.Manifest.check_chunk`) before anyone sees it. Behind
it, one worker per source pulls the chunks a `wire.swarm.Picker` hands it within a window ahead
of the next chunk to deliver (so memory stays bounded: at most `window` chunks are held): a few
requests at a time from each peer kiosk the tracker names (HTTP `Range` with the peer token), and
from the origin (the coordinator's image store or the take's URL), which the picker asks only
for chunks no peer holds or fetches, so the venue's uplink carries each chunk about once.

A peer that sends bytes that are not the chunk (wrong digest, wrong length) is banned for the rest
of the download and reported (`on_bad_peer`); one that breaks off, stalls or refuses gets a strike
and is dropped after `STRIKES`. The origin failing `ORIGIN_FAILURES` times in a row with no peer
able to help ends the fetch with `SwarmFailed`, and so does an origin that ignores `Range`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from wire import swarm as sw

log = logging.getLogger(__name__)

ORIGIN = "origin"
STRIKES = 2
ORIGIN_FAILURES = 5
PIECE = 256 * 1024


class SwarmFailed(Exception):
    """No source could deliver the image; the text says why."""


class PeerRefused(Exception):
    """A source answered, but not with the chunk (HTTP status, range); a strike, not a ban."""


@dataclass(frozen=True, slots=True)
class PeerInfo:
    address: str  # HOST:PORT of its peer server
    chunks: frozenset[int]
    fetching: frozenset[int]


@dataclass(slots=True)
class Counters:
    origin_bytes: int = 0
    peer_bytes: int = 0
    banned: set[str] = field(default_factory=set)


TrackerAsk = Callable[[], Awaitable[list[PeerInfo]]]
BadPeerReport = Callable[[str, str], Awaitable[None]]


class ChunkFetch:
    def __init__(
        self,
        manifest: sw.Manifest,
        *,
        origin_url: str,
        origin_session: aiohttp.ClientSession,
        peer_session: aiohttp.ClientSession,
        origin_headers: dict[str, str] | None = None,
        ask_tracker: TrackerAsk,
        token: Callable[[], str | None],
        on_bad_peer: BadPeerReport,
        on_origin_pick: Callable[[], None] = lambda: None,
        me: str | None = None,
        window: int = 8,
        per_peer: int = 2,
        max_peers: int = 6,
        stall: float = 20.0,
        poll: float = 1.0,
        patience: float = 5.0,
        seed: int | None = None,
    ) -> None:
        self.manifest = manifest
        self.origin_url = origin_url
        self.origin_session = origin_session
        self.origin_headers = origin_headers or {}
        self.peer_session = peer_session
        self.ask_tracker = ask_tracker
        self.token = token
        self.on_bad_peer = on_bad_peer
        # Told at once when the origin is asked for a chunk, so the other kiosks hear of it
        # (the tracker's `fetching`) before they ask the origin for the same one.
        self.on_origin_pick = on_origin_pick
        self.me = me  # this kiosk's peer address, to find its share among the fetchers
        self.window = window
        self.per_peer = per_peer
        self.max_peers = max_peers
        self.stall = stall
        self.poll = poll
        self.patience = patience
        if seed is None:
            seed = random.randrange(1 << 30)  # noqa: S311 - spreading load, not a secret
        self.picker = sw.Picker(manifest.count, seed=seed)
        self.counters = Counters()
        self._ready: dict[int, bytes] = {}
        self._changed = asyncio.Event()
        self._next = 0
        self._strikes: dict[str, int] = {}
        self._dropped: set[str] = set()  # peers that failed STRIKES times: not asked again
        self._workers: dict[str, list[asyncio.Task[None]]] = {}
        self._failure: BaseException | None = None
        self._progress_at = time.monotonic()
        self._origin_failures = 0

    # ---- what the caller sees ------------------------------------------------------------------

    @property
    def fetching(self) -> frozenset[int]:
        """Chunks on their way, and those here but not yet handed out in order: others should
        wait for this kiosk to hold them rather than ask the origin."""
        return frozenset(self.picker.busy) | frozenset(self._ready)

    async def chunks(self, first: int = 0) -> AsyncIterator[tuple[int, bytes]]:
        """Chunks `first`.. in order, each verified."""
        self._next = first
        self.picker.have.update(range(first))
        self.picker.horizon = min(self.manifest.count, first + self.window)
        # The origin starts after the tracker's first answer (in `_tracker_loop`), so it is
        # not asked for chunks a peer holds.
        tasks = [asyncio.create_task(self._tracker_loop(), name="swarm-tracker")]
        try:
            while self._next < self.manifest.count:
                while self._next not in self._ready:
                    if self._failure is not None:
                        raise self._failure
                    self._changed.clear()
                    await self._changed.wait()
                data = self._ready.pop(self._next)
                index = self._next
                self._next += 1
                self.picker.horizon = min(self.manifest.count, self._next + self.window)
                self._pulse()
                yield index, data
        finally:
            for worker in [*tasks, *(t for ts in self._workers.values() for t in ts)]:
                worker.cancel()
            for worker in [*tasks, *(t for ts in self._workers.values() for t in ts)]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker

    # ---- sources -----------------------------------------------------------------------------

    def _pulse(self) -> None:
        self._changed.set()

    def _start(self, name: str, count: int) -> None:
        self._workers[name] = [
            asyncio.create_task(self._worker(name), name=f"swarm-{name}") for _ in range(count)
        ]
        if name == ORIGIN:
            self.picker.set_source(ORIGIN, None)

    def _drop(self, name: str) -> None:
        self.picker.drop_source(name)
        for task in self._workers.pop(name, []):
            if task is not asyncio.current_task():
                task.cancel()

    async def _tracker_loop(self) -> None:
        while True:
            try:
                peers = await self.ask_tracker()
            except Exception as exc:  # the tracker is a help, never a reason to stop
                log.info("tracker not answering error=%s", exc)
                peers = []
            elsewhere: set[int] = set()
            for peer in peers:
                elsewhere |= peer.fetching
                if peer.address in self.counters.banned or peer.address in self._dropped:
                    continue
                if peer.address in self._workers:
                    self.picker.set_source(peer.address, peer.chunks)
                elif len(self._workers) - 1 < self.max_peers and peer.chunks:
                    self.picker.set_source(peer.address, peer.chunks)
                    self._start(peer.address, self.per_peer)
            self.picker.elsewhere = frozenset(elsewhere)
            self.picker.partition = self._partition(peers)
            if ORIGIN not in self._workers:
                self._start(ORIGIN, 1)
            self._pulse()
            await asyncio.sleep(self.poll)

    def _partition(self, peers: list[PeerInfo]) -> tuple[int, int] | None:
        """This kiosk's place among those fetching the image too (not those holding it all)."""
        if self.me is None:
            return None
        count = self.manifest.count
        fetchers = {
            p.address
            for p in peers
            if len(p.chunks) < count and p.address not in self.counters.banned
        }
        fetchers.add(self.me)
        ordered = sorted(fetchers)
        return ordered.index(self.me), len(ordered)

    async def _worker(self, name: str) -> None:
        while True:
            index = self._pick(name)
            if index is None:
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.patience if name == ORIGIN else self.poll):
                        await self._changed.wait()
                continue
            if name == ORIGIN:
                self.on_origin_pick()
            try:
                data = await self._get(name, index)
                self.manifest.check_chunk(index, data)
            except asyncio.CancelledError:
                self.picker.failed(index)  # dropped mid-chunk: someone else fetches it
                self._pulse()
                raise
            except sw.BadChunk as exc:
                self.picker.failed(index)
                await self._ban(name, exc)
                return
            except (aiohttp.ClientError, TimeoutError, OSError, PeerRefused) as exc:
                self.picker.failed(index)
                if not self._strike(name, index, exc):
                    return
                continue
            self.picker.finished(index)
            self._ready[index] = data
            self._progress_at = time.monotonic()
            if name == ORIGIN:
                self.counters.origin_bytes += len(data)
                self._origin_failures = 0
            else:
                self.counters.peer_bytes += len(data)
            self._pulse()

    def _pick(self, name: str) -> int | None:
        if name != ORIGIN:
            return self.picker.next_for(name)
        # The origin waits for peers while things move; once nothing arrived for `patience`,
        # it fetches what is missing itself.
        eager = time.monotonic() - self._progress_at > self.patience
        return self.picker.next_for(ORIGIN, eager=eager)

    async def _ban(self, name: str, exc: sw.BadChunk) -> None:
        if name == ORIGIN:
            self._fail(SwarmFailed(f"the origin sent a bad chunk ({exc}): manifest or image wrong"))
            return
        log.warning("peer banned peer=%s sha256=%s reason=%s", name, self.manifest.sha256, exc)
        self.counters.banned.add(name)
        self._drop(name)
        self._pulse()
        with contextlib.suppress(Exception):
            await self.on_bad_peer(name, str(exc))

    def _strike(self, name: str, index: int, exc: BaseException) -> bool:
        """Count a failure; False when the source is done for."""
        text = str(exc) or type(exc).__name__
        if name == ORIGIN:
            self._origin_failures += 1
            log.info(
                "origin failed chunk=%d attempt=%d error=%s", index, self._origin_failures, text
            )
            if self._origin_failures >= ORIGIN_FAILURES:
                self._fail(SwarmFailed(f"the origin failed {ORIGIN_FAILURES} times: {text}"))
                return False
            return True
        strikes = self._strikes.get(name, 0) + 1
        self._strikes[name] = strikes
        log.info("peer failed peer=%s chunk=%d strikes=%d error=%s", name, index, strikes, text)
        if strikes >= STRIKES:
            self._dropped.add(name)
            self._drop(name)
            self._pulse()
            return False
        return True

    def _fail(self, exc: BaseException) -> None:
        self._failure = exc
        self._pulse()

    async def _get(self, name: str, index: int) -> bytes:
        start, length = self.manifest.span(index)
        headers = {"Range": f"bytes={start}-{start + length - 1}"}
        if name == ORIGIN:
            session, url = self.origin_session, self.origin_url
            headers.update(self.origin_headers)
        else:
            token = self.token()
            if token is None:
                raise PeerRefused("no peer token yet")
            session = self.peer_session
            url = f"http://{name}/peer/v1/images/{self.manifest.sha256}"
            headers["Authorization"] = f"Bearer {token}"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.stall, sock_read=self.stall)
        async with session.get(url, headers=headers, timeout=timeout) as resp:
            whole = resp.status == 200 and start == 0 and length == self.manifest.size
            if resp.status == 200 and name == ORIGIN and not whole:
                self._fail(SwarmFailed(f"{url} does not answer Range requests"))
                raise PeerRefused("no ranges")
            if resp.status != 206 and not whole:
                raise PeerRefused(f"HTTP {resp.status}")
            buf = bytearray()
            # One byte past the chunk tells a long answer from an exact one.
            while len(buf) <= length:
                piece = await resp.content.read(min(PIECE, length + 1 - len(buf)))
                if not piece:
                    break
                buf += piece
        if len(buf) < length:
            # Closed mid-chunk: a strike. Too many bytes is a lie the manifest check bans.
            raise ConnectionError(f"closed after {len(buf)} of {length} bytes")
        return bytes(buf)
