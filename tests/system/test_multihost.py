"""The coordinator across hosts: network namespaces the test makes (db, m1, m2, r1, r2).

Host `db` runs PostgreSQL and Redis; `m1` and `m2` a session master each; `r1` and `r2` a
rendezvous node and a balancer each. Every process listens on its host's own address and reaches
the others over the test's bridge, as separate machines would. A browser and two kiosks (the
production agent, a simulated drive each, on the test's side of the bridge) connect through
`r1`'s balancer, which passes the kiosks' links on to the session's master; the session's state
is read back through `r2`. A queue of 20 discs runs on the session, placed on `m1`; the visitors
stop putting blanks in after a few discs, one kiosk's burn is held mid-write, and `m1` is killed
(SIGKILL). The session is live on `m2`, the browser is back in the room, both kiosks' links are
up there, the queue and statistics are what they were at the kill; the rest of the queue runs
and every result is counted once. PostgreSQL stops and starts again, and nothing dies or is
lost. The namespaces and the bridge are removed afterwards, whatever happened.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from coordinator.store import pg
from tests.conftest import free_port, start_redis
from tests.netns import Lan, NetnsUnavailable, lan
from tests.nodes import Node, admin_token, api, appliance_token, ask, until
from tests.pgserver import PostgresMissing, remove_postgres, start_postgres
from tests.system.kiosks import Budget, Kiosk, image_bytes, start_kiosk, take_of
from tests.system.test_failover import Cluster, _eventually, _queued, ride_out_a_postgres_restart
from tests.system.test_scaleout import connect, health_until, m_port, new_session, world

HOSTS = ("db", "m1", "m2", "r1", "r2")


@pytest.fixture
def net() -> Iterator[Lan]:
    try:
        with lan(HOSTS) as made:
            yield made
    except NetnsUnavailable as exc:
        pytest.skip(str(exc))


async def test_sessions_survive_a_master_host_across_namespaced_hosts(
    tmp_path: Path,
    net: Lan,
    nodes: list[Node],
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    try:
        postgres = start_postgres(host=net.ip("db"), prefix=net.run_on("db"))
    except PostgresMissing as exc:
        pytest.skip(str(exc))
    redis = start_redis(tmp_path / "redis", host=net.ip("db"), prefix=net.run_on("db"))
    try:
        database = postgres.new_database()
        monkeypatch.setenv("BURNSTAND_DATABASE", database)
        pubsub = ["--redis", redis.url]

        def node(host: str, *args: str) -> Node:
            started = Node(
                tmp_path / host / "data", *args, *pubsub,
                host=net.ip(host), prefix=net.run_on(host),
            )  # fmt: skip
            nodes.append(started)
            return started

        rendezvous = [node(h, "--role", "rendezvous") for h in ("r1", "r2")]
        for r in rendezvous:
            assert (await r.health(http))["database_reachable"] is True
        masters = []
        for h in ("m1", "m2"):
            m = node(h, "--role", "master", "--master-port", str(free_port()))
            await m.health(http)
            masters.append(m)
        balancer = node("r1", "--role", "balancer")
        node("r2", "--role", "balancer")
        await balancer.health(http)
        cluster = Cluster(postgres, database, rendezvous, balancer, masters[0], masters[1])
        await kiosk_failover_scenario(http, cluster, tmp_path)
    finally:
        redis.process.terminate()
        redis.process.wait(timeout=30)
        remove_postgres(postgres)


def _counted(url: str, session_id: str) -> dict[str, tuple[int, list[str]]]:
    """Each burner's count of burned discs and the ids of the results it counted, as stored."""
    conn = pg.connect(url)
    try:
        rows = conn.execute(
            "SELECT uid, burned, jobs FROM burners WHERE session_id = ?", (session_id,)
        ).fetchall()
        return {str(r[0]): (int(r[1]), list(json.loads(str(r[2])))) for r in rows}
    finally:
        conn.raw.close()


async def _room(http: aiohttp.ClientSession, c: Cluster, sid: str, token: str) -> Any:
    """The room as a browser that connects through the balancer sees it (None: refused)."""
    ws = await connect(http, c.balancer, sid, token)
    try:
        snap = await ask(ws, {"action": "snapshot"})
    except AssertionError:
        return None  # refused while the balancer catches up: try again
    finally:
        await ws.close()
    return snap["result"] if snap.get("status") is True else None


def _burned(room: dict[str, Any]) -> dict[str, int]:
    return {b["uid"]: b["stats"]["burned"] for b in room["burners"]}


def _links(room: dict[str, Any]) -> list[str]:
    return sorted(str(k["link"]) for k in room["kiosks"])


