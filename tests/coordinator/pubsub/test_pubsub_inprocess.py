"""The in-process pub/sub backend: seed 001 replies, glob delivery, disconnects and bad input."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from pubsub_helpers import Inbox

from coordinator.pubsub import InProcessPubSub, PubSub, make_pubsub
from wire.pubsub import PubSubError


@pytest.fixture
async def bus() -> InProcessPubSub:
    backend = InProcessPubSub()
    await backend.start()
    return backend


async def test_make_pubsub_without_redis_is_in_process() -> None:
    backend = make_pubsub(None)
    assert isinstance(backend, InProcessPubSub)
    assert isinstance(backend, PubSub)
    assert backend.health().reachable is True
    assert backend.health().backend == "inprocess"


async def test_subscribe_and_unsubscribe_replies_follow_seed_001(bus: InProcessPubSub) -> None:
    client = Inbox()
    assert await bus.subscribe(client, "kiosk.*.status") == {
        "action": "subscribe",
        "pattern": "kiosk.*.status",
        "status": True,
    }
    duplicate = await bus.subscribe(client, "kiosk.*.status")
    assert duplicate["action"] == "subscribe"
    assert duplicate["pattern"] == "kiosk.*.status"
    assert duplicate["status"] is False
    assert "already subscribed" in duplicate["error"]

    unknown = await bus.unsubscribe(client, "kiosk.9")
    assert unknown["status"] is False
    assert unknown["action"] == "unsubscribe"
    assert "not subscribed" in unknown["error"]

    assert await bus.unsubscribe(client, "kiosk.*.status") == {
        "action": "unsubscribe",
        "pattern": "kiosk.*.status",
        "status": True,
    }
    again = await bus.unsubscribe(client, "kiosk.*.status")
    assert again["status"] is False
    assert "error" in again


async def test_duplicate_subscribe_still_delivers_once(bus: InProcessPubSub) -> None:
    client = Inbox()
    await bus.subscribe(client, "queue")
    await bus.subscribe(client, "queue")
    await bus.publish("queue", [1, 2])
    assert client.data() == [[1, 2]]


async def test_glob_patterns_deliver_like_redis(bus: InProcessPubSub) -> None:
    star, one_char, klass, literal, other = (
        Inbox(n) for n in ["star", "one", "klass", "literal", "other"]
    )
    await bus.subscribe(star, "kiosk.*.status")
    await bus.subscribe(one_char, "kiosk.?.status")
    await bus.subscribe(klass, "kiosk.[0-3].*")
    await bus.subscribe(literal, "kiosk.7.status")
    await bus.subscribe(other, "queue.*")

    await bus.publish("kiosk.7.status", {"state": "IDLE"})
    await bus.publish("kiosk.12.status", {"state": "BURNING"})
    await bus.publish("kiosk.2.stats", {"burned": 3})

    assert [json.loads(f) for f in star.frames] == [
        {
            "action": "message",
            "pattern": "kiosk.*.status",
            "channel": "kiosk.7.status",
            "data": {"state": "IDLE"},
        },
        {
            "action": "message",
            "pattern": "kiosk.*.status",
            "channel": "kiosk.12.status",
            "data": {"state": "BURNING"},
        },
    ]
    assert [m.channel for m in one_char.messages] == ["kiosk.7.status"]
    assert [m.channel for m in klass.messages] == ["kiosk.2.stats"]
    assert [(m.pattern, m.channel) for m in literal.messages] == [
        ("kiosk.7.status", "kiosk.7.status")
    ]
    assert other.frames == []


async def test_one_subscriber_with_two_matching_patterns_gets_one_frame_each(
    bus: InProcessPubSub,
) -> None:
    client = Inbox()
    await bus.subscribe(client, "burner.*")
    await bus.subscribe(client, "burner.a?")
    await bus.publish("burner.ab", "MD5PASS")
    assert sorted(m.pattern for m in client.messages) == ["burner.*", "burner.a?"]


async def test_frame_text_is_built_once_per_pattern_and_shared(bus: InProcessPubSub) -> None:
    room = [Inbox(str(i)) for i in range(5)]
    for client in room:
        await bus.subscribe(client, "room.*")
    await bus.publish("room.1", {"queue": ["a", "b"]})
    first = room[0].frames[0]
    assert all(client.frames[0] is first for client in room)


async def test_unsubscribe_stops_delivery(bus: InProcessPubSub) -> None:
    client = Inbox()
    await bus.subscribe(client, "queue.*")
    await bus.publish("queue.1", 1)
    await bus.unsubscribe(client, "queue.*")
    await bus.publish("queue.1", 2)
    assert client.data() == [1]


async def test_remove_forgets_a_disconnected_subscriber(bus: InProcessPubSub) -> None:
    gone, stays = Inbox("gone"), Inbox("stays")
    await bus.subscribe(gone, "kiosk.*")
    await bus.subscribe(gone, "queue")
    await bus.subscribe(stays, "kiosk.*")
    await bus.remove(gone)
    await bus.publish("kiosk.1", "x")
    await bus.publish("queue", "y")
    assert gone.frames == []
    assert stays.data() == ["x"]
    health = bus.health()
    assert (health.patterns, health.subscribers) == (1, 1)
    # Removing again (a second close callback) is harmless.
    await bus.remove(gone)
    assert bus.health().subscribers == 1


async def test_handle_answers_client_frames(bus: InProcessPubSub) -> None:
    client = Inbox()
    reply = await bus.handle(client, '{"action":"subscribe","pattern":"kiosk.*"}')
    assert reply == {"action": "subscribe", "pattern": "kiosk.*", "status": True}
    reply = await bus.handle(client, {"action": "unsubscribe", "pattern": "nope"})
    assert reply["status"] is False


@pytest.mark.parametrize(
    ("frame", "action", "field"),
    [
        ("not json", "error", "frame"),
        ('{"action":"publish","pattern":"a"}', "error", "action"),
        ('{"action":"subscribe"}', "subscribe", "pattern"),
        ('{"action":"subscribe","pattern":""}', "subscribe", "pattern"),
        ('{"action":"subscribe","pattern":"a","x":1}', "subscribe", "x"),
    ],
)
async def test_bad_frames_get_an_error_reply_and_change_nothing(
    bus: InProcessPubSub, frame: str, action: str, field: str
) -> None:
    client = Inbox()
    await bus.subscribe(client, "kept")
    reply = await bus.handle(client, frame)
    assert reply["action"] == action
    assert reply["status"] is False
    assert reply["error"].startswith(f"{field}:")
    await bus.publish("kept", 1)
    assert client.data() == [1]
    assert bus.health().patterns == 1


async def test_subscription_limits_are_refused_with_a_reason() -> None:
    bus = InProcessPubSub(max_patterns_per_subscriber=2, max_pattern_length=8)
    client = Inbox()
    assert (await bus.subscribe(client, "a"))["status"] is True
    too_long = await bus.subscribe(client, "123456789")
    assert too_long["status"] is False
    assert "at most 8" in too_long["error"]
    assert (await bus.subscribe(client, "b"))["status"] is True
    third = await bus.subscribe(client, "c")
    assert third["status"] is False
    assert "too many patterns" in third["error"]
    await bus.publish("c", 1)
    assert client.frames == []


@pytest.mark.parametrize(
    ("channel", "data", "field"),
    [
        ("", 1, "channel"),
        (7, 1, "channel"),
        ("kiosk.1", object(), "data"),
        ("kiosk.1", float("nan"), "data"),
        ("kiosk.1", {1j: 2}, "data"),
    ],
)
async def test_bad_publish_raises_and_delivers_nothing(
    bus: InProcessPubSub, channel: Any, data: Any, field: str
) -> None:
    client = Inbox()
    await bus.subscribe(client, "*")
    with pytest.raises(PubSubError) as caught:
        await bus.publish(channel, data)
    assert caught.value.field == field
    assert client.frames == []
    await bus.publish("kiosk.1", "still works")
    assert client.data() == ["still works"]


class _Broken:
    def deliver(self, text: str) -> None:
        raise RuntimeError("socket gone")


async def test_a_failing_subscriber_does_not_cost_others_their_message(
    bus: InProcessPubSub, caplog: pytest.LogCaptureFixture
) -> None:
    broken, fine = _Broken(), Inbox()
    await bus.subscribe(broken, "room")
    await bus.subscribe(fine, "room")
    with caplog.at_level(logging.ERROR, logger="coordinator.pubsub"):
        await bus.publish("room", "hello")
    assert fine.data() == ["hello"]
    assert any("failed to take a message" in r.getMessage() for r in caplog.records)
