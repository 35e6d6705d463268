"""A balancer's `/link`: a kiosk's link passed on to the master of its session.

Masters serve `/link` on their HTTP port; in a split deployment the kiosks know only the address
in front of the balancers, as browsers do. The balancer checks the appliance's credential, finds
the live session the master would admit it to (the one it asked for with `?session=`, or its
show's newest), and opens the same `/link` on that session's master (the pool URL's host, the HTTP
port the master named in its relay `init`), then copies frames both ways unchanged: the link
protocol (acks, resume) stays between the agent and the master. When the master's socket ends
(a master lost or draining) the kiosk's is closed with 1013, and its reconnect is routed to
wherever the session is live by then; when the kiosk's ends the master's is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp
from aiohttp import WSMsgType, web

from coordinator.balancer.remote import Connector
from coordinator.errors import Forbidden, Unauthorized, Unavailable, as_problem, problem_response
from coordinator.keys import CONFIG, STORE
from coordinator.links.takes import live_session
from coordinator.store.credentials import authenticate
from coordinator.store.errors import StoreError
from coordinator.store.sql import Conn

log = logging.getLogger(__name__)

BEARER = "the appliance credential goes in 'Authorization: Bearer <token>'"
TRY_AGAIN = 1013  # the code browsers get when their master is lost


def _target(conn: Conn, credential: str, wanted: str | None, now: float) -> tuple[str, str]:
    """The session the master will admit this appliance to, and that session's master URL."""
    p = authenticate(conn, credential, now)
    if p.role != "appliance" or p.show_id is None:
        raise Forbidden(f"a {p.role} credential cannot open an appliance link")
    session = live_session(conn, p.show_id, wanted)
    if session is None:
        # No session to route by: the master would link it without one; none is reachable here.
        raise Unavailable(f"no live session of show {p.show_id} to link to; try again later")
    row = conn.execute(
        "SELECT m.url FROM sessions s JOIN masters m ON m.id = s.master_id WHERE s.id = ?",
        (session,),
    ).fetchone()
    if row is None:
        raise Unavailable(f"session {session} has no master; try again later")
    return session, str(row["url"])


class LinkRelay:
    """The `/link` handler of a balancer; `connector` gives the masters it holds sockets to."""

    def __init__(self, connector: Callable[[], Connector | None]) -> None:
        self._connector = connector
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def _master_link_url(self, master_url: str) -> str:
        connector = self._connector()
        conn = None if connector is None else connector.route(master_url)
        if conn is None or conn.init is None:
            raise Unavailable("the session's master is not reachable from here; try again later")
        parts = urlsplit(master_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.hostname}:{conn.init.port}/link"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        wanted = request.query.get("session") or None
        try:
            if scheme.lower() != "bearer" or not credential.strip():
                raise Unauthorized(
                    "the appliance credential goes in 'Authorization: Bearer <token>'"
                )
            now = request.app[CONFIG].clock()
            session, master_url = await request.app[STORE].read(
                lambda conn: _target(conn, credential.strip(), wanted, now)
            )
            url = self._master_link_url(master_url)
        except StoreError as exc:
            problem = as_problem(exc)
            log.info("link refused", extra={"status": problem.status, "detail": problem.detail})
            return problem_response(problem)
        if self._http is None:
            self._http = aiohttp.ClientSession()
        try:
            upstream = await self._http.ws_connect(
                url, headers={"Authorization": header}, params={"session": session}
            )
        except aiohttp.WSServerHandshakeError as exc:
            # The master refused it (a credential revoked in between): the kiosk hears the same.
            return web.Response(status=exc.status, text=exc.message)
        except (aiohttp.ClientError, OSError) as exc:
            log.info("session master unreachable for a link", extra={"error": str(exc)})
            return problem_response(
                Unavailable("the session's master does not answer; try again later")
            )
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        log.info("link relayed", extra={"session": session, "master": url})
        try:
            await _pump_both(ws, upstream)
        finally:
            await upstream.close()
            if not ws.closed:
                await ws.close(code=TRY_AGAIN, message=b"session master gone; link again")
        return ws


async def _copy(
    src: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    dst: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    async for msg in src:
        if msg.type is WSMsgType.TEXT:
            await dst.send_str(msg.data)
        elif msg.type is WSMsgType.BINARY:
            await dst.send_bytes(msg.data)


async def _pump_both(kiosk: web.WebSocketResponse, master: aiohttp.ClientWebSocketResponse) -> None:
    """Copy frames both ways until either side's socket ends."""
    tasks = [
        asyncio.create_task(_copy(kiosk, master)),
        asyncio.create_task(_copy(master, kiosk)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
