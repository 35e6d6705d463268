"""Browser `cancel`, `common_only` and `reorder` over the client WebSocket of a real coordinator.

Burners are joined to the live session master the way their transports join them: one that can
stop a burn (as an appliance link does) and one that cannot (a seed-004 TCP burner).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from rv_helpers import MD5, Client, World, new_session

from coordinator.live import LIVE
from coordinator.master import CancelBurn, Master, MemberKind, Payload
from wire import burnproto as bp

WAIT = 10.0
LINK_UID, TCP_UID = "1" * 32, "2" * 32


async def _ask(ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send_str(json.dumps(frame))
    for _ in range(50):
        msg = await ws.receive(timeout=WAIT)
        assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data)
        out: dict[str, Any] = json.loads(msg.data)
        if out.get("action") == frame["action"]:
            return out
    raise AssertionError(f"no reply to {frame['action']}")


class Box:
    """A burner as its transport sees it: what the master delivered to it."""

    def __init__(self) -> None:
        self.got: list[Payload] = []

    def __call__(self, payload: Payload) -> None:
        self.got.append(payload)


async def _room(client: Client, world: World) -> tuple[str, Master, Box, Box]:
    sid = await new_session(client, world)
    master = client.app[LIVE].master
    assert master is not None
    await master.load(sid)
    link_box, tcp_box = Box(), Box()
    for member, uid, box, cancels in (
        ("link-1", LINK_UID, link_box, True),
        ("tcp-1", TCP_UID, tcp_box, False),
    ):
        master.join(sid, member, MemberKind.BURNER, box, uid=uid, cancels=cancels)
        await master.handle(sid, member, bp.Cap((bp.Capability.BURNDVDR,), (MD5,)))
        await master.handle(sid, member, bp.Status(bp.StatusValue(bp.StatusKind.IDLE)))
    return sid, master, link_box, tcp_box


@pytest.fixture
async def ws_for(client: Client) -> Any:
    opened: list[aiohttp.ClientWebSocketResponse] = []

    async def connect(sid: str, token: str) -> aiohttp.ClientWebSocketResponse:
        ws = await client.ws_connect(f"/ws/{sid}")
        await ws.send_str(json.dumps({"action": "auth", "token": token}))
        opened.append(ws)
        return ws

    yield connect
    for ws in opened:
        await ws.close()


async def test_cancel_stops_a_link_burner_and_refuses_a_tcp_one(
    client: Client, world: World, ws_for: Any
) -> None:
    sid, master, link_box, tcp_box = await _room(client, world)
    ws = await ws_for(sid, world.contributor)
    assert await _ask(ws, {"action": "queue", "md5": MD5, "count": 3}) == {
        "action": "queue",
        "status": True,
    }
    room = master.room(sid)
    assert room is not None
    assert room.burners[LINK_UID].job == MD5
    assert room.burners[TCP_UID].job == MD5

    answer = await _ask(ws, {"action": "cancel", "uid": LINK_UID})
    assert answer == {"action": "cancel", "status": True}
    assert link_box.got[-1] == CancelBurn(LINK_UID, MD5)
    snap = (await _ask(ws, {"action": "snapshot"}))["result"]
    stats = {b["uid"]: b["stats"] for b in snap["burners"]}
    assert stats[LINK_UID]["cancelled"] == 1
    assert stats[LINK_UID]["failed"] == 0
    # Three queued, two dispatched, one cancelled and dropped: one still waits.
    assert snap["queue"] == [{"md5": MD5, "count": 1}]

    refused = await _ask(ws, {"action": "cancel", "uid": TCP_UID})
    assert refused["status"] is False
    assert refused["error"].startswith("NOT_ALLOWED: ")
    assert "no verb to stop a burn" in refused["error"]
    assert room.burners[TCP_UID].job == MD5
    assert not [p for p in tcp_box.got if isinstance(p, CancelBurn)]


async def test_common_only_is_shown_in_the_burner_status_channel(
    client: Client, world: World, ws_for: Any
) -> None:
    sid, master, _link, _tcp = await _room(client, world)
    ws = await ws_for(sid, world.contributor)
    channel = f"session.{sid}.burner.{TCP_UID}.status"
    assert (await _ask(ws, {"action": "subscribe", "pattern": channel}))["status"] is True
    assert await _ask(ws, {"action": "common_only", "uid": TCP_UID, "on": True}) == {
        "action": "common_only",
        "status": True,
    }
    seen: list[dict[str, Any]] = []
    for _ in range(20):
        frame = json.loads((await ws.receive(timeout=WAIT)).data)
        if frame.get("action") == "message" and frame["channel"] == channel:
            seen.append(frame["data"])
            break
    assert [d["common_only"] for d in seen] == [True]
    room = master.room(sid)
    assert room is not None
    assert room.burners[TCP_UID].common_only is True


async def test_reorder_moves_an_image_in_the_queue(
    client: Client, world: World, ws_for: Any
) -> None:
    sid, master, _link, _tcp = await _room(client, world)
    # A second image the catalog does not list but a burner announced holding.
    other = "ef" * 16
    await master.handle(sid, "tcp-1", bp.Cap((bp.Capability.BURNDVDR,), (MD5, other)))
    for member in ("link-1", "tcp-1"):
        await master.handle(sid, member, bp.Status(bp.StatusValue(bp.StatusKind.EMPTY)))
    ws = await ws_for(sid, world.contributor)
    await _ask(ws, {"action": "queue", "md5": MD5, "count": 2})
    await _ask(ws, {"action": "queue", "md5": other})
    moved = await _ask(ws, {"action": "reorder", "md5": other, "position": 0})
    assert moved == {"action": "reorder", "status": True}
    snap = (await _ask(ws, {"action": "snapshot"}))["result"]
    assert snap["queue"] == [{"md5": other, "count": 1}, {"md5": MD5, "count": 2}]
    missing = await _ask(ws, {"action": "reorder", "md5": "ab" * 16, "position": 0})
    assert missing["status"] is False
    assert missing["error"].startswith("UNKNOWN_IMAGE: ")


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"action": "cancel"}, "uid"),
        ({"action": "cancel", "uid": "xyz"}, "uid"),
        ({"action": "common_only", "uid": "ab" * 16}, "on"),
        ({"action": "common_only", "uid": "ab" * 16, "on": "yes"}, "on"),
        ({"action": "reorder", "md5": "ab" * 16}, "position"),
        ({"action": "reorder", "md5": "ab" * 16, "position": -1}, "position"),
        ({"action": "reorder", "md5": "ab" * 16, "position": True}, "position"),
        ({"action": "reorder", "position": 0}, "md5"),
    ],
)
async def test_bad_operator_frames_name_the_field_and_change_nothing(
    client: Client, world: World, ws_for: Any, frame: dict[str, Any], field: str
) -> None:
    sid, master, _link, _tcp = await _room(client, world)
    ws = await ws_for(sid, world.contributor)
    answer = await _ask(ws, frame)
    assert answer["status"] is False
    assert answer["error"].startswith(f"{field}: ")
    room = master.room(sid)
    assert room is not None
    assert all(not b.common_only for b in room.burners.values())
    assert (await _ask(ws, {"action": "snapshot"}))["status"] is True
