"""A session's history (burned/failed per minute and per hour) over REST, as CSV, and on the
session's WebSocket, from the real embedded coordinator and its master's SQLite file."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rv_helpers import Client, World, bearer, call, new_session

from coordinator.live import LIVE
from coordinator.master import MemberKind, Payload
from wire import burnproto as bp

UID = "5" * 32
IMG = "ab" * 16


def _ignore(payload: Payload) -> None:
    pass


async def _burn_two(client: Client, sid: str) -> None:
    """A burner of the session passes one disc and fails the next (fed to the real master, as
    its TCP or link transport would)."""
    master = client.server.app[LIVE].master
    assert master is not None
    await master.load(sid)
    master.join(sid, "b1", MemberKind.BURNER, _ignore, uid=UID)
    master.join(sid, "c1", MemberKind.COMMAND, _ignore)
    await master.handle(sid, "b1", bp.Cap((bp.Capability.BURNCDR,), (IMG,)))
    await master.handle(sid, "c1", bp.Name(UID, "=left box"))
    await master.handle(sid, "c1", bp.Queue(IMG, 2))
    for result in (bp.StatusKind.MD5PASS, bp.StatusKind.MD5FAIL):
        await master.handle(sid, "b1", bp.Status(bp.StatusValue(bp.StatusKind.IDLE)))
        await master.handle(sid, "b1", bp.Status(bp.StatusValue(result)))


def _sums(rows: list[dict[str, Any]], kind: str) -> tuple[int, int]:
    mine = [r for r in rows if r["kind"] == kind]
    return sum(r["burned"] for r in mine), sum(r["failed"] for r in mine)


async def test_history_over_rest_csv_and_websocket_agree(client: Client, world: World) -> None:
    sid = await new_session(client, world)
    await _burn_two(client, sid)
    body = await call(client, "GET", f"/sessions/{sid}/history", world.contributor, expect=200)
    assert body["name"] == "booth"
    assert body["span"] == 60
    assert body["totals"] == {"burned": 1, "failed": 1}
    assert _sums(body["rows"], "burner") == (1, 1)
    assert {r["name"] for r in body["rows"]} == {"=left box"}
    hourly = await call(
        client, "GET", f"/sessions/{sid}/history?span=hour", world.admin, expect=200
    )
    assert [(r["kind"], r["id"], r["burned"], r["failed"]) for r in hourly["rows"]] == [
        ("burner", UID, 1, 1)
    ]
    # A show admin of this show may read it too; `since` past every bucket leaves none.
    later = await call(
        client, "GET", f"/sessions/{sid}/history?since=99999999999", world.show_admin, expect=200
    )
    assert later["rows"] == []

    resp = await client.get(
        f"/api/v1/sessions/{sid}/history.csv?span=hour", headers=bearer(world.contributor)
    )
    assert resp.status == 200
    assert resp.content_type == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(await resp.text())))
    assert lines[0] == ["start", "span", "kind", "id", "name", "burned", "failed"]
    [row] = lines[1:]
    assert row[1:] == ["3600", "burner", UID, "'=left box", "1", "1"]  # no formula in a sheet
    assert row[0].endswith(":00:00Z")

    ws = await client.ws_connect(f"/ws/{sid}")
    await ws.send_str(json.dumps({"action": "auth", "token": world.contributor}))
    await ws.send_str(json.dumps({"action": "history", "span": "hour"}))
    for _ in range(20):  # bounded: a few pushes may come first
        frame = json.loads((await ws.receive(timeout=10)).data)
        if frame.get("action") == "history":
            break
    assert frame["status"] is True, frame
    assert frame["result"]["rows"] == hourly["rows"]
    assert frame["result"]["totals"] == {"burned": 1, "failed": 1}
    await ws.close()


async def test_history_refuses_bad_queries_and_other_shows(client: Client, world: World) -> None:
    sid = await new_session(client, world)
    for query, word in (("span=day", "span"), ("since=-5", "since"), ("since=1.5", "since")):
        problem = await call(
            client, "GET", f"/sessions/{sid}/history?{query}", world.contributor, expect=400
        )
        assert problem["detail"].startswith(word), problem
    await call(client, "GET", "/sessions/nosuchsession/history", world.contributor, expect=404)
    await call(client, "GET", f"/sessions/{sid}/history", world.other_show_admin, expect=404)
    await call(client, "GET", f"/sessions/{sid}/history.csv", world.appliance, expect=403)


async def test_history_needs_a_credential(client: Client, world: World) -> None:
    sid = await new_session(client, world)
    resp = await client.get(f"/api/v1/sessions/{sid}/history")
    assert resp.status == 401
    assert resp.content_type == "application/problem+json"


async def test_admins_and_show_admins_read_a_session_they_watch(
    client: Client, world: World
) -> None:
    sid = await new_session(client, world)
    for token in (world.admin, world.show_admin):
        body = await call(client, "GET", f"/sessions/{sid}", token, expect=200)
        assert (body["id"], body["name"]) == (sid, "booth")
        assert body["member"] is False  # they watch without joining
    assert (await call(client, "GET", f"/sessions/{sid}", world.contributor, expect=200))["member"]
    # Another show's session does not exist for them.
    await call(client, "GET", f"/sessions/{sid}", world.other_show_admin, expect=404)
