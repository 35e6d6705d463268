"""PostgreSQL going away and coming back under a running coordinator.

While the server is down, health answers 503 and every request that needs the database fails at
once with a 503 problem naming the database (no hang); nothing committed before is lost, and once
the server is back the same process serves again without a restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from pgserver import PostgresServer
from rv_helpers import Client, FakeClock, bearer

from coordinator.app import make_app
from coordinator.config import CoordinatorConfig
from coordinator.keys import STORE
from coordinator.store.people import create_admin

DEADLINE = 60.0


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)  # poll interval between bounded checks
    raise AssertionError("condition not met in time")


async def test_database_down_is_503_and_the_process_recovers_when_it_returns(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    own_postgres: PostgresServer,
    tmp_path: Path,
    clock: FakeClock,
) -> None:
    config = CoordinatorConfig(
        data_dir=tmp_path / "data",
        database=own_postgres.new_database(),
        clock=clock,
        expiry_check_interval=3600,
        pool_timeout=1.0,
    )
    client = await aiohttp_client(make_app(config))
    admin = await client.app[STORE].write(lambda c: create_admin(c, clock(), "t", "A", "a@e.org"))
    made = await client.post(
        "/api/v1/shows", json={"name": "before", "asset_root": "/a"}, headers=bearer(admin)
    )
    assert made.status == 201
    health = await client.get("/api/v1/health")
    assert health.status == 200
    assert (await health.json())["database_reachable"] is True

    await asyncio.to_thread(own_postgres.stop)

    health = await client.get("/api/v1/health")
    assert health.status == 503
    body = await health.json()
    assert (body["database"], body["database_reachable"]) == ("postgresql", False)
    for method, path, payload in (
        ("GET", "/api/v1/shows", None),
        ("POST", "/api/v1/shows", {"name": "during", "asset_root": "/d"}),
    ):
        resp = await client.request(method, path, json=payload, headers=bearer(admin))
        assert resp.status == 503, (method, path)
        assert resp.content_type == "application/problem+json"
        assert "database" in (await resp.json(content_type=None))["detail"]

    await asyncio.to_thread(own_postgres.start)

    async def healthy() -> bool:
        return (await client.get("/api/v1/health")).status == 200

    await _until(healthy)
    made = await client.post(
        "/api/v1/shows", json={"name": "after", "asset_root": "/b"}, headers=bearer(admin)
    )
    assert made.status == 201
    shows = await (await client.get("/api/v1/shows", headers=bearer(admin))).json()
    # What was written before the outage is there, what was refused during it is not.
    assert sorted(s["name"] for s in shows["items"]) == ["after", "before"]
