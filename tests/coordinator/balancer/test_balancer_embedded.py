"""The client WebSocket in embedded mode: a real coordinator app on loopback, real SQLite."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from rv_helpers import (
    MD5,
    Client,
    FakeClock,
    MakeClient,
    World,
    call,
    enter,
    make_world,
    new_session,
)

from coordinator.keys import EXPIRY, STORE
from coordinator.live import LIVE

WAIT = 10.0


async def _connect(client: Client, sid: str, token: str) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect(f"/ws/{sid}")
    await ws.send_str(json.dumps({"action": "auth", "token": token}))
    return ws


async def _frame(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=WAIT)
    assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    out: dict[str, Any] = json.loads(msg.data)
    return out


async def _until(ws: aiohttp.ClientWebSocketResponse, action: str) -> dict[str, Any]:
    for _ in range(50):
        frame = await _frame(ws)
        if frame.get("action") == action:
            return frame
    raise AssertionError(f"no {action} frame")


async def _closed_with(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    for _ in range(50):
        msg = await ws.receive(timeout=WAIT)
        if msg.type is aiohttp.WSMsgType.CLOSE:
            # The code the server sent. aiohttp's client reports 1006 instead when the server
            # dropped TCP before its close reply went out; a browser reports the server's code.
            return int(msg.data)
        if msg.type is aiohttp.WSMsgType.CLOSED:
            return ws.close_code
    raise AssertionError("socket stayed open")


async def _ask(ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send_str(json.dumps(frame))
    return await _until(ws, str(frame["action"]))


async def test_member_gets_snapshot_of_its_room(client: Client, world: World) -> None:
    sid = await new_session(client, world)
    ws = await _connect(client, sid.upper(), world.contributor)  # room ids are case-insensitive
    answer = await _ask(ws, {"action": "snapshot"})
    assert answer["status"] is True
    assert answer["result"]["session"] == sid
    assert answer["result"]["queue"] == []
    health = await call(client, "GET", "/health", expect=200)
    assert health["status"] == "LISTENING"
    assert health["clients"] == 1
    assert health["role"] == "all"
    await ws.close()


async def test_queue_from_browser_updates_queue_channel(client: Client, world: World) -> None:
    sid = await new_session(client, world)
    watcher = await _connect(client, sid, world.show_admin)  # a show admin may watch
    sub = await _ask(watcher, {"action": "subscribe", "pattern": f"session.{sid}.queue"})
    assert sub == {"action": "subscribe", "pattern": f"session.{sid}.queue", "status": True}
    ws = await _connect(client, sid, world.contributor)
    answer = await _ask(ws, {"action": "queue", "md5": MD5, "count": 2})
    assert answer == {"action": "queue", "status": True}
    update = await _until(watcher, "message")
    assert update["channel"] == f"session.{sid}.queue"
    assert update["data"]["length"] == 2
    assert update["data"]["queue"] == [{"md5": MD5, "count": 2}]
    # An image nobody knows is refused with the master's reason; nothing is queued.
    bad = await _ask(ws, {"action": "queue", "md5": "ef" * 16})
    assert bad["status"] is False
    assert "UNKNOWN_IMAGE" in bad["error"]
    snap = await _ask(ws, {"action": "snapshot"})
    assert snap["result"]["queue"] == [{"md5": MD5, "count": 2}]
    cleared = await _ask(ws, {"action": "qclear"})
    assert cleared == {"action": "qclear", "status": True}
    assert (await _until(watcher, "message"))["data"]["length"] == 0


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"action": "queue"}, "md5"),
        ({"action": "queue", "md5": "xyz"}, "md5"),
        ({"action": "queue", "md5": MD5, "count": 0}, "count"),
        ({"action": "open"}, "uid"),
        ({"action": "name", "uid": "ab" * 16, "name": 3}, "name"),
        ({"action": "fly"}, "action"),
    ],
)
async def test_bad_command_gets_typed_error_and_socket_stays(
    client: Client, world: World, frame: dict[str, Any], field: str
) -> None:
    sid = await new_session(client, world)
    ws = await _connect(client, sid, world.contributor)
    answer = await _ask(ws, frame)
    assert answer["status"] is False
    assert answer["error"].startswith(f"{field}:")
    assert (await _ask(ws, {"action": "snapshot"}))["status"] is True


async def test_open_and_name_unknown_burner_are_refused(client: Client, world: World) -> None:
    sid = await new_session(client, world)
    ws = await _connect(client, sid, world.contributor)
    opened = await _ask(ws, {"action": "open", "uid": "ab" * 16})
    assert opened["status"] is False
    assert "UNKNOWN_CLIENT" in opened["error"]
    named = await _ask(ws, {"action": "name", "uid": "ab" * 16, "name": "left box"})
    assert named["status"] is False


async def test_sessions_are_isolated(client: Client, world: World) -> None:
    sid_x = await new_session(client, world)
    sid_y = await new_session(client, world, world.contributor2)
    x = await _connect(client, sid_x, world.contributor)
    y = await _connect(client, sid_y, world.contributor2)
    # A pattern reaching outside the session is refused, so Y's traffic cannot be read from X.
    wide = await _ask(x, {"action": "subscribe", "pattern": "session.*"})
    assert wide["status"] is False
    assert (await _ask(x, {"action": "subscribe", "pattern": f"session.{sid_x}.*"}))["status"]
    assert (await _ask(y, {"action": "subscribe", "pattern": f"session.{sid_y}.*"}))["status"]
    assert (await _ask(y, {"action": "queue", "md5": MD5}))["status"]
    assert (await _until(y, "message"))["channel"].startswith(f"session.{sid_y}.")
    # X hears nothing of Y: the next thing X receives is the reply to its own request.
    assert (await _ask(x, {"action": "snapshot"}))["result"]["queue"] == []
    # Not a member of Y: Y does not exist for this credential.
    other = await _connect(client, sid_y, world.other_show_admin)
    assert await _closed_with(other) == 4002


async def test_close_codes_of_auth(client: Client, world: World, clock: FakeClock) -> None:
    sid = await new_session(client, world)
    unknown = await _connect(client, sid, "not-a-credential")
    assert await _closed_with(unknown) == 4001
    nosuch = await _connect(client, "deadbeefdeadbeef", world.contributor)
    assert await _closed_with(nosuch) == 4002
    appliance = await _connect(client, sid, world.appliance)
    assert await _closed_with(appliance) == 1008
    first_not_auth = await client.ws_connect(f"/ws/{sid}")
    await first_not_auth.send_str(json.dumps({"action": "snapshot"}))
    assert await _closed_with(first_not_auth) == 1008
    binary = await client.ws_connect(f"/ws/{sid}")
    await binary.send_bytes(b"\x00\x01")
    assert await _closed_with(binary) == 1003
    garbage = await client.ws_connect(f"/ws/{sid}")
    await garbage.send_str("{not json")
    assert await _closed_with(garbage) == 1003
    ws = await _connect(client, sid, world.contributor)
    assert (await _ask(ws, {"action": "snapshot"}))["status"]
    await ws.send_str("nope")
    assert await _closed_with(ws) == 1003
    forged = await _connect(client, sid, world.contributor)
    await forged.send_str(json.dumps({"action": "req", "request": {"type": "join"}}))
    assert await _closed_with(forged) == 1008
    clock.advance(3601)  # the world's credentials last an hour
    expired = await _connect(client, sid, world.contributor)
    assert await _closed_with(expired) == 4001


async def test_suspended_session_closes_members_and_refuses_new(
    client: Client, world: World
) -> None:
    sid = await new_session(client, world)
    ws = await _connect(client, sid, world.contributor)
    assert (await _ask(ws, {"action": "snapshot"}))["status"]
    await call(client, "POST", f"/sessions/{sid}/suspend", world.contributor, expect=200)
    assert await _closed_with(ws) == 4003
    again = await _connect(client, sid, world.show_admin)
    assert await _closed_with(again) == 4003


async def test_no_auth_in_time_is_4004(make_client: MakeClient, clock: FakeClock) -> None:
    client = await make_client(auth_timeout=0.05)
    world = await make_world(client, clock)
    sid = await new_session(client, world)
    ws = await client.ws_connect(f"/ws/{sid}")
    assert await _closed_with(ws) == 4004


async def test_session_without_reachable_master_is_1013(client: Client, world: World) -> None:
    sid = await new_session(client, world)
    store = client.app[STORE]

    def move(conn: Any) -> None:
        conn.execute(
            "INSERT INTO masters (name, url, capacity, created_at) "
            "VALUES ('far', 'http://127.0.0.1:9', 10, 0)"
        )
        conn.execute(
            "UPDATE sessions SET master_id = (SELECT id FROM masters WHERE name = 'far') "
            "WHERE id = ?",
            (sid,),
        )

    await store.write(move)
    ws = await _connect(client, sid, world.contributor)
    assert await _closed_with(ws) == 1013


async def test_slow_client_is_closed_without_slowing_the_room(
    make_client: MakeClient, clock: FakeClock
) -> None:
    client = await make_client(client_queue_limit=8)
    world = await make_world(client, clock)
    sid = await new_session(client, world)
    slow = await _connect(client, sid, world.contributor)
    fast = await _connect(client, sid, world.show_admin)
    assert (await _ask(slow, {"action": "snapshot"}))["status"]
    assert (await _ask(fast, {"action": "snapshot"}))["status"]
    balancer = client.app[LIVE].balancer
    assert balancer is not None
    conns = list(balancer.rooms[sid])
    # A burst for one client beyond its bounded queue, faster than it drains.
    victim = next(c for c in conns if c.token == world.contributor)
    for i in range(20):
        victim.deliver(json.dumps({"action": "burst", "i": i}))
    assert await _closed_with(slow) == 1013
    assert (await _ask(fast, {"action": "snapshot"}))["status"]


async def test_expiry_notice_refresh_and_keep_place(
    client: Client, world: World, clock: FakeClock
) -> None:
    sid = await new_session(client, world)
    short = await enter(client, "dev@example.org", world.show, world.secrets["dev"], 600)
    await call(client, "POST", f"/sessions/{sid}/join", short, expect=200)
    ws = await _connect(client, sid, short)
    assert (await _ask(ws, {"action": "subscribe", "pattern": f"session.{sid}.queue"}))["status"]
    clock.advance(400)  # inside the 300 s warning window
    await client.app[EXPIRY].check_once()
    notice = await _until(ws, "expiring")
    assert notice["expires_at"] == pytest.approx(clock() + 200)
    fresh = await call(client, "POST", "/credentials/refresh", short, {"duration": 3600}, 201)
    assert (await _ask(ws, {"action": "auth", "token": fresh["credential"]}))["status"] is True
    clock.advance(600)  # the old credential is long gone; the socket and its place stay
    assert (await _ask(ws, {"action": "queue", "md5": MD5}))["status"] is True
    assert (await _until(ws, "message"))["data"]["length"] == 1
    # Notices for the new credential reach the same socket.
    clock.advance(3600 - 600 - 100)
    await client.app[EXPIRY].check_once()
    assert (await _until(ws, "expiring"))["expires_at"] > notice["expires_at"]


async def test_reauth_as_someone_else_is_1008(client: Client, world: World) -> None:
    sid = await new_session(client, world)
    ws = await _connect(client, sid, world.contributor)
    assert (await _ask(ws, {"action": "snapshot"}))["status"]
    await ws.send_str(json.dumps({"action": "auth", "token": world.show_admin}))
    assert await _closed_with(ws) == 1008


async def test_rest_session_changes_load_and_suspend_rooms(client: Client, world: World) -> None:
    live = client.app[LIVE]
    assert live.master is not None
    sid = await new_session(client, world)
    for _ in range(100):  # the REST event reaches the master through pub/sub
        if live.master.room(sid) is not None:
            break
        await asyncio.sleep(0.01)  # poll backoff, bounded
    room = live.master.room(sid)
    assert room is not None
    assert not room.suspended
    await call(client, "POST", f"/sessions/{sid}/suspend", world.contributor, expect=200)
    for _ in range(100):
        if room.suspended:
            break
        await asyncio.sleep(0.01)  # poll backoff, bounded
    assert room.suspended
    await call(client, "POST", f"/sessions/{sid}/resume", world.contributor, expect=200)
    ws = await _connect(client, sid, world.contributor)
    assert (await _ask(ws, {"action": "snapshot"}))["result"]["suspended"] is False