async def kiosk_failover_scenario(http: aiohttp.ClientSession, c: Cluster, tmp: Path) -> None:
    image = image_bytes()
    take = take_of(image)
    admin = await asyncio.to_thread(admin_token, tmp / "admin")
    w = await world(http, c.rendezvous[0], admin, take)
    session = await new_session(http, c.rendezvous[0], w)
    sid = session["id"]
    assert session["master"]["url"].endswith(m_port(c.m1))  # least loaded, then first added
    await health_until(http, c.balancer, "masters", 2)

    blanks = Budget(6)  # after the first two discs, six more blanks: eight burned before the kill
    kiosks: list[Kiosk] = []
    try:
        for name in ("kiosk-a", "kiosk-b"):
            token = await asyncio.to_thread(appliance_token, tmp / "admin", w["show"], name)
            kiosks.append(
                await start_kiosk(tmp / "kiosks", name, c.balancer.url, token, image, blanks)
            )
        await _kiosk_scenario(http, c, sid, w, take, kiosks, blanks)
    finally:
        for kiosk in kiosks:
            kiosk.clock.gate.set()
            await kiosk.stop()


async def _kiosk_scenario(
    http: aiohttp.ClientSession,
    c: Cluster,
    sid: str,
    w: dict[str, Any],
    take: dict[str, Any],
    kiosks: list[Kiosk],
    blanks: Budget,
) -> None:
    a, b = kiosks
    uids = sorted(k.uid for k in kiosks)

    async def both_idle() -> bool:
        room = await _room(http, c, sid, w["cleo"])
        return (
            room is not None
            and sorted(u["uid"] for u in room["burners"] if u["status"] == "IDLE") == uids
            and _links(room) == ["online", "online"]
        )

    await _eventually(both_idle, "both kiosks' drives idle in the session, linked through r1")

    browser = await connect(http, c.balancer, sid, w["cleo"])
    queued = await ask(browser, {"action": "queue", "md5": take["md5"], "count": 20})
    assert queued["status"] is True, queued

    # Eight discs burn, then the trays stay open with the last ones in.
    async def eight_burned() -> bool:
        return blanks.left == 0 and len(a.jobs) + len(b.jobs) == 8

    await _eventually(eight_burned, "eight discs burned")
    # One more blank in kiosk A, whose drive holds that burn mid-write: in flight at the kill.
    a.clock.hold_at = a.clock.ticks + 3
    a.swap()

    async def settled() -> dict[str, Any] | None:
        room = await _room(http, c, sid, w["cleo"])
        stored = await asyncio.to_thread(_counted, c.database, sid)
        queue = await asyncio.to_thread(_queued, c.database, sid)
        ok = (
            room is not None
            and not a.clock.gate.is_set()
            and room["queue"] == [{"md5": take["md5"], "count": 11}]
            and sum(_burned(room).values()) == 8
            and {u: n for u, (n, _) in stored.items()} == _burned(room)
            and queue == [(take["md5"], 11)]
        )
        return room if ok else None

    at_kill = await _eventually(settled, "8 burned, 1 burning, 11 queued, all stored")

    c.m1.proc.kill()  # SIGKILL: the host is gone, nothing is flushed
    c.m1.proc.wait(timeout=60)
    assert (await until(browser, "closing"))["code"] == 1013

    async def moved() -> bool:
        got = await api(http, c.rendezvous[-1], "GET", f"/sessions/{sid}", w["cleo"])
        return got["state"] == "live" and got["master"]["url"].endswith(m_port(c.m2))

    await _eventually(moved, "the session live on the second master")

    async def back() -> dict[str, Any] | None:
        room = await _room(http, c, sid, w["cleo"])
        return room if room is not None and _links(room) == ["online", "online"] else None

    async def resumed() -> dict[str, Any] | None:
        # The burn in flight is requeued when m2 loads the room, and taken back out once kiosk
        # A's link reports it still burning: the queue is what it was at the kill.
        room = await back()
        return room if room is not None and room["queue"] == at_kill["queue"] else None

    room = await _eventually(resumed, "a browser back in the room, both kiosks linked to m2")
    assert _burned(room) == _burned(at_kill)

    # The held burn finishes, the visitors put blanks in again: the rest of the queue runs on m2.
    blanks.left = 100
    a.clock.gate.set()
    b.swap()

    async def all_counted() -> dict[str, tuple[int, list[str]]] | None:
        stored = await asyncio.to_thread(_counted, c.database, sid)
        queue = await asyncio.to_thread(_queued, c.database, sid)
        done = sum(n for n, _ in stored.values()) == 20 and not queue
        return stored if done and len(a.jobs) + len(b.jobs) == 20 else None

    stored = await _eventually(all_counted, "all 20 discs burned and counted")
    counted = [job for _, jobs in stored.values() for job in jobs]
    assert len(counted) == 20
    assert set(counted) == {*a.jobs, *b.jobs}

    await ride_out_a_postgres_restart(c, http)
    assert await asyncio.to_thread(_counted, c.database, sid) == stored
    room = await _eventually(back, "the room and both kiosks' links after the outage")
    assert sum(_burned(room).values()) == 20
    assert room["queue"] == []
