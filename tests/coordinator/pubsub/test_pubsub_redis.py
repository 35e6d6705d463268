"""The Redis pub/sub backend against a real redis-server: two nodes, PSUBSCRIBE bookkeeping,
Redis restarts and clean shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from pubsub_helpers import Inbox

from coordinator.pubsub import (
    InProcessPubSub,
    PubSub,
    PubSubConfigError,
    PubSubUnavailable,
    RedisPubSub,
    make_pubsub,
)
from tests.conftest import RedisServer, free_port, start_redis
from wire.pubsub import PubSubError

MakeNode = Callable[..., Awaitable[RedisPubSub]]
LOGGER = "coordinator.pubsub.redis_backend"


@pytest.fixture
async def make_node(redis_server: RedisServer) -> AsyncIterator[MakeNode]:
    """Start backends ("nodes") on the fixture's Redis; all are closed at the end of the test."""
    nodes: list[RedisPubSub] = []

    async def factory(url: str | None = None, *, wait: bool = True, **options: Any) -> RedisPubSub:
        options = {"backoff_initial": 0.01, "backoff_max": 0.1, **options}
        node = make_pubsub(url or redis_server.url, **options)
        assert isinstance(node, RedisPubSub)
        nodes.append(node)
        await node.start()
        if wait:
            async with asyncio.timeout(10):
                await node.wait_reachable()
        return node

    yield factory
    for node in nodes:
        await node.close()


