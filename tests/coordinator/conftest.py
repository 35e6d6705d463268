"""Fixtures for coordinator tests: a fake clock, a real SQLite file, a populated world."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from rv_helpers import Client, FakeClock, MakeClient, World, make_world

from coordinator.app import make_app
from coordinator.config import CoordinatorConfig


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config(tmp_path: Path, clock: FakeClock) -> CoordinatorConfig:
    return CoordinatorConfig(data_dir=tmp_path / "data", clock=clock, expiry_check_interval=3600)


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
