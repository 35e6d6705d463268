"""The live plane wired into the coordinator app: master, pub/sub, balancer, listeners, drain.

`setup(app)` (called by `make_app`) adds the client WebSocket route and a cleanup context that,
by the process's role, starts the pub/sub backend, the session master with its browser host and
burn-protocol listener, the balancer, and in split mode the relay server a master offers
balancers (`remote.RelayServer`) or the connector a balancer uses to reach masters
(`remote.Connector`). Two rendezvous events reach masters through pub/sub control channels, so
one path serves the embedded process and a fleet on Redis alike: `coordinator.expiry` (a
credential about to expire, from the expiry watcher) and `coordinator.sessions` (a session was
created, joined, suspended or resumed through REST; a middleware publishes it). `serve` runs the
app until SIGTERM and then drains: health says CLOSED, clients are closed with 1001, the master
is flushed, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from coordinator import __version__
from coordinator.balancer.auth import Grant
from coordinator.balancer.balancer import Balancer, EmbeddedRoute, Route
from coordinator.balancer.host import HostLink, MasterHost
from coordinator.balancer.linkrelay import LinkRelay
from coordinator.balancer.remote import Connector, RelayServer
from coordinator.burnlistener import BurnListener, start_burn_listener
from coordinator.config import CoordinatorConfig
from coordinator.keys import CONFIG, EXPIRY, HEALTH, HISTORY, REVOCATIONS, STORE
from coordinator.links import LINKS, ApplianceBridge, setup_links
from coordinator.links.hub import LINK_PATH
from coordinator.master import ImageInfo, Master, PlacedElsewhere
from coordinator.master.failover import FailoverWatcher
from coordinator.metrics import METRICS, Metrics
from coordinator.pubsub import PubSub, make_pubsub
from coordinator.store import Store
from coordinator.store.credentials import ExpiringCredential
from coordinator.swarm import TRACKER, Tracker
from coordinator.swarm.relay import TrackerRelay
from plumbing import sdnotify

log = logging.getLogger(__name__)

ROLES = ("all", "balancer", "master", "rendezvous")
EXPIRY_CHANNEL = "coordinator.expiry"
SESSIONS_CHANNEL = "coordinator.sessions"
_SESSION_PATH = re.compile(r"^/api/v1/sessions(?:/([^/]+)/(join|leave|suspend|resume))?$")


class Live:
    """Everything live in this process; absent parts are None for roles that do not run them."""

    def __init__(
        self, config: CoordinatorConfig, store: Store, metrics: Metrics | None = None
    ) -> None:
        if config.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {config.role!r}")
        self.config = config
        self.store = store
        self.metrics = metrics
        self.pubsub: PubSub = make_pubsub(config.redis_url)
        self.master: Master | None = None
        self.host: MasterHost | None = None
        self.balancer: Balancer | None = None
        self.listener: BurnListener | None = None
        self.relay: RelayServer | None = None  # split master: balancers connect here
        self.connector: Connector | None = None  # split balancer: its sockets to masters
        self.embedded_link: HostLink | None = None
        self.failover: FailoverWatcher | None = None  # masters on a shared database
        self.draining = False
        self._changes: asyncio.Queue[tuple[str, Mapping[str, object]]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def runs_master(self) -> bool:
        return self.config.role in ("all", "master")

    @property
    def runs_balancer(self) -> bool:
        return self.config.role in ("all", "balancer")

    @property
    def master_url(self) -> str:
        """Pool URL of this process's master: HTTP address embedded, relay port split."""
        c = self.config
        if c.role == "master" and c.master_port is not None:
            return f"http://{c.host}:{c.master_port}"
        return c.local_master_url

    # ---- start / stop --------------------------------------------------------------------

    async def start(self) -> None:
        await self.pubsub.start()
        self._spawn(self._publisher())
        if self.runs_master:
            await self._start_master()
        if self.runs_balancer:
            self.balancer = Balancer(
                self.store,
                self.pubsub,
                self.config.clock,
                self._route_for,
                auth_timeout=self.config.auth_timeout,
                queue_limit=self.config.client_queue_limit,
                expiry_warning=self.config.expiry_warning_seconds,
            )
            if self.host is not None:
                self.embedded_link = self.host.attach(self.balancer, "embedded")
            if self.config.role == "balancer":
                self.connector = Connector(self)
                await self.connector.start()

    async def _start_master(self) -> None:
        c = self.config
        self.master = Master(
            c.master_dir or c.data_dir,
            catalog=self._catalog,
            on_change=self._on_change,
            # On PostgreSQL the masters' state is shared: another master can resume a session,
            # and this one runs only the rooms the database places on it (its pool URL).
            shared=self.store if self.store.engine == "postgresql" else None,
            url=self.master_url if self.store.engine == "postgresql" else None,
        )
        await self.master.open()
        self.host = MasterHost(self.master, self.store, c.clock)
        if self.store.engine == "postgresql":
            self.failover = FailoverWatcher(
                self.store,
                self.master_url,
                c.clock,
                lambda event: self.pubsub.publish(SESSIONS_CHANNEL, event),
                interval=c.heartbeat_interval,
                silence=c.failover_silence,
            )
        await self.pubsub.subscribe(_Control(self), EXPIRY_CHANNEL)
        await self.pubsub.subscribe(_Control(self), SESSIONS_CHANNEL)
        if c.role == "master":
            self.relay = RelayServer(self)
            await self.relay.start()
        if self.failover is not None:  # after the relay registered this master in the pool
            self.failover.start()
        if c.burn_port is not None:
            self.listener = await start_burn_listener(
                self.master,
                c.host,
                c.burn_port,
                burn_token=c.burn_token,
                session_id=c.burn_session,
                store=self.store,
                clock=c.clock,
                public_display=c.burn_public_display,
            )

    async def drain(self) -> None:
        """Stop taking clients, close them with 1001, write the master's state."""
        self.draining = True
        if self.balancer is not None:
            await self.balancer.drain()
        if self.relay is not None:
            await self.relay.drain()
        if self.master is not None:
            await self.master.flush()

    async def stop(self) -> None:
        if self.failover is not None:
            await self.failover.stop()
        if self.connector is not None:
            await self.connector.close()
        if self.relay is not None:
            await self.relay.close()
        if self.listener is not None:
            self.listener.close()
            await self.listener.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.master is not None:
            await self.master.close()
        await self.pubsub.close()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- routing, catalog, changes -------------------------------------------------------

    def _route_for(self, grant: Grant) -> Route | None:
        if self.embedded_link is not None and grant.master_url == self.master_url:
            return EmbeddedRoute(self.embedded_link)
        if self.connector is not None:
            return self.connector.route(grant.master_url)
        return None

    async def _catalog(self, md5: str) -> ImageInfo | None:
        row = await self.store.read(
            lambda conn: conn.execute(
                "SELECT md5, name, size, notes FROM takes WHERE md5 = ? ORDER BY id LIMIT 1",
                (md5.lower(),),
            ).fetchone()
        )
        if row is None:
            return None
        return ImageInfo(str(row["md5"]).lower(), row["name"], int(row["size"]), row["notes"])

    def _on_change(self, channel: str, data: Mapping[str, object]) -> None:
        # The master's hook must not block: changes are published in order by one task.
        self._changes.put_nowait((channel, data))

    async def _publisher(self) -> None:
        while True:
            channel, data = await self._changes.get()
            try:
                await self.pubsub.publish(channel, data)
            except Exception:  # a Redis outage loses live updates, never the master
                log.warning("publish failed", extra={"channel": channel}, exc_info=True)
            if self.metrics is not None:
                try:
                    await self.metrics.observe(channel, data, self._show_of)
                except Exception:  # metrics never take the live plane down
                    log.warning("metrics update failed", extra={"channel": channel}, exc_info=True)

    async def _show_of(self, session_id: str) -> int | None:
        row = await self.store.read(
            lambda conn: conn.execute(
                "SELECT show_id FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
        )
        return None if row is None else int(row["show_id"])

    async def on_expiring(self, cred: ExpiringCredential) -> None:
        await self.pubsub.publish(
            EXPIRY_CHANNEL, {"credential_id": cred.credential_id, "expires_at": cred.expires_at}
        )

    def on_revoked(self, credential_ids: frozenset[int]) -> None:
        """Close every client socket and burn-protocol connection opened with these."""
        if self.balancer is not None:
            self.balancer.revoke(credential_ids)
        if self.listener is not None:
            self.listener.revoke(credential_ids)

    async def on_session_event(self, data: Mapping[str, Any]) -> None:
        if self.master is None:
            return
        sid = str(data.get("session", ""))
        if data.get("state") == "suspended":
            if self.master.room(sid) is not None:
                await self.master.suspend(sid)
        elif data.get("state") == "live" and data.get("master_url") == self.master_url:
            try:
                room = await self.master.load(sid)
            except PlacedElsewhere as exc:  # moved on again before this event arrived
                log.info("session event for a session placed elsewhere", extra={"why": str(exc)})
                return
            if room.suspended:
                self.master.resume(sid)

    def on_control(self, text: str) -> None:
        try:
            frame = json.loads(text)
            channel, data = frame["channel"], frame["data"]
        except (ValueError, KeyError, TypeError):
            log.warning("malformed control message dropped")
            return
        if channel == EXPIRY_CHANNEL and self.master is not None:
            self.master.notify_expiry(str(data["credential_id"]), float(data["expires_at"]))
        elif channel == SESSIONS_CHANNEL:
            self._spawn(self.on_session_event(data))

    # ---- health --------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        ps = self.pubsub.health()
        return {
            "status": "CLOSED" if self.draining else "LISTENING",
            "role": self.config.role,
            "version": __version__,
            "clients": len(self.balancer.clients) if self.balancer is not None else 0,
            "links": 0,
            "balancers": len(self.relay.links) if self.relay is not None else 0,
            "masters": self.connector.connected if self.connector is not None else None,
            "pubsub": ps.backend,
            "redis_reachable": ps.reachable if self.config.redis_url else None,
        }


class _Control:
    """The master's own subscriber to the control channels (hashes by identity)."""

    def __init__(self, live: Live) -> None:
        self.live = live

    def deliver(self, text: str) -> None:
        self.live.on_control(text)


LIVE = web.AppKey("live", Live)


@web.middleware
def _session_events(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> Awaitable[web.StreamResponse]:
    """Tell masters when REST changed a session's state (created, joined, suspended, resumed).

    A plain function, not `async def`: every other request (each client WebSocket among them)
    gets the handler's own awaitable back, so no middleware frame lives as long as its socket.
    """
    if request.method != "POST" or not _SESSION_PATH.match(request.path):
        return handler(request)
    return _publish_session_event(request, handler)


async def _publish_session_event(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    if not 200 <= response.status < 300 or not isinstance(response, web.Response):
        return response
    try:
        body = json.loads(response.body or b"{}")  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return response
    if isinstance(body, dict) and isinstance(body.get("id"), str):
        master = body.get("master") or {}
        event = {
            "session": body["id"],
            "state": body.get("state"),
            "master_url": master.get("url") if isinstance(master, dict) else None,
        }
        live = request.app.get(LIVE)
        if live is not None:
            try:
                await live.pubsub.publish(SESSIONS_CHANNEL, event)
            except Exception:
                log.warning("session event not published", exc_info=True)
    return response


async def _ws(request: web.Request) -> web.StreamResponse:
    live = request.app[LIVE]
    if live.balancer is None:
        raise web.HTTPNotFound(text="this node is not a balancer")
    return await live.balancer.handle(request)


async def _live_ctx(app: web.Application) -> AsyncIterator[None]:
    metrics = app.get(METRICS)
    live = Live(app[CONFIG], app[STORE], metrics)
    app[LIVE] = live
    app[EXPIRY].add_listener(live.on_expiring)
    unhook = app[REVOCATIONS].add_listener(live.on_revoked)
    await live.start()
    relay = TrackerRelay(app[TRACKER], live.pubsub)
    await relay.start()
    links = app.get(LINKS)
    if links is not None and isinstance(links.handler, ApplianceBridge):
        links.handler.relay = relay
    if metrics is not None:
        balancer = live.balancer
        metrics.websocket_clients.set_function(
            lambda: len(balancer.clients) if balancer is not None else 0
        )
        metrics.kiosks_online.set_function(
            lambda: hub.connected if (hub := app.get(LINKS)) is not None else 0
        )
    try:
        yield
    finally:
        unhook()
        await relay.stop()
        await live.stop()


def _health(app: web.Application) -> Callable[[], dict[str, Any]]:
    def report() -> dict[str, Any]:
        live = app.get(LIVE)
        if live is None:
            return {"status": "LISTENING", "role": app[CONFIG].role, "version": __version__}
        report = live.health()
        hub = app.get(LINKS)
        report["links"] = hub.connected if hub is not None else 0
        return report

    return report


async def _on_shutdown(app: web.Application) -> None:
    live = app.get(LIVE)
    if live is not None and not live.draining:
        await live.drain()


def _draining(app: web.Application) -> bool:
    live = app.get(LIVE)
    return live is not None and live.draining


def _master_of(app: web.Application) -> Master | None:
    live = app.get(LIVE)
    return live.master if live is not None else None


def setup(app: web.Application) -> None:
    """Add the live plane to a coordinator app (before it starts)."""
    app.middlewares.append(_session_events)
    app.router.add_get("/ws/{session_id}", _ws)
    app[HEALTH] = _health(app)

    async def history(session_id: str, span: int, since: int) -> dict[str, Any] | None:
        master = _master_of(app)
        return None if master is None else await master.history(session_id, span, since)

    app[HISTORY] = history
    app.cleanup_ctx.append(_live_ctx)
    app.on_shutdown.append(_on_shutdown)
    if app[CONFIG].serve_links and app[CONFIG].role in ("all", "master"):
        # Appended after the live context, so links close before the master they feed.
        setup_links(app, lambda: _master_of(app))
    elif app[CONFIG].serve_links and app[CONFIG].role == "balancer":
        _relay_links(app)
    if TRACKER not in app:
        # No links here: the tracker only mirrors the other nodes', for the swarm view.
        app[TRACKER] = Tracker()


def _relay_links(app: web.Application) -> None:
    """A balancer passes each kiosk's `/link` on to the master of its session."""
    relay = LinkRelay(lambda: live.connector if (live := app.get(LIVE)) is not None else None)
    app.router.add_get(LINK_PATH, relay.handle)

    async def close(_app: web.Application) -> None:
        await relay.close()

    app.on_cleanup.append(close)


def serve(app: web.Application, host: str, port: int, ready: Callable[[str], None]) -> None:
    """Run until SIGTERM/SIGINT, then drain (health CLOSED, clients 1001, state flushed)."""
    asyncio.run(_serve(app, host, port, ready))


async def _serve(app: web.Application, host: str, port: int, ready: Callable[[str], None]) -> None:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    # Before the ready line: a supervisor may send SIGTERM the moment it reads it.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        ready(f"listening on http://{host}:{port}")
        # Under systemd (Type=notify, WatchdogSec=) say we are up and keep the watchdog fed;
        # both are no-ops when $NOTIFY_SOCKET is not set.
        try:
            sdnotify.ready(f"listening on http://{host}:{port}")
        except sdnotify.NotifyError as exc:
            log.warning("sd_notify failed", extra={"error": str(exc)})
        watchdog = asyncio.create_task(sdnotify.watchdog_loop(lambda: not _draining(app)))
        await stop.wait()
        log.info("draining")
        with contextlib.suppress(sdnotify.NotifyError):
            sdnotify.stopping("draining")
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
        live = app.get(LIVE)
        if live is not None:
            await live.drain()
            # Keep answering health CLOSED for a while so load balancers take this node out;
            # a second signal ends the wait early.
            stop.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), app[CONFIG].drain_seconds)
    finally:
        await runner.cleanup()
