"""Split mode: the relay WebSocket between balancer processes and session-master processes.

A master started with `--role master --master-port P` runs a `RelayServer` on P: each balancer
opens one WebSocket to `/relay` (a second one from the same balancer replaces the first), the
master sends `init` with its HTTP port and token, and from then on both sides exchange the
envelopes of `wire.relay`. A `Connector` on each balancer reads the master pool from the shared
rendezvous store, holds one such socket per master, and reconnects with capped exponential
backoff. Both directions batch: whatever was queued while the previous frame was being written
leaves as one JSON array frame. Join, leave and re-auth requests are synthesized by the balancer;
the master re-checks each token against the store, so a relay socket can only act for clients it
seated with a valid credential. When a master's socket drops, its clients are sent a `closing`
frame and closed with 1013 so they retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import time
from typing import Any, Protocol

import aiohttp
from aiohttp import WSMsgType, web

from coordinator.balancer.auth import AuthRefused, Grant
from coordinator.balancer.balancer import Balancer, ClientConn
from coordinator.balancer.host import HostLink, MasterHost
from coordinator.config import CoordinatorConfig
from coordinator.store import Store
from coordinator.store.sessions import add_master
from wire import clientmsg as cm
from wire import relay

log = logging.getLogger(__name__)


def same_secret(given: str, expected: str) -> bool:
    """Compare shared secrets in constant time (a plain `!=` tells a prober how far it got)."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
REAUTH = "reauth"
INIT_TIMEOUT = 5.0
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
MAX_RELAY_FRAME = 16 * 1024 * 1024


def _request(kind: str, **extra: Any) -> str:
    return _dumps({"action": relay.Action.REQ.value, "request": {"type": kind, **extra}})


_JOIN = _request(relay.RequestType.JOIN.value)
_LEAVE = _request(relay.RequestType.LEAVE.value)
_REAUTH = _request(REAUTH)


class RelayNode(Protocol):
    """What the relay's two ends need of the node they run in (coordinator.live.Live has it).

    A structural interface, so this module does not import the node that starts it.
    """

    config: CoordinatorConfig
    store: Store
    host: MasterHost | None
    balancer: Balancer | None
    draining: bool

    @property
    def master_url(self) -> str: ...


