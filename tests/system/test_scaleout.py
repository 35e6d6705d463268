"""Scale-out and drain with real processes: `burnstand-coordinator serve --role …` on loopback.

Two balancers, two session masters and a rendezvous process share one SQLite file and a real
Redis. The tests prove routing (a session's clients reach its master from either balancer),
fan-out (one publish reaches subscribers on both balancers), master loss (its clients are closed
with 1013, the other master's sessions keep working) and the SIGTERM drain of an embedded node
(clients closed with 1001, health CLOSED, exit 0). Waits are for frames, lines and health
answers, each bounded.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import RedisServer, free_port
from tests.nodes import WAIT, Node, admin_token, api, ask, until

MD5 = "cd" * 16


async def enter(http: aiohttp.ClientSession, node: Node, show: int, user: str, secret: str) -> str:
    async with http.post(
        node.url + "/api/v1/join",
        json={"user": user, "show": show, "duration": 3600, "secret": secret},
    ) as resp:
        return str((await resp.json())["credential"])


async def world(
    http: aiohttp.ClientSession, node: Node, admin: str, take: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A show with a contributor, an episode and a take (`take`, or one of md5 `MD5` whose image
    nobody has); returns tokens and ids."""
    show = (await api(http, node, "POST", "/shows", admin, {"name": "S", "asset_root": "/x"}))["id"]
    sa = await api(
        http, node, "POST", f"/shows/{show}/admins", admin, {"name": "S", "email": "s@x.org"}
    )
    sam = await enter(http, node, show, "s@x.org", sa["secret"])
    c = await api(
        http, node, "POST", f"/shows/{show}/contributors", sam, {"name": "C", "email": "c@x.org"}
    )
    cleo = await enter(http, node, show, "c@x.org", c["secret"])
    ep = (await api(http, node, "POST", f"/shows/{show}/episodes", sam, {"name": "e"}))["id"]
    seq = (await api(http, node, "POST", f"/episodes/{ep}/sequences", sam, {"name": "s"}))["id"]
    shot = (await api(http, node, "POST", f"/sequences/{seq}/shots", cleo, {"name": "d"}))["id"]
    take = take or {
        "name": "u.iso",
        "size": 10,
        "sha256": "ab" * 32,
        "md5": MD5,
        "url": "https://x/u",
    }
    await api(http, node, "POST", f"/shots/{shot}/takes", cleo, take)
    return {"show": show, "cleo": cleo, "episode": ep}


async def new_session(http: aiohttp.ClientSession, node: Node, w: dict[str, Any]) -> dict[str, Any]:
    body = {"name": "booth", "episode_id": w["episode"]}
    out: dict[str, Any] = await api(http, node, "POST", "/sessions", w["cleo"], body)
    return out


