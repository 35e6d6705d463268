"""The agent's link client against a real coordinator `/link` on loopback: what the kiosk and the
link LED see when the credential is refused, and the backpressure bound on unsent reports."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from appliance.link import AgentLink, LinkState
from coordinator.app import make_app
from coordinator.config import CoordinatorConfig
from coordinator.links import Appliance, Link, LinkHub
from wire import link as wl

WAIT = 10.0


class _Quiet:
    """A link handler that accepts every link and ignores what it carries."""

    async def admit(self, appliance: Appliance) -> str | None:
        return None

    async def opened(self, link: Link, *, resumed: bool) -> None:
        return None

    async def received(self, link: Link, payload: wl.JsonValue) -> None:
        return None

    async def suspended(self, link: Link) -> None:
        return None

    async def closed(self, link: Link, *, formal: bool, unacked: tuple[wl.JsonValue, ...]) -> None:
        return None


async def _nothing(payload: dict[str, Any]) -> None:
    return None


async def test_refused_credential_is_offline_logged_and_retried_with_backoff(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(CoordinatorConfig(data_dir=tmp_path / "data", expiry_check_interval=3600))
    LinkHub(_Quiet(), heartbeat=None).register(app)
    server = await aiohttp_server(app)
    states: list[LinkState] = []
    offline_three_times = asyncio.Event()

    def on_state(state: LinkState) -> None:
        states.append(state)
        if states.count(LinkState.OFFLINE) >= 3:
            offline_three_times.set()

    link = AgentLink(
        f"ws://127.0.0.1:{server.port}/link",
        "revoked-or-never-issued",
        on_message=_nothing,
        on_state=on_state,
        backoff_initial=0.005,
        backoff_max=0.01,
    )
    with caplog.at_level(logging.ERROR, logger="appliance.link"):
        await link.start()
        try:
            async with asyncio.timeout(WAIT):
                await offline_three_times.wait()
        finally:
            await link.close()
    assert LinkState.ONLINE not in states
    assert states[:2] == [LinkState.CONNECTING, LinkState.OFFLINE]
    refusals = [r for r in caplog.records if "refused the appliance credential" in r.getMessage()]
    assert len(refusals) >= 3
    assert all(getattr(r, "status", None) == 401 for r in refusals)
    assert all("revoked-or-never-issued" not in r.getMessage() for r in caplog.records)


async def test_reports_wait_offline_up_to_the_bound_then_send_refuses(
    unused_port: int,
) -> None:
    # Nothing listens on the port: the coordinator is unreachable, reports queue up.
    link = AgentLink(
        f"ws://127.0.0.1:{unused_port}/link",
        "credential",
        on_message=_nothing,
        backoff_initial=0.01,
        backoff_max=0.05,
    )
    await link.start()
    try:
        for i in range(wl.DEFAULT_MAX_UNACKED):
            await link.send({"type": "status", "n": i})
        assert link.unacked == wl.DEFAULT_MAX_UNACKED
        with pytest.raises(wl.UnackedOverflow):
            await link.send({"type": "status", "n": "one too many"})
        assert link.unacked == wl.DEFAULT_MAX_UNACKED
        assert link.state is not LinkState.ONLINE
    finally:
        await link.close()
    with pytest.raises(wl.LinkClosed):
        await link.send({"type": "status"})
