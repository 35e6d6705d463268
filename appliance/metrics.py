"""The agent's Prometheus metrics on a local port (`[agent] metrics_port`, loopback only).

The same kind of series as the coordinator's `/metrics`, for this kiosk's own drives: burns that
ended by drive, medium and result (counted from the agent's "finished" events), and at scrape
time each drive's state, the image cache's fill and whether the link is up. Its own registry and
a small aiohttp server that serves only `GET /metrics`. docs/monitoring.md lists the series.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from appliance.control import AgentStatus, DriveView


class Watched(Protocol):
    """What the metrics read of the agent (appliance.agent.Agent has all of it)."""

    def add_listener(self, listener: Any) -> Any: ...

    def status_now(self) -> AgentStatus: ...

    def drive_views(self) -> list[DriveView]: ...


class _Now(Collector):
    """Values read at scrape time: drive states, cache fill, link."""

    def __init__(self, agent: Watched) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        status = self.agent.status_now()
        link = GaugeMetricFamily("burnstand_agent_link_up", "1 when the link is online")
        link.add_metric([], 1.0 if status["link"] == "online" else 0.0)
        used = GaugeMetricFamily("burnstand_agent_cache_bytes", "Bytes in the image cache")
        used.add_metric([], float(status["cache_used"]))
        size = GaugeMetricFamily("burnstand_agent_cache_max_bytes", "The image cache's size")
        size.add_metric([], float(status["cache_max"]))
        drives = GaugeMetricFamily(
            "burnstand_agent_drive_state",
            "1 for each drive's current state",
            labels=["drive", "state"],
        )
        for view in self.agent.drive_views():
            drives.add_metric([view["name"] or view["uid"], view["state"]], 1.0)
        yield from (link, used, size, drives)


class AgentMetrics:
    def __init__(self, agent: Watched) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.burns = Counter(
            "burnstand_agent_burns",
            "Burns that ended on this kiosk, by drive, medium and result (passed, failed)",
            ["drive", "media", "result"],
            registry=self.registry,
        )
        self.registry.register(_Now(agent))
        self._agent = agent
        agent.add_listener(self._event)

    def _event(self, event: dict[str, Any]) -> None:
        if event.get("event") != "finished":
            return
        uid = event.get("drive")
        view = next((v for v in self._agent.drive_views() if v["uid"] == uid), None)
        drive = (view["name"] or view["uid"]) if view is not None else str(uid)
        media = "+".join(view["capabilities"]) if view is not None else "unknown"
        ok = bool(event.get("result", {}).get("ok"))
        self.burns.labels(drive=drive, media=media, result="passed" if ok else "failed").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


async def start_server(metrics: AgentMetrics, port: int) -> web.AppRunner:
    """Serve `GET /metrics` on 127.0.0.1:`port` until the runner is cleaned up."""

    async def handle(_request: web.Request) -> web.Response:
        return web.Response(
            body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
