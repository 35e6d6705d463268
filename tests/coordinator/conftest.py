"""Fixtures for coordinator tests: a fake clock, a real database, a populated world.

The tests of this directory (the rendezvous store and its REST API) run once on the embedded SQLite
file and once on a real PostgreSQL server; the live-plane packages below run on SQLite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pgserver import PostgresServer
from rv_helpers import Client, FakeClock, MakeClient, World, make_world

from coordinator.app import make_app
from coordinator.config import CoordinatorConfig
from coordinator.store import Store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


ENGINES = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" in metafunc.fixturenames:
        here = Path(str(metafunc.definition.fspath)).parent == Path(__file__).parent
        sqlite_only = metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize("engine", ENGINES if here and not sqlite_only else ENGINES[:1])


@pytest.fixture(scope="session")
def pg_template(postgres_server: PostgresServer) -> str:
    """A database migrated once; each test gets a copy of it (much faster than migrating)."""
    url = postgres_server.new_database()

    async def migrate() -> None:
        store = Store(url)
        await store.open()
        await store.close()

    asyncio.run(migrate())
    return url.rsplit("/", 1)[1]


@pytest.fixture
def database(request: pytest.FixtureRequest, engine: str) -> str | None:
    """None for the SQLite file in data_dir, or the URL of a fresh PostgreSQL database."""
    if engine == "sqlite":
        return None
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database(template=request.getfixturevalue("pg_template"))


@pytest.fixture
def config(tmp_path: Path, clock: FakeClock, database: str | None) -> CoordinatorConfig:
    return CoordinatorConfig(
        data_dir=tmp_path / "data", database=database, clock=clock, expiry_check_interval=3600
    )


@pytest.fixture
def make_client(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]], config: CoordinatorConfig
) -> MakeClient:
    async def factory(**overrides: Any) -> Client:
        cfg = CoordinatorConfig(**{**config.__dict__, **overrides})
        return await aiohttp_client(make_app(cfg))

    return factory


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client()


@pytest.fixture
async def world(client: Client, clock: FakeClock) -> World:
    return await make_world(client, clock)
