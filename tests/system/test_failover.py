"""A lost session master's sessions resume on another by themselves (state in PostgreSQL).

Real processes on loopback: a rendezvous node, two masters and a balancer share one PostgreSQL
database and one Redis. A session placed on the first master has a queue; the master is killed
with SIGKILL (its host is gone). Within the bounded silence the pool moves the session to the
second master, a browser that reconnects through the balancer is back in the room, and the
queue is what it was. Then PostgreSQL stops until every node reports it unreachable, and starts
again: no process dies, and the session and its queue are still there. Waits are for REST
answers, frames and rows, each bounded.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from coordinator.store import pg
from tests.conftest import RedisServer, free_port
from tests.nodes import WAIT, Node, admin_token, api, appliance_token, ask, until
from tests.pgserver import PostgresServer
from tests.system.test_scaleout import MD5, connect, health_until, m_port, new_session, world

FAILOVER_DEADLINE = 60.0  # bounded wait; the design moves sessions within about 12 s


def _queued(url: str, session_id: str) -> list[tuple[str, int]]:
    conn = pg.connect(url)
    try:
        rows = conn.execute(
            "SELECT md5, count FROM queue WHERE session_id = ? ORDER BY position", (session_id,)
        ).fetchall()
        return [(str(r[0]), int(r[1])) for r in rows]
    finally:
        conn.raw.close()


async def _eventually(check: Any, what: str) -> Any:
    deadline = time.monotonic() + FAILOVER_DEADLINE
    while time.monotonic() < deadline:
        got = await check()
        if got:
            return got
        await asyncio.sleep(0.2)  # poll interval between bounded checks
    raise AssertionError(f"never: {what}")


async def ride_out_a_postgres_restart(c: Cluster, http: aiohttp.ClientSession) -> None:
    """PostgreSQL goes away: every node says so (503), none dies; then it comes back."""
    await asyncio.to_thread(c.postgres.stop)
    alive = [*c.rendezvous, c.m2, c.balancer]

    async def all_report(reachable: bool) -> bool:
        reports = [await node.health(http) for node in alive]
        return all(r["database_reachable"] is reachable for r in reports)

    await _eventually(lambda: all_report(False), "every node reporting the database unreachable")
    await asyncio.to_thread(c.postgres.start)
    await _eventually(lambda: all_report(True), "every node reporting the database back")
    assert [node.proc.poll() for node in alive] == [None] * len(alive)


@dataclass
class Cluster:
    """The processes of one deployment; the first rendezvous node is where the test writes."""

    postgres: PostgresServer
    database: str
    rendezvous: list[Node]
    balancer: Node
    m1: Node
    m2: Node


async def failover_scenario(http: aiohttp.ClientSession, c: Cluster, admin: str) -> None:
    """A session with a queue of 20 discs on m1; m1 is killed; the session is live on m2 (as
    every rendezvous node reports), a browser is back in the room through the balancer with the
    queue intact; PostgreSQL stops and starts again and nothing dies or is lost."""
    first, last = c.rendezvous[0], c.rendezvous[-1]
    w = await world(http, first, admin)
    session = await new_session(http, first, w)
    sid = session["id"]
    assert session["master"]["url"].endswith(m_port(c.m1))  # least loaded, then first added
    await health_until(http, c.balancer, "masters", 2)

    client = await connect(http, c.balancer, sid, w["cleo"])
    assert (await ask(client, {"action": "queue", "md5": MD5, "count": 20}))["status"] is True

    async def stored() -> bool:
        return await asyncio.to_thread(_queued, c.database, sid) == [(MD5, 20)]

    await _eventually(stored, "the queue written to the shared database")

    c.m1.proc.kill()  # SIGKILL: the host is gone, nothing is flushed
    c.m1.proc.wait(timeout=WAIT)
    assert (await until(client, "closing"))["code"] == 1013

    async def moved() -> bool:
        got = await api(http, last, "GET", f"/sessions/{sid}", w["cleo"])
        return got["state"] == "live" and got["master"]["url"].endswith(m_port(c.m2))

    await _eventually(moved, "the session live on the second master")

    async def back_in_the_room() -> dict[str, Any] | None:
        again = await connect(http, c.balancer, sid, w["cleo"])
        try:
            snap = await ask(again, {"action": "snapshot"})
        except AssertionError:
            return None  # refused while the balancer catches up: try again
        finally:
            await again.close()
        return snap

    snap = await _eventually(back_in_the_room, "a browser back in the room")
    assert snap["result"]["queue"] == [{"md5": MD5, "count": 20}]

    await ride_out_a_postgres_restart(c, http)
    for node in c.rendezvous:
        got = await api(http, node, "GET", f"/sessions/{sid}", w["cleo"])
        assert (got["state"], got["master"]["url"].endswith(m_port(c.m2))) == ("live", True)
    snap = await _eventually(back_in_the_room, "a browser in the room after the outage")
    assert snap["result"]["queue"] == [{"md5": MD5, "count": 20}]


async def _rendezvous_and_two_masters(
    tmp_path: Path, redis_url: str, nodes: list[Node], http: aiohttp.ClientSession
) -> tuple[Path, list[str], Node, Node, Node]:
    """A rendezvous node and masters m1, m2 on the database BURNSTAND_DATABASE names, sharing
    Redis; returns the data folder, the Redis options, the rendezvous node and both masters."""
    data = tmp_path / "data"
    redis = ["--redis", redis_url]
    rendezvous = Node(data, "--role", "rendezvous", *redis)
    nodes.append(rendezvous)
    assert (await rendezvous.health(http))["database"] == "postgresql"
    masters = []
    for name in ("m1", "m2"):
        m = Node(
            data, "--role", "master", "--master-port", str(free_port()),
            "--master-dir", str(tmp_path / name), *redis,
        )  # fmt: skip
        nodes.append(m)
        masters.append(m)
        await m.health(http)
    return data, redis, rendezvous, masters[0], masters[1]


async def test_killed_masters_session_resumes_on_the_other_with_its_queue(
    tmp_path: Path,
    redis_server: RedisServer,
    own_postgres: PostgresServer,
    nodes: list[Node],
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = own_postgres.new_database()
    monkeypatch.setenv("BURNSTAND_DATABASE", database)  # every node and the CLI find it here
    data, redis, rendezvous, m1, m2 = await _rendezvous_and_two_masters(
        tmp_path, redis_server.url, nodes, http
    )
    balancer = Node(data, "--role", "balancer", *redis)
    nodes.append(balancer)
    await balancer.health(http)
    cluster = Cluster(own_postgres, database, [rendezvous], balancer, m1, m2)
    await failover_scenario(http, cluster, admin_token(data))


async def _link_status(http: aiohttp.ClientSession, node: Node, kiosk: str, sid: str | None) -> int:
    """Open a kiosk's `/link` on `node` as the agent does; 101 when upgraded, else the refusal."""
    params = {"session": sid} if sid else None
    headers = {"Authorization": f"Bearer {kiosk}"}
    try:
        ws = await http.ws_connect(node.url + "/link", headers=headers, params=params)
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    await ws.close()
    return 101