@pytest.fixture
async def spy(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A separate plain Redis client, to look at what the nodes did on the server."""
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def numpat(client: aioredis.Redis) -> int:
    return int(await client.execute_command("PUBSUB", "NUMPAT"))  # type: ignore[no-untyped-call]


async def test_a_subscriber_on_node_a_gets_node_bs_publish_exactly_once(
    make_node: MakeNode,
) -> None:
    node_a, node_b = await make_node(), await make_node()
    on_a, on_b = Inbox("a"), Inbox("b")
    assert await node_a.subscribe(on_a, "kiosk.*.status") == {
        "action": "subscribe",
        "pattern": "kiosk.*.status",
        "status": True,
    }
    await node_b.subscribe(on_b, "kiosk.*.status")

    await node_b.publish("kiosk.7.status", {"state": "IDLE"})
    await node_a.publish("kiosk.8.status", {"state": "BURNING"})
    # Both publishes went through the same Redis in order; once the second arrived, a
    # duplicate of the first would already be here.
    for inbox in (on_a, on_b):
        messages = await inbox.wait_for(2)
        assert [(m.channel, m.data) for m in messages] == [
            ("kiosk.7.status", {"state": "IDLE"}),
            ("kiosk.8.status", {"state": "BURNING"}),
        ]
        assert {m.pattern for m in messages} == {"kiosk.*.status"}


async def test_frames_are_the_same_as_in_process(make_node: MakeNode) -> None:
    node_a, node_b = await make_node(), await make_node()
    local = InProcessPubSub()
    via_redis, in_process = Inbox(), Inbox()
    for pattern in ("burner.*", "burner.[ab]?"):
        await node_a.subscribe(via_redis, pattern)
        await local.subscribe(in_process, pattern)
    for channel in ("burner.a1", "burner.zz", "queue"):
        await node_b.publish(channel, {"ch": channel, "txt": "é\n"})
        await local.publish(channel, {"ch": channel, "txt": "é\n"})
    await node_b.publish("burner.end", None)
    await local.publish("burner.end", None)
    await via_redis.wait_for(len(in_process.frames))
    assert sorted(via_redis.frames) == sorted(in_process.frames)


@pytest.mark.parametrize("kind", ["inprocess", "redis"])
async def test_both_backends_give_the_seed_replies(
    kind: str, redis_server: RedisServer, make_node: MakeNode
) -> None:
    bus: PubSub = await make_node() if kind == "redis" else InProcessPubSub()
    client = Inbox()
    ok = await bus.subscribe(client, "q.*")
    duplicate = await bus.subscribe(client, "q.*")
    unknown = await bus.unsubscribe(client, "nope")
    bad = await bus.handle(client, '{"action":"subscribe","pattern":7}')
    assert ok == {"action": "subscribe", "pattern": "q.*", "status": True}
    assert (duplicate["status"], "error" in duplicate) == (False, True)
    assert (unknown["status"], "error" in unknown) == (False, True)
    assert bad["status"] is False
    assert bad["error"].startswith("pattern:")


async def test_psubscribe_on_first_local_subscriber_punsubscribe_after_last(
    make_node: MakeNode, spy: aioredis.Redis
) -> None:
    node = await make_node()
    first, second = Inbox("first"), Inbox("second")
    assert await numpat(spy) == 0

    await node.subscribe(first, "queue.*")
    assert await numpat(spy) == 1
    await node.subscribe(second, "queue.*")
    assert await numpat(spy) == 1, "a second local subscriber must not PSUBSCRIBE again"
    await node.subscribe(second, "kiosk.*")
    assert await numpat(spy) == 2

    await node.unsubscribe(first, "queue.*")
    assert await numpat(spy) == 2, "a local subscriber still holds queue.*"
    await node.remove(second)  # the last local subscriber disconnects
    assert await numpat(spy) == 0
    assert node.health().patterns == 0


async def test_one_node_leaving_a_pattern_does_not_cut_off_another(
    make_node: MakeNode, spy: aioredis.Redis
) -> None:
    node_a, node_b = await make_node(), await make_node()
    on_a, on_b = Inbox("a"), Inbox("b")
    await node_a.subscribe(on_a, "queue.*")
    await node_b.subscribe(on_b, "queue.*")
    await node_a.unsubscribe(on_a, "queue.*")
    # NUMPAT counts distinct patterns: node B still holds this one.
    assert await numpat(spy) == 1
    await node_a.publish("queue.1", "from a")
    assert [m.data for m in await on_b.wait_for(1)] == ["from a"]
    await node_b.remove(on_b)
    assert await numpat(spy) == 0
    assert on_a.frames == []


async def test_concurrent_subscribes_all_wait_for_redis_and_psubscribe_once(
    make_node: MakeNode, spy: aioredis.Redis
) -> None:
    node_a, node_b = await make_node(), await make_node()
    room = [Inbox(str(i)) for i in range(20)]
    replies = await asyncio.gather(*(node_a.subscribe(c, "room.*") for c in room))
    assert all(r["status"] is True for r in replies)
    assert await numpat(spy) == 1
    # Every reply came after Redis confirmed, so a publish right away reaches all of them.
    await node_b.publish("room.1", "hi")
    for client in room:
        assert [m.data for m in await client.wait_for(1)] == ["hi"]
    await asyncio.gather(*(node_a.remove(c) for c in room))
    assert await numpat(spy) == 0


async def test_a_cancelled_subscribe_still_leaves_redis_in_step(
    make_node: MakeNode, spy: aioredis.Redis
) -> None:
    node_a, node_b = await make_node(), await make_node()
    hung_up, later = Inbox("hung up"), Inbox("later")
    task = asyncio.create_task(node_a.subscribe(hung_up, "queue.*"))
    await asyncio.sleep(0)  # let the subscribe run to its first suspension, then cancel it
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await node_a.subscribe(later, "queue.*"))["status"] is True
    assert await numpat(spy) == 1
    await node_b.publish("queue.1", "x")
    assert [m.data for m in await later.wait_for(1)] == ["x"]
    await node_a.remove(hung_up)
    await node_a.remove(later)
    assert await numpat(spy) == 0


async def test_unsubscribed_node_no_longer_receives(make_node: MakeNode) -> None:
    node_a, node_b = await make_node(), await make_node()
    client, witness = Inbox("client"), Inbox("witness")
    await node_a.subscribe(client, "q.*")
    await node_a.subscribe(witness, "w")
    await node_a.unsubscribe(client, "q.*")
    await node_b.publish("q.1", "missed")
    await node_b.publish("w", "marker")
    await witness.wait_for(1)
    assert client.frames == []


async def test_namespaces_keep_deployments_apart(make_node: MakeNode) -> None:
    blue, green = await make_node(namespace="blue:"), await make_node(namespace="green:")
    on_blue, on_green = Inbox("blue"), Inbox("green")
    await blue.subscribe(on_blue, "*")
    await green.subscribe(on_green, "*")
    await green.publish("kiosk.1", "green only")
    await blue.publish("kiosk.1", "blue only")
    assert [m.data for m in await on_blue.wait_for(1)] == ["blue only"]
    assert [m.data for m in await on_green.wait_for(1)] == ["green only"]
    await green.publish("end", "marker")
    await on_green.wait_for(2)
    assert on_blue.data() == ["blue only"]


async def test_glob_characters_in_the_namespace_are_literal(
    make_node: MakeNode, spy: aioredis.Redis
) -> None:
    odd = await make_node(namespace="a*[b]:")
    client = Inbox()
    await odd.subscribe(client, "x.*")
    await spy.publish("aZZ[b]:x.1", '"not ours"')
    await spy.publish("ab:x.1", '"not ours either"')
    await odd.publish("x.2", "ours")
    assert [m.data for m in await client.wait_for(1)] == ["ours"]
    assert len(client.frames) == 1


async def test_malformed_messages_in_the_namespace_are_dropped_and_counted(
    make_node: MakeNode, spy: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    node = await make_node()
    client = Inbox()
    await node.subscribe(client, "kiosk.*")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await spy.publish("burnstand:kiosk.1", "{not json")
        await spy.publish("burnstand:kiosk.2", b"\xff\xfe")
        await spy.publish("burnstand:kiosk.3", '{"ok":true}')
        assert [m.data for m in await client.wait_for(1)] == [{"ok": True}]
    assert len(client.frames) == 1
    assert node.health().dropped == 2
    assert any("malformed" in r.getMessage() for r in caplog.records)


async def test_bad_publish_input_raises_before_reaching_redis(make_node: MakeNode) -> None:
    node = await make_node()
    client = Inbox()
    await node.subscribe(client, "*")
    with pytest.raises(PubSubError) as caught:
        await node.publish("kiosk.1", {"nan": float("inf")})
    assert caught.value.field == "data"
    with pytest.raises(PubSubError) as caught:
        await node.publish("", 1)
    assert caught.value.field == "channel"
    await node.publish("after", "ok")
    assert (await client.wait_for(1))[0].data == "ok"
    assert len(client.frames) == 1


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("http://127.0.0.1:6379", {}),
        ("redis://127.0.0.1:99999", {}),
        ("", {}),
        ("redis://127.0.0.1:6379", {"backoff_max": 0}),
        ("redis://127.0.0.1:6379", {"namespace": 5}),
    ],
)
async def test_unusable_settings_are_refused_before_connecting(
    url: str, options: dict[str, Any]
) -> None:
    with pytest.raises(PubSubConfigError):
        make_pubsub(url, **options)


async def test_redis_restart_reconnects_and_resubscribes(
    make_node: MakeNode,
    redis_server: RedisServer,
    tmp_path: Path,
    spy: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    node_a, node_b = await make_node(), await make_node()
    kiosk, late = Inbox("kiosk"), Inbox("late")
    await node_a.subscribe(kiosk, "kiosk.*")
    await node_b.publish("kiosk.1", "before")
    await kiosk.wait_for(1)

    caplog.set_level(logging.DEBUG, logger=LOGGER)
    redis_server.process.terminate()
    await asyncio.to_thread(redis_server.process.wait, 10)
    async with asyncio.timeout(10):
        await node_a.wait_reachable(expected=False)
        await node_b.wait_reachable(expected=False)
    assert node_a.health().reachable is False

    with pytest.raises(PubSubUnavailable):
        await node_b.publish("kiosk.1", "during the outage")
    assert node_b.health().refused == 1
    # Subscribing while Redis is away is accepted locally and held for the reconnect.
    assert (await node_a.subscribe(late, "queue.*"))["status"] is True

    restarted = await asyncio.to_thread(start_redis, tmp_path / "redis2", redis_server.port)
    try:
        async with asyncio.timeout(10):
            await node_a.wait_reachable()
            await node_b.wait_reachable()
        assert node_a.health().reachable is True
        assert await numpat(spy) == 2, "node A re-PSUBSCRIBEd both of its patterns"

        await node_b.publish("kiosk.2", "after")
        await node_b.publish("queue.1", "subscribed during the outage")
        assert [m.data for m in await kiosk.wait_for(2)] == ["before", "after"]
        assert [m.data for m in await late.wait_for(1)] == ["subscribed during the outage"]

        lost = [
            r
            for r in caplog.records
            if r.levelno == logging.ERROR and r.name == LOGGER and "lost" in r.getMessage()
        ]
        assert len(lost) == 2, "one error line per node for the outage"
        assert all(getattr(r, "redis", "").endswith(f":{redis_server.port}/0") for r in lost)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name == LOGGER]
        assert len(errors) == 2, "reconnect attempts must not log an error each"
        assert any("reachable again" in r.getMessage() for r in caplog.records)
    finally:
        await node_a.close()
        await node_b.close()
        await spy.aclose()
        restarted.process.terminate()
        await asyncio.to_thread(restarted.process.wait, 10)


async def test_a_redis_that_stops_answering_is_detected_and_left(
    make_node: MakeNode, spy: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    node = await make_node(keepalive=0.1, connect_timeout=0.3, command_timeout=0.3)
    client = Inbox()
    await node.subscribe(client, "kiosk.*")
    caplog.set_level(logging.INFO, logger=LOGGER)
    # The socket stays open but Redis answers nothing for a while: no FIN ever arrives, only
    # the keepalive can tell.
    await spy.execute_command("CLIENT", "PAUSE", "1500", "ALL")  # type: ignore[no-untyped-call]
    async with asyncio.timeout(10):
        await node.wait_reachable(expected=False)
        await node.wait_reachable()
    await node.publish("kiosk.1", "after the stall")
    assert [m.data for m in await client.wait_for(1)] == ["after the stall"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name == LOGGER]
    assert len(errors) == 1
    assert "no reply from Redis" in getattr(errors[0], "error", "")


async def test_a_node_started_before_redis_connects_when_redis_comes(
    make_node: MakeNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        node = await make_node(url, wait=False)
    assert node.health().reachable is False
    assert any("unreachable" in r.getMessage() for r in caplog.records)
    client = Inbox()
    assert (await node.subscribe(client, "kiosk.*"))["status"] is True
    with pytest.raises(PubSubUnavailable):
        await node.publish("kiosk.1", "nobody can carry this")

    server = await asyncio.to_thread(start_redis, tmp_path / "late-redis", port)
    try:
        async with asyncio.timeout(10):
            await node.wait_reachable()
        await node.publish("kiosk.1", "now")
        assert [m.data for m in await client.wait_for(1)] == ["now"]
    finally:
        await node.close()
        server.process.terminate()
        await asyncio.to_thread(server.process.wait, 10)


async def test_close_leaves_no_tasks_and_refuses_publishing(make_node: MakeNode) -> None:
    node = await make_node()
    await node.subscribe(Inbox(), "kiosk.*")
    await node.close()
    leftovers = [t for t in asyncio.all_tasks() if t.get_name().startswith("burnstand-redis")]
    assert leftovers == []
    assert node.health().reachable is False
    with pytest.raises(PubSubUnavailable):
        await node.publish("kiosk.1", "after close")
    await node.close()  # closing twice is harmless
