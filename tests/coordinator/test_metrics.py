"""`GET /metrics` on a real coordinator app (its live plane, real SQLite), read back with the
Prometheus text parser: request latency by route pattern, WebSocket clients, kiosks online, the
queue, and the burn counter rising by show, medium and result after a simulated burn driven
through the session master exactly as a burner's messages would."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from rv_helpers import MD5, Client, World, call

from coordinator.live import LIVE
from coordinator.master import MemberKind
from wire import burnproto as bp

UID = "0f" * 16
WAIT = 10.0


async def scrape(client: Client) -> dict[str, list[Sample]]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    families = text_string_to_metric_families(await resp.text())
    return {f.name: list(f.samples) for f in families}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return sum(found)


async def until(client: Client, check: Any) -> dict[str, list[Sample]]:
    """Scrape until `check(metrics)` holds; bounded, and the live plane publishes in order."""
    async with asyncio.timeout(WAIT):
        while True:
            metrics = await scrape(client)
            if check(metrics):
                return metrics
            await asyncio.sleep(0.02)  # polling the scrape endpoint, bounded above


async def test_metrics_count_a_simulated_burn_and_time_requests(
    client: Client, world: World
) -> None:
    session = await call(
        client,
        "POST",
        "/sessions",
        world.contributor,
        {"name": "booth", "episode_id": world.episode},
        201,
    )
    sid = session["id"]
    before = await scrape(client)
    assert value(before.get("burnstand_burns", []), "burnstand_burns_total") == 0
    assert value(before["burnstand_websocket_clients"], "burnstand_websocket_clients") == 0
    assert value(before["burnstand_kiosks_online"], "burnstand_kiosks_online") == 0
    # The session creation above was timed under its route pattern, not its raw path.
    latency = before["burnstand_http_request_duration_seconds"]
    assert (
        value(
            latency,
            "burnstand_http_request_duration_seconds_count",
            method="POST",
            route="/api/v1/sessions",
            status="201",
        )
        == 1
    )

    master = client.app[LIVE].master
    assert master is not None
    await master.load(sid)
    sent: list[object] = []
    master.join(sid, "b1", MemberKind.BURNER, sent.append, uid=UID)
    await master.handle(sid, "b1", bp.Cap((bp.Capability.BURNDVDR,), (MD5,)))
    await master.handle(sid, "b1", bp.Status(bp.StatusValue(bp.StatusKind.IDLE)))
    master.join(sid, "desk", MemberKind.COMMAND, lambda _payload: None, commands=True)
    await master.handle(sid, "desk", bp.Queue(MD5))
    await master.handle(sid, "desk", bp.Queue(MD5))
    assert any(isinstance(p, bp.Burn) for p in sent)
    await until(
        client,
        lambda m: value(m["burnstand_queue_length"], "burnstand_queue_length", session=sid) == 1,
    )
    await master.handle(sid, "b1", bp.Status(bp.StatusValue(bp.StatusKind.MD5PASS)))
    labels = {"show": str(world.show), "media": "DVDR", "result": "passed"}
    after = await until(
        client,
        lambda m: value(m.get("burnstand_burns", []), "burnstand_burns_total", **labels) == 1,
    )
    assert value(after["burnstand_burns"], "burnstand_burns_total", result="failed") == 0
    relayed = after["burnstand_relay_messages"]
    assert value(relayed, "burnstand_relay_messages_total", kind="stats") == 1
    assert value(relayed, "burnstand_relay_messages_total", kind="burner") >= 2


def test_the_grafana_dashboard_and_alert_rules_name_only_series_we_export() -> None:
    """docs' dashboard and alert rules query series this coordinator really exports."""
    import json
    import re
    from pathlib import Path

    from coordinator.metrics import Metrics

    docs = Path(__file__).resolve().parents[2] / "docs"
    exported = {m.name for m in Metrics().registry.collect()}
    exported |= {f"{n}_total" for n in exported} | {
        f"{n}_{s}" for n in exported for s in ("bucket", "count", "sum")
    }
    dashboard = json.loads((docs / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = re.findall(
        r"expr: (?:\|\n)?(.*?)(?:\n\s+\w+:)", (docs / "monitoring.md").read_text(), re.S
    )
    used = set(re.findall(r"\b(burnstand_[a-z_]+)", " ".join(exprs + rules)))
    assert used, "no series found in the dashboard or the rules"
    assert used <= exported, used - exported
