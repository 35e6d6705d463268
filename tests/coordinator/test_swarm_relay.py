"""The tracker across nodes, on one real (in-process) pub/sub as two nodes would share Redis: what
one node's links report reaches the other node's tracker without the link's token, a kiosk known
through two links is named once, and a malformed event is dropped with a log line while the
events after it still apply."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from coordinator.pubsub import PubSub, make_pubsub
from coordinator.swarm import Tracker
from coordinator.swarm.relay import SWARM_CHANNEL, TrackerRelay
from wire import agentmsg as am
from wire import swarm as sw

SHA = "cd" * 32
COUNT = 4
SHOW = 3
TOKEN = "f" * 64  # a link's merged token: it resumes the link, so it must not travel


def have(address: str, held: range) -> am.Have:
    message = am.parse_from_agent(
        {
            "type": "have",
            "sha256": SHA,
            "count": COUNT,
            "chunks": sw.encode_have(held, COUNT),
            "fetching": sw.encode_have((), COUNT),
            "address": address,
            "origin_bytes": 0,
            "peer_bytes": 0,
        }
    )
    assert isinstance(message, am.Have)
    return message


class Heard:
    """Everything published on the swarm channel, as another subscriber sees it."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def deliver(self, text: str) -> None:
        self.texts.append(text)


@pytest.fixture
async def bus() -> AsyncIterator[PubSub]:
    pubsub = make_pubsub(None)
    await pubsub.start()
    yield pubsub
    await pubsub.close()


async def two_nodes(bus: PubSub) -> tuple[TrackerRelay, TrackerRelay]:
    a = TrackerRelay(Tracker(), bus, node="a")
    b = TrackerRelay(Tracker(), bus, node="b")
    await a.start()
    await b.start()
    return a, b


async def test_one_nodes_reports_reach_the_others_tracker_without_the_link_token(
    bus: PubSub,
) -> None:
    a, b = await two_nodes(bus)
    heard = Heard()
    await bus.subscribe(heard, SWARM_CHANNEL)
    report = have("10.1.0.5:8765", range(COUNT))
    a.tracker.update(SHOW, TOKEN, 7, "kiosk-7", report)
    await a.have(SHOW, TOKEN, 7, "kiosk-7", report)
    peers = b.tracker.peers(SHOW, SHA, "another link")
    assert [p.address for p in peers.peers] == ["10.1.0.5:8765"]
    assert not any(TOKEN in text for text in heard.texts)
    # Its own event came back to node a and changed nothing there.
    assert len(a.tracker.snapshot(SHOW)["images"][0]["kiosks"]) == 1
    await a.forget(SHOW, TOKEN)
    assert b.tracker.peers(SHOW, SHA, "another link").peers == ()


async def test_a_kiosk_known_through_two_links_is_named_once(bus: PubSub) -> None:
    _a, b = await two_nodes(bus)
    # Its link on a lost node, and its new link on this one: same peer server.
    b.tracker.update(SHOW, "old link", 7, "kiosk-7", have("10.1.0.5:8765", range(2)))
    b.tracker.update(SHOW, "new link", 7, "kiosk-7", have("10.1.0.5:8765", range(COUNT)))
    peers = b.tracker.peers(SHOW, SHA, "asker").peers
    assert [(p.address, p.chunks) for p in peers] == [
        ("10.1.0.5:8765", sw.encode_have(range(COUNT), COUNT))
    ]


@pytest.mark.parametrize(
    "data",
    [
        {"node": "x", "op": "have", "show": SHOW, "link": "l", "appliance": 1, "name": "k"},
        {"node": "x", "op": "teleport", "show": SHOW, "message": {"type": "want", "sha256": SHA}},
        {
            "node": "x",
            "op": "have",
            "show": SHOW,
            "link": "l",
            "appliance": 1,
            "name": "k",
            "message": {**have("10.1.0.9:1", range(1)).to_json(), "chunks": "not a bitmap!"},
        },
        "not an object",
    ],
)
async def test_a_malformed_event_is_dropped_and_the_next_applies(
    bus: PubSub, data: Any, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await two_nodes(bus)
    with caplog.at_level(logging.WARNING, "coordinator.swarm.relay"):
        await bus.publish(SWARM_CHANNEL, data)
    assert "malformed swarm event dropped" in caplog.text
    assert b.tracker.snapshot(SHOW)["images"] == []
    await a.have(SHOW, TOKEN, 7, "kiosk-7", have("10.1.0.5:8765", range(COUNT)))
    assert [k["name"] for k in b.tracker.snapshot(SHOW)["images"][0]["kiosks"]] == ["kiosk-7"]
