"""The kiosk's peer server: other kiosks of its show fetch verified image bytes from it on the LAN.

`GET /peer/v1/images/{sha256}` with `Range: bytes=START-END` answers 206 with those bytes, if they
lie within what this kiosk holds verified: a whole image of its cache, or the verified prefix of
one it is still downloading (`Offer`). The caller must send `Authorization: Bearer <peer token>`:
a token this kiosk's show key did not sign, an expired one or one of another show gets 403 with a
problem body naming which. At most `max_uploads` answers run at once (503 with `Retry-After`
beyond), and all of them together send at most `rate` bytes a second. Files are read on worker
threads. The server is off unless the agent's `[share]` table turns it on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from wire import swarm as sw

log = logging.getLogger(__name__)

PIECE = 256 * 1024
ROUTE = "/peer/v1/images/{sha256}"
_RANGE = re.compile(r"^bytes=(\d{1,19})-(\d{1,19})$")


@dataclass(frozen=True, slots=True)
class Offer:
    """An image this kiosk can serve: `held()` bytes of `path` from the start are verified."""

    path: Path
    size: int
    held: Callable[[], int]


class Throttle:
    """A shared budget of `rate` bytes a second (None: unlimited) for every upload at once."""

    def __init__(self, rate: int | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self._free_at = 0.0

    async def take(self, n: int) -> None:
        if not self.rate:
            return
        now = self.clock()
        start = max(now, self._free_at)
        self._free_at = start + n / self.rate
        if start > now:
            await asyncio.sleep(start - now)


def _problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return web.json_response(body, status=status, content_type="application/problem+json")


class PeerServer:
    def __init__(
        self,
        offers: Callable[[str], Offer | None],
        *,
        host: str = "0.0.0.0",  # noqa: S104 - the LAN is where the other kiosks are
        port: int = 0,
        max_uploads: int = 4,
        rate: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.offers = offers
        self.host = host
        self.port = port
        self.clock = clock
        self.max_uploads = max_uploads
        self.throttle = Throttle(rate)
        self.show: int | None = None
        self.key: bytes | None = None
        self.uploads = 0
        self.bytes_sent = 0
        self._runner: web.AppRunner | None = None

    def set_key(self, show: int, key: bytes) -> None:
        self.show, self.key = show, key

    async def start(self) -> int:
        """Listen; returns the port (the one asked for, or the one picked for port 0)."""
        app = web.Application()
        app.router.add_get(ROUTE, self._get)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])  # the one the kernel picked
        log.info("peer server listening host=%s port=%d", self.host, self.port)
        return self.port

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _refusal(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if self.key is None or self.show is None:
            return _problem(403, "Not sharing yet", "this kiosk has no show key yet", reason="key")
        if scheme.lower() != "bearer" or not token.strip():
            return _problem(403, "Peer token refused", "no peer token", reason="unknown")
        try:
            sw.check_token(self.key, token.strip(), self.show, self.clock())
        except sw.TokenRefused as exc:
            log.info("peer token refused reason=%s peer=%s", exc.reason, request.remote)
            return _problem(403, "Peer token refused", str(exc), reason=exc.reason)
        return None

    async def _get(self, request: web.Request) -> web.StreamResponse:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        sha = request.match_info["sha256"].lower()
        offer = self.offers(sha) if len(sha) == 64 else None
        if offer is None:
            return _problem(404, "Not held", f"this kiosk holds no image {sha[:64]}")
        held = offer.held()
        match = _RANGE.fullmatch(request.headers.get("Range", "").strip())
        if match is None:
            return _problem(416, "Range needed", "ask for one range: 'Range: bytes=START-END'")
        start, end = int(match[1]), int(match[2])
        if not start <= end < held:
            return _problem(
                416,
                "Not held",
                f"bytes {start}-{end} are not within the {held} verified bytes held",
                held=held,
            )
        if self.uploads >= self.max_uploads:
            resp = _problem(503, "Busy", f"{self.max_uploads} uploads are running")
            resp.headers["Retry-After"] = "1"
            return resp
        self.uploads += 1
        try:
            return await self._send(request, offer, start, end)
        finally:
            self.uploads -= 1

    async def _send(
        self, request: web.Request, offer: Offer, start: int, end: int
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            status=206,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"bytes {start}-{end}/{offer.size}",
            },
        )
        resp.content_length = end - start + 1
        await resp.prepare(request)
        fd = await asyncio.to_thread(os.open, offer.path, os.O_RDONLY)
        try:
            at = start
            while at <= end:
                n = min(PIECE, end + 1 - at)
                await self.throttle.take(n)
                piece = await asyncio.to_thread(os.pread, fd, n, at)
                if not piece:
                    break  # the file shrank under us (evicted): the peer sees a short answer
                await resp.write(piece)
                at += len(piece)
                self.bytes_sent += len(piece)
        finally:
            await asyncio.to_thread(os.close, fd)
        await resp.write_eof()
        return resp