class Outbox:
    """Frames for one relay socket; what piles up during a write leaves as one batch."""

    def __init__(self, ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.items: list[str] = []
        self.ready = asyncio.Event()

    def put(self, text: str) -> None:
        self.items.append(text)
        if len(self.items) == 1:
            self.ready.set()

    async def run(self) -> None:
        while not self.ws.closed:
            await self.ready.wait()
            self.ready.clear()
            while self.items:
                if len(self.items) <= relay.MAX_BATCH:
                    batch, self.items = self.items, []
                else:
                    batch = self.items[: relay.MAX_BATCH]
                    self.items = self.items[relay.MAX_BATCH :]
                frame = batch[0] if len(batch) == 1 else relay.encode_batch(batch)
                await self.ws.send_str(frame)


# --------------------------------------------------------------------------------------------
# Master side


class _BalancerLink:
    """The master's end of one balancer's socket: `HostLink` talks to its clients through it."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.outbox = Outbox(ws)

    def to_client(self, room: str, conn_id: str, text: str) -> None:
        self.outbox.put(relay.encode_to_client_json(room, conn_id, text))

    def broadcast(self, room: str, text: str) -> None:
        self.outbox.put(relay.encode_broadcast_json(room, text))

    def close_client(self, room: str, conn_id: str, code: relay.CloseCode, reason: str) -> None:
        self.to_client(room, conn_id, _dumps(cm.closing(int(code), reason)))


class RelayServer:
    """A master's listener for balancers on `--master-port`."""

    def __init__(self, live: RelayNode) -> None:
        self.live = live
        self.token = live.config.relay_token or secrets.token_hex(16)
        self.links: dict[str, web.WebSocketResponse] = {}
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        c = self.live.config
        assert c.master_port is not None  # noqa: S101 - live only starts us with a port
        app = web.Application()
        app.router.add_get("/relay", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, c.host, c.master_port).start()
        url, name = self.live.master_url, f"master-{c.host}-{c.master_port}"
        now = c.clock()

        def register(conn: Any) -> None:
            if conn.execute("SELECT 1 FROM masters WHERE url = ?", (url,)).fetchone() is None:
                add_master(conn, now, "coordinator:startup", {"name": name, "url": url})

        await self.live.store.write(register)
        log.info("session master listening for balancers", extra={"url": url})

    async def drain(self) -> None:
        for ws in list(self.links.values()):
            await ws.close(code=relay.CloseCode.GOING_AWAY, message=b"master draining")

    async def close(self) -> None:
        await self.drain()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        c = self.live.config
        if self.live.draining:
            raise web.HTTPServiceUnavailable(text="draining")
        if c.relay_token is not None and not same_secret(
            request.headers.get("Authorization", ""), f"Bearer {c.relay_token}"
        ):
            raise web.HTTPUnauthorized(text="relay token required")
        balancer_id = request.headers.get("X-Balancer", secrets.token_hex(4))[:64]
        ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_RELAY_FRAME)
        await ws.prepare(request)
        old = self.links.get(balancer_id)
        if old is not None:  # at most one socket per balancer: the new one replaces it
            await old.close(code=relay.CloseCode.POLICY_VIOLATION, message=b"replaced")
        self.links[balancer_id] = ws
        host = self.live.host
        assert host is not None  # noqa: S101 - a master role always has a host
        link = _BalancerLink(ws)
        hl = host.attach(link, balancer_id)
        writer = asyncio.create_task(link.outbox.run())
        await ws.send_str(relay.encode_init(relay.Init(c.port, self.token)))
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    break
                try:
                    envelopes = relay.parse_from_client(msg.data)
                except relay.RelayError as exc:
                    await ws.close(code=exc.close_code, message=str(exc)[:120].encode())
                    break
                for env in envelopes:
                    await self._envelope(hl, link, env)
        finally:
            hl.close()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            if self.links.get(balancer_id) is ws:
                del self.links[balancer_id]
        return ws

    async def _envelope(self, hl: HostLink, link: _BalancerLink, env: relay.ClientEnvelope) -> None:
        message = env.message
        if message.get("action") == relay.Action.REQ:
            request = message.get("request")
            kind = request.get("type") if isinstance(request, dict) else None
            try:
                if kind == relay.RequestType.JOIN:
                    await hl.join(env.room, env.id, env.token)
                elif kind == REAUTH:
                    await hl.reauth(env.room, env.id, env.token)
                elif kind == relay.RequestType.LEAVE:
                    hl.leave(env.id)
            except AuthRefused as exc:
                link.close_client(env.room, env.id, exc.code, exc.reason)
            return
        pending = hl.message(env.id, message, None)
        if pending is not None:
            await pending


# --------------------------------------------------------------------------------------------
# Balancer side