async def test_a_kiosk_at_another_masters_own_url_is_refused_not_given_a_second_room(
    tmp_path: Path,
    redis_server: RedisServer,
    own_postgres: PostgresServer,
    nodes: list[Node],
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two masters on one PostgreSQL database; a kiosk configured with one master's own URL (not
    a balancer's) asks for a session the database places on the other. The master it reached
    refuses the link before the upgrade (421, naming where the session runs) instead of loading
    a room of its own that would count the kiosk's results beside the owner's."""
    monkeypatch.setenv("BURNSTAND_DATABASE", own_postgres.new_database())
    data, _, rendezvous, m1, m2 = await _rendezvous_and_two_masters(
        tmp_path, redis_server.url, nodes, http
    )
    w = await world(http, rendezvous, await asyncio.to_thread(admin_token, data))
    sid = (await new_session(http, rendezvous, w))["id"]
    placed = (await api(http, rendezvous, "GET", f"/sessions/{sid}", w["cleo"]))["master"]["url"]
    owner, other = (m1, m2) if placed.endswith(m_port(m1)) else (m2, m1)
    kiosk = await asyncio.to_thread(appliance_token, data, w["show"], "kiosk-1")

    # Asked for by id, or picked as the show's newest live session: refused on the other ...
    assert await _link_status(http, other, kiosk, sid) == 421
    assert await _link_status(http, other, kiosk, None) == 421
    async with http.get(
        other.url + "/link", headers={"Authorization": f"Bearer {kiosk}"}, params={"session": sid}
    ) as resp:
        detail = (await resp.json(content_type=None))["detail"]
    assert m_port(owner) in detail
    assert "balancer" in detail
    # ... and linked on the master that runs it.
    assert await _link_status(http, owner, kiosk, sid) == 101
