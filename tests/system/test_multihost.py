"""The coordinator across hosts: network namespaces the test makes (db, m1, m2, r1, r2).

Host `db` runs PostgreSQL and Redis; `m1` and `m2` a session master each; `r1` and `r2` a
rendezvous node and a balancer each. Every process listens on its host's own address and reaches
the others over the test's bridge, as separate machines would. The browser connects through
`r1`'s balancer, the session's state is read back through `r2`. Then the scenario of
`test_failover`: `m1` is killed (SIGKILL), the session is live on `m2` with its queue of 20
discs, the browser is back in the room; PostgreSQL stops and starts again, and nothing dies.
The namespaces and the bridge are removed afterwards, whatever happened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import free_port, start_redis
from tests.netns import Lan, NetnsUnavailable, lan
from tests.nodes import Node, admin_token
from tests.pgserver import PostgresMissing, remove_postgres, start_postgres
from tests.system.test_failover import Cluster, failover_scenario

HOSTS = ("db", "m1", "m2", "r1", "r2")


@pytest.fixture
def net() -> Iterator[Lan]:
    try:
        with lan(HOSTS) as made:
            yield made
    except NetnsUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in started:
        node.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


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
        await failover_scenario(http, cluster, admin_token(tmp_path / "admin"))
    finally:
        redis.process.terminate()
        redis.process.wait(timeout=30)
        remove_postgres(postgres)
