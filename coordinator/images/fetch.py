"""Takes that name only an outside URL: the coordinator fetches each such image once into its
store, so it gets what an upload gets (the whole-file SHA-256 and MD5 check against the take, the
chunk manifest, what it unpacks to, the block map) and the kiosks of the show can share it.

`ImageFetcher` looks for such takes every `interval` seconds and fetches one image at a time
(the venue's uplink is the scarce thing). The bytes go through the store's resumable upload path
(`ImageStore.receive_range`: `.resume-<sha256>.part`, hashed on a worker thread, renamed to its
SHA-256 only once size and both digests match), so a dropped connection resumes with
`Range: bytes=N-` and a server that ignores ranges (200) starts the file over cleanly. Before a
byte is read the answer must be the take's image: a status other than 200/206, a length other
than the take's size, or a store without room for it is refused; a body longer than the take
is cut off and refused by the store. Every failure is kept as the take's fetch state (what the
operator sees on `GET /takes/{id}/image/upload`, and a log line) and retried with a back-off
that doubles from `retry_first` up to `retry_max`. Once stored, the link catalog names the
coordinator's store as the take's source (the outside URL is no longer used: one verified
origin, and the outside host is asked once) and `events` are told (`coordinator.images.events`:
the appliance links send their kiosks the new catalog). `setup` runs it in every coordinator
process but a balancer when the configuration's `fetch_interval` is set (`--fetch-interval`,
10 s by default).
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from coordinator.errors import Problem
from coordinator.images.blobs import ImageStore
from coordinator.images.catalog import ImageInfo, missing_urls
from coordinator.images.derive import derive
from coordinator.images.events import IMAGE_EVENTS, ImageEvents
from coordinator.keys import CONFIG, STORE
from coordinator.poller import Poller
from coordinator.store import Store

log = logging.getLogger(__name__)

INTERVAL = 10.0
RETRY_FIRST = 10.0
RETRY_MAX = 900.0
CONNECT_SECONDS = 30.0
PER_SCAN = 100  # takes looked at per scan; more wait for the next one
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class FetchFailed(Exception):
    """A fetch that did not store the image; the text is what the operator reads."""


@dataclass(slots=True)
class FetchState:
    """Where the fetch of one image stands."""

    take_id: int
    url: str
    size: int
    state: str = "waiting"  # waiting, fetching, failed, stored
    offset: int = 0
    attempts: int = 0
    error: str | None = None
    retry_at: float | None = None  # seconds since the epoch

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "state": self.state,
            "offset": self.offset,
            "size": self.size,
            "attempts": self.attempts,
            "error": self.error,
            "retry_at": self.retry_at,
        }


class ImageFetcher(Poller):
    """Fetches the images of URL-only takes into the store, one at a time, in the background."""

    def __init__(
        self,
        store: Store,
        images: ImageStore,
        *,
        interval: float = INTERVAL,
        retry_first: float = RETRY_FIRST,
        retry_max: float = RETRY_MAX,
        stall_seconds: float | None = None,
        events: ImageEvents | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # A scan that raises (a database hiccup) is logged and the loop goes on.
        super().__init__(log, "image-fetcher", "image fetch scan failed")
        self.store = store
        self.images = images
        self.interval = interval
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.stall_seconds = images.stall_seconds if stall_seconds is None else stall_seconds
        self.events = events or ImageEvents()  # told of each image stored
        self.clock = clock
        self._states: dict[str, FetchState] = {}  # by SHA-256
        self._session: aiohttp.ClientSession | None = None

    def state(self, sha256: str) -> FetchState | None:
        return self._states.get(sha256)

    async def start(self) -> None:
        """Open the HTTP client and look for takes every `interval` seconds (or at once after
        `poke`: a take was added) until `stop`; the first look is after an interval, not now."""
        await self.open()
        self._start_task(wait_first=True)

    async def open(self) -> None:
        """Open the HTTP client (`scan` may be called from then on)."""
        # Images are compared byte for byte: no transparent decompression.
        self._session = aiohttp.ClientSession(
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(
                sock_connect=CONNECT_SECONDS, sock_read=self.stall_seconds
            ),
        )

    async def stop(self) -> None:
        await super().stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def check_once(self) -> int:
        return await self.scan()

    def _interval(self) -> float:
        return self.interval

    async def scan(self) -> int:
        """Fetch every missing image whose turn has come; returns how many were stored."""
        images = self.images
        missing = await self.store.read(lambda c: missing_urls(c, images, PER_SCAN))
        stored = 0
        for info in missing:
            state = self._states.get(info.sha256)
            if state is None or state.url != info.url or state.size != info.size:
                state = self._states[info.sha256] = FetchState(info.take_id, info.url, info.size)
            if state.retry_at is not None and state.retry_at > self.clock():
                continue
            if await self._attempt(info, state):
                stored += 1
        return stored

    async def _attempt(self, info: ImageInfo, state: FetchState) -> bool:
        state.state, state.attempts = "fetching", state.attempts + 1
        log.info(
            "image fetch started",
            extra={"take": info.take_id, "sha256": info.sha256, "attempt": state.attempts},
        )
        try:
            await self._fetch(info, state)
        except (FetchFailed, Problem) as exc:
            self._failed(info, state, str(exc))
            return False
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._failed(info, state, f"{info.url} could not be read: {_describe(exc)}")
            return False
        except Exception as exc:  # a bug here must still back off, not retry every scan
            log.exception("image fetch broke", extra={"take": info.take_id})
            self._failed(info, state, f"fetching {info.url} failed: {_describe(exc)}")
            return False
        state.state, state.error, state.retry_at, state.offset = "stored", None, None, info.size
        log.info("image fetched", extra={"take": info.take_id, "sha256": info.sha256})
        await self.events.stored(info)
        return True

    def _failed(self, info: ImageInfo, state: FetchState, error: str) -> None:
        delay = min(self.retry_max, self.retry_first * 2 ** (state.attempts - 1))
        state.state, state.error, state.retry_at = "failed", error, self.clock() + delay
        log.warning(
            "image fetch failed",
            extra={
                "take": info.take_id,
                "sha256": info.sha256,
                "error": error,
                "attempt": state.attempts,
                "retry_in": delay,
            },
        )

    async def _fetch(self, info: ImageInfo, state: FetchState) -> None:
        if self._session is None:
            raise RuntimeError("ImageFetcher.start() first")
        images, sha256, size = self.images, info.sha256, info.size
        offset = await asyncio.to_thread(images.resume_offset, sha256)
        free = await asyncio.to_thread(lambda: shutil.disk_usage(images.root).free)
        if free < size - offset:
            raise FetchFailed(
                f"the image store has {free} bytes free but the image needs {size - offset} more"
            )
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        async with self._session.get(info.url, headers=headers) as resp:
            if resp.status == 206 and offset:
                try:
                    _check_range(resp.headers.get("Content-Range", ""), offset, size, info.url)
                except FetchFailed:
                    # What is kept came from another file: the next try starts over.
                    await asyncio.to_thread(images.drop_resume, sha256)
                    raise
            elif resp.status == 200:
                if offset:
                    # The server ignores ranges: what is kept cannot be continued.
                    await asyncio.to_thread(images.drop_resume, sha256)
                    offset = 0
                if resp.content_length is not None and resp.content_length != size:
                    raise FetchFailed(
                        f"{info.url} serves {resp.content_length} bytes but the take's size "
                        f"is {size}; the file there is not the take's image"
                    )
            else:
                if resp.status == 416:
                    # The file there shrank below what is kept: start over next time.
                    await asyncio.to_thread(images.drop_resume, sha256)
                raise FetchFailed(f"{info.url} answered HTTP {resp.status} {resp.reason or ''}")
            state.offset = offset
            got = await images.receive_range(
                _counted(resp.content.iter_chunked(images.chunk_size), state),
                info.expected,
                offset,
                size - 1,
            )
        if isinstance(got, int):
            raise FetchFailed(
                f"{info.url} ended after {got} of {size} bytes; the next try resumes there"
            )
        if got.created:
            await derive(images, self.store, info, got)


async def _counted(chunks: AsyncIterator[bytes], state: FetchState) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield chunk
        state.offset += len(chunk)


def _check_range(text: str, offset: int, size: int, url: str) -> None:
    match = _CONTENT_RANGE.fullmatch(text.strip())
    if match is None or int(match.group(1)) != offset:
        raise FetchFailed(f"{url} answered a range other than bytes {offset}- ({text!r})")
    total = match.group(3)
    if total != "*" and int(total) != size:
        raise FetchFailed(
            f"{url} now serves {total} bytes but the take's size is {size}; the file there changed"
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no data arrived in time (stalled)"
    return str(exc) or type(exc).__name__


FETCHER = web.AppKey("image_fetcher", ImageFetcher)


def setup(app: web.Application, images: ImageStore) -> None:
    """Fetch URL-only takes into `images` while `app` runs (after its store opened), if the
    configuration asks for it; the fetcher is under `FETCHER` from then on. It tells the app's
    `IMAGE_EVENTS` (set by the image endpoints' setup, before this) of each image it stores."""
    config = app[CONFIG]
    if config.fetch_interval is None or config.role == "balancer":
        return  # a balancer serves browsers' sockets, not images
    fetcher = ImageFetcher(
        app[STORE],
        images,
        interval=config.fetch_interval,
        retry_first=config.fetch_retry,
        events=app[IMAGE_EVENTS],
        clock=config.clock,
    )
    app[FETCHER] = fetcher

    async def running(_app: web.Application) -> AsyncIterator[None]:
        await fetcher.start()
        try:
            yield
        finally:
            await fetcher.stop()

    app.cleanup_ctx.append(running)