async def connect(
    http: aiohttp.ClientSession, node: Node, sid: str, token: str
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(node.url.replace("http", "ws") + f"/ws/{sid}")
    await ws.send_str(json.dumps({"action": "auth", "token": token}))
    return ws


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    for _ in range(50):
        msg = await ws.receive(timeout=WAIT)
        if msg.type is aiohttp.WSMsgType.CLOSE:
            # The code the server sent. aiohttp's client reports 1006 instead when the server
            # dropped TCP before its close reply went out; a browser reports the server's code.
            return int(msg.data)
        if msg.type is aiohttp.WSMsgType.CLOSED:
            return ws.close_code
    raise AssertionError("socket stayed open")


async def health_until(http: aiohttp.ClientSession, node: Node, key: str, value: Any) -> None:
    for _ in range(400):
        async with http.get(node.url + "/api/v1/health") as resp:
            if (await resp.json()).get(key) == value:
                return
        await asyncio.sleep(0.05)  # poll backoff between bounded health checks
    raise AssertionError(f"health never had {key}={value}")


async def test_two_balancers_two_masters_redis(
    tmp_path: Path, redis_server: RedisServer, nodes: list[Node], http: aiohttp.ClientSession
) -> None:
    data = tmp_path / "data"
    redis = ["--redis", redis_server.url]
    rendezvous = Node(data, "--role", "rendezvous", *redis)
    nodes.append(rendezvous)
    assert (await rendezvous.health(http))["role"] == "rendezvous"
    admin = admin_token(data)
    w = await world(http, rendezvous, admin)
    masters = []
    for name in ("a", "b"):
        m = Node(
            data,
            "--role",
            "master",
            "--master-port",
            str(free_port()),
            "--master-dir",
            str(tmp_path / name),
            *redis,
        )
        nodes.append(m)
        masters.append(m)
        await m.health(http)
    s1 = await new_session(http, rendezvous, w)
    s2 = await new_session(http, rendezvous, w)
    assert s1["master"]["url"] != s2["master"]["url"]  # least-loaded placement spreads them
    balancers = [Node(data, "--role", "balancer", *redis) for _ in range(2)]
    nodes.extend(balancers)
    for b in balancers:
        await b.health(http)
        await health_until(http, b, "masters", 2)

    sid1, sid2 = s1["id"], s2["id"]
    # Routing: S1's clients on either balancer reach S1's master (one queue, seen by both).
    on_b1 = await connect(http, balancers[0], sid1, w["cleo"])
    on_b2 = await connect(http, balancers[1], sid1, admin)
    for ws in (on_b1, on_b2):
        sub = await ask(ws, {"action": "subscribe", "pattern": f"session.{sid1}.queue"})
        assert sub["status"] is True
    assert (await ask(on_b2, {"action": "queue", "md5": MD5, "count": 3}))["status"] is True
    # Fan-out: the master's one publish reaches subscribers on both balancers through Redis.
    for ws in (on_b1, on_b2):
        update = await until(ws, "message")
        assert update["channel"] == f"session.{sid1}.queue"
        assert update["data"]["length"] == 3
    snap = await ask(on_b1, {"action": "snapshot"})
    assert snap["result"]["queue"] == [{"md5": MD5, "count": 3}]
    s2_client = await connect(http, balancers[0], sid2, w["cleo"])
    assert (await ask(s2_client, {"action": "snapshot"}))["result"]["queue"] == []

    # Master loss: S1's master dies; its clients are told and closed with 1013 (retry).
    lost = next(m for m in masters if s1["master"]["url"].endswith(m_port(m)))
    lost.proc.kill()
    lost.proc.wait(timeout=WAIT)
    told = await asyncio.gather(until(on_b1, "closing"), until(on_b2, "closing"))
    assert [t["code"] for t in told] == [1013, 1013]
    assert await asyncio.gather(closed_with(on_b1), closed_with(on_b2)) == [1013, 1013]
    # The other master's session keeps working on the same balancer.
    assert (await ask(s2_client, {"action": "queue", "md5": MD5}))["status"] is True
    assert (await ask(s2_client, {"action": "snapshot"}))["result"]["queue"] == [
        {"md5": MD5, "count": 1}
    ]
    # A new client of the lost master's session is refused with a retryable code.
    again = await connect(http, balancers[1], sid1, w["cleo"])
    assert await closed_with(again) == 1013


def m_port(node: Node) -> str:
    args = node.proc.args
    assert isinstance(args, list)
    return f":{args[args.index('--master-port') + 1]}"


async def test_sigterm_drains_clients_with_1001_and_health_closed(
    tmp_path: Path, nodes: list[Node], http: aiohttp.ClientSession
) -> None:
    data = tmp_path / "data"
    node = Node(data, "--drain-seconds", "30")
    nodes.append(node)
    await node.health(http)
    admin = admin_token(data)
    w = await world(http, node, admin)
    s = await new_session(http, node, w)
    ws = await connect(http, node, s["id"], w["cleo"])
    assert (await ask(ws, {"action": "queue", "md5": MD5}))["status"] is True
    node.proc.send_signal(signal.SIGTERM)
    assert (await until(ws, "closing"))["code"] == 1001
    assert await closed_with(ws) == 1001
    async with http.get(node.url + "/api/v1/health") as resp:
        assert resp.status == 503
        assert (await resp.json())["status"] == "CLOSED"
    # A new client is not taken while draining.
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await http.ws_connect(node.url.replace("http", "ws") + f"/ws/{s['id']}")
    node.proc.send_signal(signal.SIGTERM)  # a second signal ends the grace period early
    assert node.proc.wait(timeout=WAIT) == 0
    # The queue was flushed: a restarted node still has it.
    node2 = Node(data)
    nodes.append(node2)
    await node2.health(http)
    ws2 = await connect(http, node2, s["id"], w["cleo"])
    assert (await ask(ws2, {"action": "snapshot"}))["result"]["queue"] == [{"md5": MD5, "count": 1}]
