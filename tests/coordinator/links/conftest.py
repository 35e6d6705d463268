"""Fixtures for the link tests: a real coordinator on loopback with the `/link` shell mounted."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from link_helpers import CutProxy, Recorder, Signal, Transport

from coordinator.app import make_app
from coordinator.config import CoordinatorConfig
from coordinator.keys import STORE
from coordinator.links import LinkHub
from coordinator.store.catalog import add_show
from coordinator.store.people import create_admin, create_appliance


@pytest.fixture
def config(tmp_path: Path, clock: Callable[[], float]) -> CoordinatorConfig:
    # These tests mount their own LinkHub (with a recorder or their own master), not the app's.
    return CoordinatorConfig(
        data_dir=tmp_path / "data", clock=clock, expiry_check_interval=3600, serve_links=False
    )


@pytest.fixture
async def transport(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
    config: CoordinatorConfig,
    clock: Callable[[], float],
) -> AsyncIterator[Transport]:
    signal = Signal()
    recorder = Recorder(signal)
    app = make_app(config)
    hub = LinkHub(recorder, ack_interval=0.05, heartbeat=None)
    hub.register(app)
    server = await aiohttp_server(app)
    store = app[STORE]
    show: dict[str, Any] = await store.write(
        lambda c: add_show(c, clock(), "test", {"name": "Launch", "asset_root": "/srv"})
    )
    appliance = await store.write(
        lambda c: create_appliance(c, clock(), "test", show["id"], "kiosk-1")
    )
    admin = await store.write(lambda c: create_admin(c, clock(), "test", "Ada", "a@x.org"))
    proxy = CutProxy(server.port, signal)
    port = await proxy.start()
    yield Transport(
        server, hub, recorder, signal, proxy, port, store, appliance["credential"], admin
    )
    await proxy.close()
