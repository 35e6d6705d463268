"""The swarm as a `ByteSource` (`appliance.images.sources`): the cache's one downloader
(`download.Download`) reads verified chunks from peers and the origin as if from one file.

`SwarmSource.open(start)` runs on the download's thread: it starts a `ChunkFetch` on the agent's
event loop from the chunk holding `start` and hands its chunks, in order and already checked
against the manifest, to the download through a small bounded queue (so at most a few chunks wait
in memory). If the swarm gives up (`SwarmFailed`: the origin keeps failing, or does not answer
ranges), the body goes on from the same offset with the plain `HttpSource` of the take, so the
download completes from the honest origin. `held()` is how many bytes from the start the
download has surely written, which the peer server may serve meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
from collections.abc import Callable, Coroutine
from typing import Any

from appliance.images.sources import Body, HttpSource, Opened
from appliance.swarm.engine import ChunkFetch, SwarmFailed

log = logging.getLogger(__name__)

QUEUE_CHUNKS = 2  # verified chunks waiting for the download's thread
TAKE_TIMEOUT = 0.5  # how often a waiting read checks whether the body was closed


class _Done:
    """Put on the queue after the last chunk, or with the error that ended the fetch."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class _SwarmBody:
    def __init__(
        self, owner: SwarmSource, fetch: ChunkFetch, start: int, first_chunk_start: int
    ) -> None:
        self.owner = owner
        self.fetch = fetch
        self.queue: queue.Queue[bytes | _Done] = queue.Queue(QUEUE_CHUNKS)
        self.buffer = memoryview(b"")
        self.skip = start - first_chunk_start  # bytes of the first chunk before `start`
        self.offset = start  # the next byte this body hands out
        self.closed = False
        self.fallback: Body | None = None
        self.future: concurrent.futures.Future[None] | None = None

    async def pump(self, first: int) -> None:
        try:
            async for _, data in self.fetch.chunks(first):
                await asyncio.to_thread(self._put, data)
            await asyncio.to_thread(self._put, _Done())
        except SwarmFailed as exc:
            await asyncio.to_thread(self._put, _Done(exc))

    def _put(self, item: bytes | _Done) -> None:
        while not self.closed:
            with contextlib.suppress(queue.Full):
                self.queue.put(item, timeout=TAKE_TIMEOUT)
                return

    def read(self, n: int) -> bytes:
        # The download wrote everything it read before this call: that much is held.
        self.owner.written = self.offset
        if self.fallback is not None:
            piece = self.fallback.read(n)
            self.offset += len(piece)
            return piece
        while not self.buffer:
            item = self._take()
            if isinstance(item, _Done):
                if item.error is None:
                    return b""
                log.warning("swarm gave up, going on from the origin error=%s", item.error)
                self.owner.failed = item.error
                opened = self.owner.origin.open(self.offset)
                if opened.start != self.offset:
                    opened.body.close()
                    raise ConnectionError("the origin cannot resume where the swarm stopped")
                self.fallback = opened.body
                return self.read(n)
            self.buffer = memoryview(item)[self.skip :]
            self.skip = 0
        piece = bytes(self.buffer[:n])
        self.buffer = self.buffer[n:]
        self.offset += len(piece)
        return piece

    def _take(self) -> bytes | _Done:
        for _ in range(1 << 30):  # bounded; each round waits TAKE_TIMEOUT at most
            if self.future is not None and self.future.done() and self.queue.empty():
                error = self.future.exception()
                raise ConnectionError(f"the swarm fetch ended: {error}")
            with contextlib.suppress(queue.Empty):
                return self.queue.get(timeout=TAKE_TIMEOUT)
        raise ConnectionError("the swarm fetch never delivered")  # pragma: no cover

    def close(self) -> None:
        self.closed = True
        if self.future is not None:
            self.future.cancel()
        if self.fallback is not None:
            self.fallback.close()
        if self.offset >= self.owner.size:
            # The download closes its body once the last byte is written: all of it is held.
            self.owner.written = self.offset
            asyncio.run_coroutine_threadsafe(self.owner.on_done(), self.owner.loop)


class SwarmSource:
    """One take's bytes from the swarm, with the take's plain source behind it."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        make_fetch: Callable[[], ChunkFetch],
        origin: HttpSource,
        size: int,
        chunk_size: int,
        *,
        on_done: Callable[[], Coroutine[Any, Any, None]],
    ) -> None:
        self.what = origin.what
        self.on_done = on_done
        self.loop = loop
        self.make_fetch = make_fetch
        self.origin = origin
        self.size = size
        self.chunk_size = chunk_size
        self.written = 0
        self.failed: BaseException | None = None
        self.fetch: ChunkFetch | None = None

    def held(self) -> int:
        return self.written

    def open(self, start: int) -> Opened:
        if self.failed is not None:
            return self.origin.open(start)  # the swarm already gave up on this take
        self.written = start
        first = start // self.chunk_size
        self.fetch = self.make_fetch()
        body = _SwarmBody(self, self.fetch, start, first * self.chunk_size)
        body.future = asyncio.run_coroutine_threadsafe(body.pump(first), self.loop)
        return Opened(self.size, start, body)
