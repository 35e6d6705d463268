"""The coordinator's `/link` WebSocket: an aiohttp shell around `wire.link.LinkServer`.

One `LinkHub` per process owns the `LinkServer` (every appliance link, keyed by merged token),
checks the appliance's Bearer credential before the upgrade (HTTP 401 with a problem body when it
is missing, unknown, revoked or expired), feeds every received text frame to the link core and
writes the frames it asks for, in order, through one writer task per socket. A background task
sends the bare acks that idle links owe and forgets links whose socket has been gone for longer
than the grace period. What the links carry is not the hub's business: it hands `opened`,
`received`, `suspended` (the socket went, the link waits within its grace period) and `closed`
to a `LinkHandler` (the appliance bridge in production, a recorder in the transport tests) and
offers `Link.send` back.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import WSCloseCode, WSMsgType, web

from coordinator.errors import Forbidden, Unauthorized, as_problem, problem_response
from coordinator.keys import CONFIG, STORE
from coordinator.store.credentials import authenticate
from coordinator.store.errors import StoreError
from wire import link as wl

log = logging.getLogger(__name__)

LINK_PATH = "/link"
DEFAULT_ACK_INTERVAL = 1.0
DEFAULT_HEARTBEAT = 30.0
# How long shutdown waits for a socket's queued frames before closing it anyway.
FLUSH_TIMEOUT = 5.0
# The client WebSocket's code for an unusable credential, so both sockets read alike.
REVOKED_CLOSE_CODE = 4001


@dataclass(frozen=True, slots=True)
class Appliance:
    """Who opened a socket: the appliance behind the Bearer credential, and what it asked for."""

    id: int
    name: str
    show_id: int
    credential_id: int
    requested_session: str | None = None

    @property
    def peer(self) -> str:
        # A link may only be resumed by the appliance that made it.
        return f"appliance:{self.id}"


@dataclass(eq=False, slots=True)
class Link:
    """One live link (connected, or waiting within the grace period for its agent to return)."""

    token: str
    appliance: Appliance
    hub: LinkHub
    session: str | None = None

    @property
    def connected(self) -> bool:
        return self.hub.server.socket_of(self.token) is not None

    def send(self, payload: wl.JsonValue) -> None:
        """Queue one payload; it reaches the agent exactly once even across drops.

        Raises `wire.link.UnackedOverflow` when too much is waiting for the agent's ack and
        `wire.link.LinkClosed` (a `LinkError`) once the link is over.
        """
        self.hub.send(self.token, payload)


class LinkHandler(Protocol):
    """What a hub tells the application about its links."""

    async def admit(self, appliance: Appliance) -> str | None:
        """Before the upgrade: the session this socket is for (raise a `Problem` to refuse)."""

    async def opened(self, link: Link, *, resumed: bool) -> None: ...

    async def received(self, link: Link, payload: wl.JsonValue) -> None: ...

    async def suspended(self, link: Link) -> None:
        """The link's socket went; the link waits within its grace period. `opened` with
        `resumed=True` follows when the agent comes back, `closed` when the grace runs out."""

    async def closed(self, link: Link, *, formal: bool, unacked: tuple[wl.JsonValue, ...]) -> None:
        """The link is over for good: formally disconnected or expired."""


@dataclass(eq=False, slots=True)
class _Socket:
    """One WebSocket and its ordered outgoing frames.

    The writer task exists only while there is something to write: an idle link (most of a
    fleet, most of the time) holds no task, no event and no frame, which is what keeps 10,000
    idle links small.
    """

    id: int
    ws: web.WebSocketResponse
    credential_id: int = 0
    token: str | None = None
    frames: deque[str] = field(default_factory=deque)
    done: bool = False
    writer: asyncio.Task[None] | None = None

    def push(self, frames: Iterable[str]) -> None:
        if self.done:
            return
        self.frames.extend(frames)
        if self.frames and self.writer is None:
            self.writer = asyncio.create_task(self._write(), name=f"link-writer-{self.id}")

    def finish(self) -> None:
        self.done = True

    async def _write(self) -> None:
        # One writer at a time per socket: frames leave in exactly the order the link core
        # made them. It ends when the buffer is empty; the next push starts another.
        try:
            while self.frames:
                await self.ws.send_str(self.frames.popleft())
        except (ConnectionError, RuntimeError):
            self.frames.clear()  # the socket closed under us; the link core keeps the unacked
        finally:
            self.writer = None

    async def flushed(self) -> None:
        """Wait until what was pushed has been written (or the socket failed)."""
        while (writer := self.writer) is not None:
            await asyncio.wait((writer,))  # never raises what the writer raised or its cancel
            if (
                self.writer is writer
            ):  # cancelled before its `finally` ran: nothing more to wait for
                return


class LinkHub:
    def __init__(
        self,
        handler: LinkHandler,
        *,
        grace: float = wl.DEFAULT_GRACE,
        ack_interval: float = DEFAULT_ACK_INTERVAL,
        heartbeat: float | None = DEFAULT_HEARTBEAT,
        max_unacked: int = wl.DEFAULT_MAX_UNACKED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ack_interval <= 0:
            raise ValueError(f"ack_interval must be > 0 seconds, got {ack_interval}")
        self.handler = handler
        self.server: wl.LinkServer[int] = wl.LinkServer(grace=grace, max_unacked=max_unacked)
        self.ack_interval = ack_interval
        self.heartbeat = heartbeat
        self._clock = clock
        self._ids = itertools.count(1)
        self._sockets: dict[int, _Socket] = {}
        self._links: dict[str, Link] = {}
        self._timer: asyncio.Task[None] | None = None

    # ---- views

    @property
    def links(self) -> dict[str, Link]:
        """Live links by merged token (connected or within their grace period)."""
        return dict(self._links)

    @property
    def connected(self) -> int:
        """How many links have a socket right now."""
        return sum(1 for t in self._links if self.server.socket_of(t) is not None)

    # ---- wiring

    def register(self, app: web.Application) -> None:
        """Add `GET /link`, the timer's start/stop, and close every socket on shutdown."""
        app.router.add_get(LINK_PATH, self.handle)
        app.cleanup_ctx.append(self._timer_ctx)
        app.on_shutdown.append(self._on_shutdown)

    async def _timer_ctx(self, app: web.Application) -> AsyncIterator[None]:
        self._timer = asyncio.create_task(self._tick_loop(), name="link-timer")
        try:
            yield
        finally:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
            self._timer = None

    async def _on_shutdown(self, app: web.Application) -> None:
        # Ack everything received before going away: an agent replays what was not acked, and
        # the next process (a restart) would take a replayed result for a new one.
        for sid, frame in self.server.pending_acks():
            sock = self._sockets.get(sid)
            if sock is not None:
                sock.push((frame,))
        sockets = list(self._sockets.values())
        for sock in sockets:
            sock.finish()
        writers = [s.writer for s in sockets if s.writer is not None]
        if writers:
            await asyncio.wait(writers, timeout=FLUSH_TIMEOUT)
        for sock in sockets:
            await sock.ws.close(code=WSCloseCode.GOING_AWAY, message=b"coordinator stopping")

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ack_interval)
            await self.tick()

    async def tick(self) -> None:
        """Send the acks idle links owe and end links past their grace period."""
        for sid, frame in self.server.pending_acks():
            sock = self._sockets.get(sid)
            if sock is not None:
                sock.push((frame,))
        for ended in self.server.expire(self._clock()):
            await self._ended(ended)

    def revoke(self, credential_ids: frozenset[int]) -> None:
        """Close the sockets opened with a credential that was just revoked (4001); the agent's
        reconnect is then refused before the upgrade (401)."""
        for sock in list(self._sockets.values()):
            if sock.credential_id in credential_ids and not sock.done:
                log.info("link credential revoked", extra={"socket": sock.id})
                sock.finish()
                asyncio.get_running_loop().create_task(
                    sock.ws.close(code=REVOKED_CLOSE_CODE, message=b"credential revoked")
                )

    # ---- sending

    def send(self, token: str, payload: wl.JsonValue) -> None:
        out = self.server.send(token, payload)
        if out.socket is not None:
            sock = self._sockets.get(out.socket)
            if sock is not None:
                sock.push(out.frames)

    # ---- the socket handler

    async def _appliance(self, request: web.Request) -> Appliance:
        header = request.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise Unauthorized("the appliance credential goes in 'Authorization: Bearer <token>'")
        now = request.app[CONFIG].clock()
        principal = await request.app[STORE].read(
            lambda conn: authenticate(conn, credential.strip(), now)
        )
        if principal.role != "appliance" or principal.show_id is None:
            raise Forbidden(f"a {principal.role} credential cannot open an appliance link")
        return Appliance(
            id=principal.person_id,
            name=principal.name,
            show_id=principal.show_id,
            credential_id=principal.credential_id,
            requested_session=request.query.get("session") or None,
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            appliance = await self._appliance(request)
            session = await self.handler.admit(appliance)
        except StoreError as exc:
            # Refused before the upgrade, so a client sees a plain HTTP status and body.
            problem = as_problem(exc)
            log.info("link refused", extra={"status": problem.status, "detail": problem.detail})
            return problem_response(problem)
        ws = web.WebSocketResponse(heartbeat=self.heartbeat)
        await ws.prepare(request)
        sock = _Socket(next(self._ids), ws, appliance.credential_id)
        self._sockets[sock.id] = sock
        log.info("link socket opened", extra={"socket": sock.id, "appliance": appliance.id})
        try:
            sock.push(self.server.accept(sock.id, peer=appliance.peer))
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._frame(sock, appliance, session, msg.data)
                else:
                    log.warning(
                        "link protocol violation",
                        extra={"socket": sock.id, "reason": f"{msg.type.name} frame ignored"},
                    )
        finally:
            self.server.connection_lost(sock.id, self._clock())
            sock.finish()
            await self._suspended(sock)
            try:
                async with asyncio.timeout(FLUSH_TIMEOUT):
                    await sock.flushed()
            except TimeoutError:
                if sock.writer is not None:
                    sock.writer.cancel()
            del self._sockets[sock.id]
            log.info("link socket closed", extra={"socket": sock.id, "token": _short(sock.token)})
        return ws

    async def _frame(
        self, sock: _Socket, appliance: Appliance, session: str | None, frame: str
    ) -> None:
        events = self.server.receive(sock.id, frame, self._clock())
        sock.push(self.server.data_to_send(sock.id))
        for event in events:
            match event:
                case wl.Connected(token=token, resumed=resumed):
                    sock.token = token
                    link = self._links.get(token)
                    if link is None or not resumed:
                        link = Link(token, appliance, self, session)
                        self._links[token] = link
                    log.info(
                        "link connected",
                        extra={
                            "token": _short(token),
                            "resumed": resumed,
                            "appliance": appliance.id,
                        },
                    )
                    await self._call(self.handler.opened(link, resumed=resumed))
                case wl.Message(payload=payload):
                    link = self._links.get(sock.token or "")
                    if link is not None:
                        await self._call(self.handler.received(link, payload))
                case wl.Disconnected():
                    await self._ended(event)
                    if event.formal and event.token == sock.token:
                        await sock.ws.close(code=WSCloseCode.OK, message=b"disconnected")
                case wl.Refused(reason=reason, close_code=code):
                    log.warning(
                        "link socket refused",
                        extra={"socket": sock.id, "token": _short(event.token), "reason": reason},
                    )
                    await sock.ws.close(code=code, message=reason.encode()[:120])
                case wl.ProtocolViolation(reason=reason):
                    log.warning(
                        "link protocol violation", extra={"socket": sock.id, "reason": reason}
                    )

    async def _suspended(self, sock: _Socket) -> None:
        # Only a link that is still alive and has no other socket now waits for its agent; a
        # formally ended link is gone already, and a resume onto a newer socket is not a drop.
        link = self._links.get(sock.token or "")
        if link is None or self.server.socket_of(link.token) is not None:
            return
        await self._call(self.handler.suspended(link))

    async def _ended(self, event: wl.Disconnected) -> None:
        link = self._links.pop(event.token, None)
        log.info(
            "link ended",
            extra={
                "token": _short(event.token),
                "formal": event.formal,
                "unacked": len(event.unacked),
            },
        )
        if link is not None:
            await self._call(self.handler.closed(link, formal=event.formal, unacked=event.unacked))

    async def _call(self, step: Awaitable[None]) -> None:
        # A fault in the application must not cost the link (and every other message on it).
        try:
            await step
        except Exception:
            log.exception("link handler failed")


def _short(token: str | None) -> str | None:
    """Enough of a token to follow a link through the log without printing the whole secret."""
    return None if token is None else token[:8]