class MasterConn:
    """A balancer's socket to one master; also the `Route` of the clients in its sessions."""

    def __init__(self, connector: Connector, url: str) -> None:
        self.connector = connector
        self.url = url
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.outbox: Outbox | None = None
        self.init: relay.Init | None = None
        self.clients: dict[str, ClientConn] = {}
        self.failures = 0
        self.next_attempt = 0.0
        self.task: asyncio.Task[None] | None = None

    def finished(self, _task: asyncio.Task[None]) -> None:
        self.task = None

    @property
    def up(self) -> bool:
        return self.init is not None and self.ws is not None and not self.ws.closed

    # ---- Route ---------------------------------------------------------------------------

    def _send(self, client: ClientConn, message_json: str) -> None:
        if self.outbox is not None:
            self.outbox.put(
                relay.encode_from_client_json(
                    client.token, client.room, client.conn_id, message_json
                )
            )

    async def join(self, client: ClientConn, grant: Grant) -> None:
        if not self.up:
            raise AuthRefused(relay.CloseCode.TRY_AGAIN_LATER, "session master not connected")
        self.clients[client.conn_id] = client
        self._send(client, _JOIN)

    async def reauth(self, client: ClientConn, token: str, grant: Grant) -> None:
        if self.outbox is not None:
            self.outbox.put(
                relay.encode_from_client_json(token, client.room, client.conn_id, _REAUTH)
            )

    def forward(self, client: ClientConn, message: dict[str, Any], text: str) -> None:
        self._send(client, text)

    def leave(self, client: ClientConn) -> None:
        if self.clients.pop(client.conn_id, None) is not None:
            self._send(client, _LEAVE)

    # ---- the socket ----------------------------------------------------------------------

    async def run(self, session: aiohttp.ClientSession) -> None:
        config = self.connector.live.config
        headers = {"X-Balancer": self.connector.balancer_id}
        if config.relay_token is not None:
            headers["Authorization"] = f"Bearer {config.relay_token}"
        try:
            ws = await session.ws_connect(
                self.url.rstrip("/") + "/relay",
                headers=headers,
                max_msg_size=MAX_RELAY_FRAME,
                compress=0,
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
            )
            first = await ws.receive(timeout=INIT_TIMEOUT)
            if first.type is not WSMsgType.TEXT:
                raise relay.RelayError("frame", "master closed before init")  # noqa: TRY301
            init = relay.parse_init(first.data)
            if config.relay_token is not None and not same_secret(init.token, config.relay_token):
                await ws.close()
                raise relay.RelayError("token", "init token does not match --relay-token")  # noqa: TRY301
        except (aiohttp.ClientError, OSError, TimeoutError, relay.RelayError) as exc:
            self._failed(f"cannot reach session master {self.url}: {exc!r}")
            return
        self.ws, self.init, self.failures = ws, init, 0
        self.outbox = Outbox(ws)
        writer = asyncio.create_task(self.outbox.run())
        log.info("connected to session master", extra={"url": self.url, "http_port": init.port})
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    break
                try:
                    self._from_master(msg.data)
                except relay.RelayError:
                    log.warning("bad frame from master", extra={"url": self.url}, exc_info=True)
                    break
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            await ws.close()
            self.init = None
            lost, self.clients = list(self.clients.values()), {}
            self.connector.live.balancer.lost(lost, "session master lost")  # type: ignore[union-attr]
            self._failed(f"lost session master {self.url}")

    def _failed(self, why: str) -> None:
        self.failures += 1
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(self.failures - 1, 16))
        self.next_attempt = time.monotonic() + delay
        log.warning(why, extra={"retry_in": delay})

    def _from_master(self, text: str) -> None:
        balancer = self.connector.live.balancer
        assert balancer is not None  # noqa: S101 - a connector runs on balancers only
        for env in relay.parse_from_master(text):
            if isinstance(env, relay.Broadcast):
                balancer.broadcast(env.room, _dumps(env.message))
                continue
            client = self.clients.get(env.id)
            if client is None:
                continue
            if env.message.get("action") == cm.Push.CLOSING:
                self.clients.pop(env.id, None)
                code = env.message.get("code")
                balancer.close_client(
                    env.room,
                    env.id,
                    relay.CloseCode(code)
                    if code in relay.CLOSE_CODES
                    else relay.CloseCode.TRY_AGAIN_LATER,
                    str(env.message.get("reason", "")),
                )
            else:
                client.deliver(_dumps(env.message))


class Connector:
    """A balancer's sockets to every master of the pool, kept up with backoff."""

    def __init__(self, live: RelayNode) -> None:
        self.live = live
        self.balancer_id = secrets.token_hex(6)
        self.masters: dict[str, MasterConn] = {}
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()

    @property
    def connected(self) -> int:
        return sum(1 for m in self.masters.values() if m.up)

    def route(self, url: str) -> MasterConn | None:
        conn = self.masters.get(url)
        return conn if conn is not None and conn.up else None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._discover())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for conn in self.masters.values():
            if conn.task is not None:
                conn.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await conn.task
        if self._session is not None:
            await self._session.close()

    async def _discover(self) -> None:
        interval = self.live.config.discovery_interval
        while True:
            try:
                urls = await self.live.store.read(
                    lambda conn: [r[0] for r in conn.execute("SELECT url FROM masters")]
                )
            except Exception:
                log.warning("cannot read the master pool", exc_info=True)
                urls = []
            self.sync(urls)
            # Wake early when a master's backoff ends before the next pool read.
            due = [m.next_attempt for m in self.masters.values() if m.task is None]
            wait = interval
            if due:
                wait = max(0.0, min(interval, min(due) - time.monotonic()))
            await asyncio.sleep(max(wait, 0.05))

    def sync(self, urls: list[str]) -> None:
        assert self._session is not None  # noqa: S101 - started
        now = time.monotonic()
        for url in urls:
            conn = self.masters.setdefault(url, MasterConn(self, url))
            if conn.task is None and now >= conn.next_attempt:
                conn.task = asyncio.create_task(conn.run(self._session))
                conn.task.add_done_callback(conn.finished)
