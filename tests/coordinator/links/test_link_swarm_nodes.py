"""Kiosks of one show linked to two different coordinator nodes (one PostgreSQL database, one
Redis, separate data folders, as on two hosts): the tracker of each node hears what the other
node's kiosks hold, so a kiosk is told of a peer linked elsewhere, and either node's swarm view
shows both; the peer token one node signed is good with the show key the other node sent (the
shared peer key); a link that ends is forgotten on both nodes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from link_helpers import Signal
from pgserver import PostgresServer
from rv_helpers import bearer

from appliance.link import AgentLink
from coordinator.app import make_app
from coordinator.config import CoordinatorConfig
from coordinator.keys import STORE
from coordinator.live import LIVE
from coordinator.store.catalog import add_show
from coordinator.store.people import create_admin, create_appliance
from coordinator.swarm import TRACKER
from coordinator.swarm.relay import SWARM_CHANNEL
from tests.conftest import RedisServer
from wire import swarm as sw

SHA = "ab" * 32
COUNT = 8
PEER_KEY = "3c9a" * 16


@dataclass
class Node:
    server: TestServer

    @property
    def app(self) -> web.Application:
        return self.server.app

    @property
    def link_url(self) -> str:
        return str(self.server.make_url("/link")).replace("http", "ws", 1)


class _Pulse:
    """The test's own subscriber to the swarm channel: wakes waiters when an event arrived."""

    def __init__(self, signal: Signal) -> None:
        self.signal = signal

    def deliver(self, _text: str) -> None:
        self.signal.pulse()


@pytest.fixture
async def nodes(
    tmp_path: Path,
    redis_server: RedisServer,
    postgres_server: PostgresServer,
    pg_template: str,
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
) -> tuple[Node, Node, Signal]:
    database = postgres_server.new_database(template=pg_template)
    signal = Signal()
    made = []
    for name in ("r1", "r2"):
        config = CoordinatorConfig(
            data_dir=tmp_path / name,
            database=database,
            redis_url=redis_server.url,
            peer_key=PEER_KEY,
            expiry_check_interval=3600,
        )
        node = Node(await aiohttp_server(make_app(config)))
        await node.app[LIVE].pubsub.subscribe(_Pulse(signal), SWARM_CHANNEL)
        made.append(node)
    return made[0], made[1], signal


async def start_agent(
    node: Node, credential: str, inbox: list[dict[str, Any]], signal: Signal
) -> AgentLink:
    async def on_message(payload: dict[str, Any]) -> None:
        inbox.append(payload)
        signal.pulse()

    link = AgentLink(node.link_url, credential, on_message=on_message, ack_interval=0.02)
    await link.start()
    return link


def of_type(inbox: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in inbox if m.get("type") == kind]


def have(address: str) -> dict[str, Any]:
    return {
        "type": "have",
        "sha256": SHA,
        "count": COUNT,
        "chunks": sw.encode_have(range(COUNT), COUNT),
        "fetching": sw.encode_have((), COUNT),
        "address": address,
        "origin_bytes": 1 << 20,
        "peer_bytes": 0,
    }


def kiosks_seen(node: Node, show: int) -> list[str]:
    snapshot = node.app[TRACKER].snapshot(show)
    return [k["name"] for image in snapshot["images"] for k in image["kiosks"]]


async def test_kiosks_linked_to_two_nodes_see_each_other(
    nodes: tuple[Node, Node, Signal],
) -> None:
    r1, r2, signal = nodes
    store = r1.app[STORE]
    now = time.time()
    show = (await store.write(lambda c: add_show(c, now, "t", {"name": "S", "asset_root": "/"})))[
        "id"
    ]
    a = await store.write(lambda c: create_appliance(c, now, "t", show, "kiosk-a"))
    b = await store.write(lambda c: create_appliance(c, now, "t", show, "kiosk-b"))
    admin = await store.write(lambda c: create_admin(c, now, "t", "Ada", "a@x.org"))
    inbox_a: list[dict[str, Any]] = []
    inbox_b: list[dict[str, Any]] = []
    agent_a = await start_agent(r1, a["credential"], inbox_a, signal)
    agent_b = await start_agent(r2, b["credential"], inbox_b, signal)
    try:
        await signal.until(
            lambda: bool(of_type(inbox_a, "peer_token") and of_type(inbox_b, "peer_token"))
        )
        token_a = of_type(inbox_a, "peer_token")[0]
        key_b = bytes.fromhex(of_type(inbox_b, "peer_token")[0]["key"])
        # Kiosk B (told its show's key by r2) accepts the token r1 signed for kiosk A.
        grant = sw.check_token(key_b, token_a["token"], show, time.time())
        assert grant.appliance == a["id"]

        await agent_a.send(have("10.9.0.10:8765"))
        await signal.until(lambda: kiosks_seen(r2, show) == ["kiosk-a"])
        await agent_b.send({"type": "want", "sha256": SHA})
        await signal.until(lambda: bool(of_type(inbox_b, "peers")))
        peers = of_type(inbox_b, "peers")[0]
        assert [p["address"] for p in peers["peers"]] == ["10.9.0.10:8765"]

        # B reports A on r2; r1's swarm view (a node that never saw B) shows the report.
        await agent_b.send(
            {
                "type": "bad_peer",
                "sha256": SHA,
                "address": "10.9.0.10:8765",
                "reason": "bad chunk 3",
            }
        )
        await signal.until(lambda: bool(r1.app[TRACKER].snapshot(show)["reports"]))
        async with aiohttp.ClientSession() as http:
            url = r1.server.make_url(f"/api/v1/shows/{show}/swarm")
            async with http.get(url, headers=bearer(admin)) as resp:
                view = await resp.json()
        assert [k["name"] for k in view["images"][0]["kiosks"]] == ["kiosk-a"]
        assert [(r["reporter"], r["peer"]) for r in view["reports"]] == [
            ("kiosk-b", "10.9.0.10:8765")
        ]
    finally:
        await agent_b.close()
    # A link that ends formally is forgotten on the other node too.
    await agent_a.close()
    await signal.until(lambda: kiosks_seen(r2, show) == [])
