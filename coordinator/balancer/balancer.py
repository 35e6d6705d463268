"""The balancer: the client WebSocket `/ws/{session_id}` and the routing of its clients.

One `ClientConn` per browser socket: the auth-first handshake of `wire.relay` (10 s by default),
the rendezvous credential check (`auth`), then every frame is either answered here (pub/sub
`subscribe`/`unsubscribe`, scoped to the session's own channels; a re-auth after the client
refreshed its credential) or relayed to the master that holds the session through a `Route`:
the in-process `HostLink` in embedded mode, a relay WebSocket in split mode (`remote`). What
comes back goes into the client's bounded send queue; a client whose queue is full is closed
with 1013 instead of slowing its room. While the node drains, new sockets are refused and open
ones are closed with 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from coordinator.balancer.auth import AuthRefused, Grant, authorize
from coordinator.pubsub import PubSub
from coordinator.store import Store
from wire import clientmsg as cm
from wire import relay

log = logging.getLogger(__name__)

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
MAX_CLIENT_FRAME = 64 * 1024
DEFAULT_QUEUE_LIMIT = 256


class Route(Protocol):
    """The way to the master that holds a session, as the balancer uses it."""

    async def join(self, client: ClientConn, grant: Grant) -> None: ...

    async def reauth(self, client: ClientConn, token: str, grant: Grant) -> None: ...

    def forward(
        self, client: ClientConn, message: dict[str, Any], text: str
    ) -> Awaitable[None] | None: ...

    def leave(self, client: ClientConn) -> None: ...


class ClientConn:
    """One browser socket: its bounded send queue and where its frames go."""

    __slots__ = (
        "__weakref__",
        "balancer",
        "closed",
        "closing",
        "conn_id",
        "credential_id",
        "flushing",
        "queue",
        "room",
        "route",
        "token",
        "ws",
    )

    def __init__(self, balancer: Balancer, ws: web.WebSocketResponse, room: str, conn_id: str):
        self.balancer = balancer
        self.ws = ws
        self.room = room
        self.conn_id = conn_id
        self.token = ""
        self.credential_id = 0
        self.route: Route | None = None
        # Created on first use: an idle socket should cost as little memory as possible.
        self.queue: deque[str] | None = None
        self.flushing = False
        self.closed = False
        self.closing: asyncio.Task[None] | None = None

    def deliver(self, text: str) -> None:
        """Queue a frame for this client; never blocks (pub/sub and masters call this)."""
        if self.closed:
            return
        queue = self.queue
        if queue is None:
            queue = self.queue = deque()
        elif len(queue) >= self.balancer.queue_limit:
            log.info("client too slow, closing", extra={"conn": self.conn_id, "room": self.room})
            self.kill(relay.CloseCode.TRY_AGAIN_LATER, "client reads too slowly")
            return
        queue.append(text)
        if not self.flushing:
            self.flushing = True
            asyncio.get_running_loop().create_task(self._flush_task())

    async def flush(self) -> None:
        ws, queue = self.ws, self.queue
        if queue is None:
            return
        while queue and not self.closed:
            try:
                await ws.send_str(queue.popleft())
            except (ConnectionError, RuntimeError):
                self.closed = True
                queue.clear()
        if not queue and self.queue is queue:
            # Drained: an idle socket goes back to holding no queue at all.
            self.queue = None

    async def _flush_task(self) -> None:
        try:
            await self.flush()
        finally:
            self.flushing = False

    def kill(self, code: int, reason: str) -> None:
        """Tell the client why (when it can still hear it) and close the socket with `code`."""
        if self.closed:
            return
        self.closed = True
        self.queue = None
        self.closing = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            if not self.ws.closed:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.ws.send_str(_dumps(cm.closing(code, reason))), 1.0)
                await self.ws.close(code=code, message=reason[:120].encode())


RouteFor = Callable[[Grant], Route | None]


class Balancer:
    """Client sockets of this node, by connection id and by room."""

    def __init__(
        self,
        store: Store,
        pubsub: PubSub,
        clock: Callable[[], float],
        route_for: RouteFor,
        *,
        auth_timeout: float = relay.AUTH_TIMEOUT,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        expiry_warning: float | None = None,
    ) -> None:
        self.store = store
        self.pubsub = pubsub
        self.clock = clock
        self.route_for = route_for
        self.auth_timeout = auth_timeout
        self.queue_limit = queue_limit
        self.expiry_warning = expiry_warning
        self.clients: dict[str, ClientConn] = {}
        self.rooms: dict[str, set[ClientConn]] = {}
        self.draining = False
        self._prefix = secrets.token_hex(4)
        self._ids = itertools.count(1)

    # ---- delivery from masters -----------------------------------------------------------

    def to_client(self, room: str, conn_id: str, text: str) -> None:
        client = self.clients.get(conn_id)
        if client is not None:
            client.deliver(text)

    def broadcast(self, room: str, text: str) -> None:
        for client in tuple(self.rooms.get(room, ())):
            client.deliver(text)

    def close_client(self, room: str, conn_id: str, code: relay.CloseCode, reason: str) -> None:
        client = self.clients.get(conn_id)
        if client is not None:
            client.route = None  # the master already let it go: no leave request
            client.kill(code, reason)

    def lost(self, clients: list[ClientConn], reason: str) -> None:
        """The master of these clients is gone: tell them and close with 1013 (retryable)."""
        for client in clients:
            client.route = None
            client.kill(relay.CloseCode.TRY_AGAIN_LATER, reason)

    def revoke(self, credential_ids: frozenset[int]) -> None:
        """Close the sockets seated with a credential that was just revoked (4001)."""
        for client in list(self.clients.values()):
            if client.credential_id in credential_ids:
                log.info("client credential revoked", extra={"conn": client.conn_id})
                client.kill(relay.CloseCode.BAD_CREDENTIAL, "credential revoked")

    async def drain(self) -> None:
        """Stop taking clients and close every open one with 1001 (reconnect elsewhere)."""
        self.draining = True
        for client in list(self.clients.values()):
            client.kill(relay.CloseCode.GOING_AWAY, "server is shutting down")

    # ---- the socket ----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.draining:
            raise web.HTTPServiceUnavailable(text="draining; connect to another node")
        ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_CLIENT_FRAME)
        await ws.prepare(request)
        conn_id = f"{self._prefix}-{next(self._ids)}"
        try:
            hs = relay.ClientHandshake(
                request.match_info["session_id"],
                conn_id,
                now=0.0,
                timeout=self.auth_timeout,
            )
        except relay.RelayError as exc:
            await ws.close(code=relay.CloseCode.UNKNOWN_SESSION, message=str(exc)[:120].encode())
            return ws
        client = ClientConn(self, ws, hs.room, conn_id)
        try:
            admitted = await self._admit(client, hs)
            del hs  # not needed once admitted; idle sockets should hold little
            # The frames are served here, not in a helper coroutine, and with `receive` rather
            # than `async for`: each is a coroutine frame every idle socket would hold.
            while admitted:
                msg = await ws.receive()
                if msg.type is not WSMsgType.TEXT:
                    if msg.type is WSMsgType.BINARY:
                        client.kill(
                            relay.CloseCode.UNSUPPORTED_DATA, "binary frames are not supported"
                        )
                    break
                if not await self._frame(client, msg.data):
                    break
            if client.closing is not None:
                # The handler's return would close with 1000; the decided code goes first.
                await client.closing
        finally:
            self._forget(client)
        return ws

    async def _frame(self, client: ClientConn, text: str) -> bool:
        """Answer or relay one text frame; False when the socket is to be closed."""
        try:
            message = relay.check_client_frame(text)
        except relay.RelayError as exc:
            client.kill(exc.close_code, str(exc))
            return False
        action = message.get("action")
        own_flush = not client.flushing
        client.flushing = True
        try:
            if action == cm.Action.SUBSCRIBE or action == cm.Action.UNSUBSCRIBE:
                await self._pubsub(client, message)
            elif action == relay.Action.AUTH:
                await self._reauth(client, message)
            elif relay.room_request(message) is not None:
                client.kill(relay.CloseCode.POLICY_VIOLATION, "join/leave requests are not allowed")
            elif client.route is not None:
                pending = client.route.forward(client, message, text)
                if pending is not None:
                    await pending
            if own_flush:
                await client.flush()
        finally:
            if own_flush:
                client.flushing = False
        return not client.closed

    async def _admit(self, client: ClientConn, hs: relay.ClientHandshake) -> bool:
        ws = client.ws
        try:
            msg = await ws.receive(timeout=hs.timeout)
        except TimeoutError:
            decision = hs.check_deadline(hs.deadline)
            assert decision is not None  # noqa: S101 - past the deadline with no auth
            await ws.close(code=decision.code, message=decision.reason.encode())
            return False
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return False
        event = hs.feed(msg.data)
        if isinstance(event, relay.Close):
            await ws.close(code=event.code, message=event.reason[:120].encode())
            return False
        assert isinstance(event, relay.Authenticated)  # noqa: S101 - the only other event
        try:
            grant = await authorize(self.store, event.token, client.room, self.clock())
            route = self.route_for(grant)
            if route is None:
                raise AuthRefused(  # noqa: TRY301 - one refusal path for all causes
                    relay.CloseCode.TRY_AGAIN_LATER, "no session master reachable for it"
                )
            client.token = event.token
            client.credential_id = grant.credential_id
            self.clients[client.conn_id] = client
            self.rooms.setdefault(client.room, set()).add(client)
            if self.draining:
                raise AuthRefused(relay.CloseCode.GOING_AWAY, "server is shutting down")  # noqa: TRY301
            await route.join(client, grant)
            client.route = route
        except AuthRefused as exc:
            await ws.close(code=exc.code, message=exc.reason[:120].encode())
            return False
        self._warn_if_expiring(client, grant)
        return not client.closed

    async def _pubsub(self, client: ClientConn, message: dict[str, Any]) -> None:
        prefix = f"session.{client.room}."
        pattern = message.get("pattern")
        if isinstance(pattern, str) and not pattern.startswith(prefix):
            # A pattern outside this session could read other sessions' traffic.
            answer: dict[str, Any] = {
                "action": message.get("action"),
                "pattern": pattern,
                "status": False,
                "error": f"pattern must start with {prefix!r} (this session's channels)",
            }
        else:
            answer = await self.pubsub.handle(client, message)
        client.deliver(_dumps(answer))

    async def _reauth(self, client: ClientConn, message: dict[str, Any]) -> None:
        try:
            token = relay.parse_auth(_dumps(message))
            grant = await authorize(self.store, token, client.room, self.clock())
            if client.route is None:
                raise AuthRefused(relay.CloseCode.TRY_AGAIN_LATER, "no session master")  # noqa: TRY301
            await client.route.reauth(client, token, grant)
        except relay.RelayError as exc:
            client.kill(exc.close_code, str(exc))
            return
        except AuthRefused as exc:
            client.kill(exc.code, exc.reason)
            return
        client.token = token
        client.credential_id = grant.credential_id
        client.deliver(_dumps(cm.reply(relay.Action.AUTH.value, True)))
        self._warn_if_expiring(client, grant)

    def _warn_if_expiring(self, client: ClientConn, grant: Grant) -> None:
        # The expiry watcher announces a credential once, when it enters the warning window; a
        # client that signs in (or refreshes to a short credential) after that would never hear
        # of it, so it is told at once.
        if self.expiry_warning is None or grant.expires_at is None:
            return
        if grant.expires_at - self.clock() <= self.expiry_warning:
            client.deliver(_dumps(cm.expiring(grant.expires_at)))

    def _forget(self, client: ClientConn) -> None:
        if self.clients.get(client.conn_id) is client:
            del self.clients[client.conn_id]
        members = self.rooms.get(client.room)
        if members is not None:
            members.discard(client)
            if not members:
                del self.rooms[client.room]
        client.closed = True
        client.queue = None
        route, client.route = client.route, None
        if route is not None:
            route.leave(client)
        asyncio.get_running_loop().create_task(self.pubsub.remove(client))


class EmbeddedRoute:
    """Embedded mode: the balancer calls the master's `HostLink` in this process directly, with
    the decoded message (no envelope text is built or parsed)."""

    def __init__(self, host_link: Any) -> None:
        self.host_link = host_link

    async def join(self, client: ClientConn, grant: Grant) -> None:
        await self.host_link.join(client.room, client.conn_id, client.token, grant)

    async def reauth(self, client: ClientConn, token: str, grant: Grant) -> None:
        await self.host_link.reauth(client.room, client.conn_id, token, grant)

    def forward(
        self, client: ClientConn, message: dict[str, Any], text: str
    ) -> Awaitable[None] | None:
        result: Awaitable[None] | None = self.host_link.message(client.conn_id, message, text)
        return result

    def leave(self, client: ClientConn) -> None:
        self.host_link.leave(client.conn_id)
