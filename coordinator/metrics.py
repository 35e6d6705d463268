"""The coordinator's Prometheus metrics at `GET /metrics` (text exposition format).

Every number comes from something the process already does: burns ended and the queue from the
changes the session masters publish (the same ones dashboards get), kiosks online from the link
hub, WebSocket clients from the balancer, and request latency from a middleware that times every
HTTP request by its route pattern (never the raw path, so ids do not explode the label set;
WebSocket upgrades are left out, their "latency" is the life of the socket). Each app has its own
registry, so several coordinators in one test process do not collide. docs/monitoring.md lists
the series and example alert rules.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

# Seconds: from a cached health check to a slow image listing.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNKNOWN = "unknown"

ShowOf = Callable[[str], Awaitable[int | None]]


class Metrics:
    """The series of one coordinator process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.burns = Counter(
            "burnstand_burns",
            "Burns that ended, by show, kiosk, medium and result (passed, failed, cancelled)",
            ["show", "kiosk", "media", "result"],
            registry=r,
        )
        self.queue = Gauge(
            "burnstand_queue_length", "Discs waiting in a session's queue", ["session"], registry=r
        )
        self.kiosks_online = Gauge(
            "burnstand_kiosks_online", "Kiosk links connected to this node", registry=r
        )
        self.websocket_clients = Gauge(
            "burnstand_websocket_clients",
            "Browser WebSocket clients seated on this node",
            registry=r,
        )
        self.relay_messages = Counter(
            "burnstand_relay_messages",
            "Live messages the session masters published to dashboards, by kind",
            ["kind"],
            registry=r,
        )
        self.requests = Histogram(
            "burnstand_http_request_duration_seconds",
            "HTTP request latency by method, route pattern and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._shows: dict[str, str] = {}

    async def observe(self, channel: str, data: Mapping[str, object], show_of: ShowOf) -> None:
        """Count one change a session master published (`session.<id>.<kind>...`)."""
        parts = channel.split(".")
        if len(parts) < 3 or parts[0] != "session":
            return
        session, kind = parts[1], parts[2]
        self.relay_messages.labels(kind=kind).inc()
        if kind == "queue":
            length = data.get("length")
            if isinstance(length, int):
                self.queue.labels(session=session).set(length)
        elif kind == "stats" and isinstance(data.get("result"), str):
            show = await self._show(session, show_of)
            self.burns.labels(
                show=show,
                kiosk=str(data.get("kiosk") or UNKNOWN),
                media=str(data.get("media") or UNKNOWN),
                result=str(data["result"]),
            ).inc()

    async def _show(self, session: str, show_of: ShowOf) -> str:
        show = self._shows.get(session)
        if show is None:
            found = await show_of(session)
            show = UNKNOWN if found is None else str(found)
            self._shows[session] = show
        return show

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        def timed(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> Awaitable[web.StreamResponse]:
            # A plain function, not `async def`: a WebSocket gets its handler's own awaitable
            # back, so no middleware frame lives as long as the socket (the per-connection
            # memory target), and its life is not a "latency".
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return handler(request)
            return self._timed(request, handler)

        return timed

    async def _timed(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            status = exc.status
            raise
        else:
            status = response.status
            return response
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            self.requests.labels(method=request.method, route=route, status=str(status)).observe(
                time.perf_counter() - started
            )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", Metrics)


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup(app: web.Application) -> Metrics:
    """Give `app` its metrics, the timing middleware (outermost) and `GET /metrics`."""
    metrics = Metrics()
    app[METRICS] = metrics
    app.middlewares.insert(0, metrics.middleware())
    app.router.add_get("/metrics", _metrics)
    return metrics
