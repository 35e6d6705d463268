"""Fixtures for the kiosk tests: a real control socket in tmp_path served by the demo agent.

Pilot tests run the agent on the test's own event loop (`agent`), so they can advance the
simulated drives' clock directly. Snapshot tests run the app with `App.run()`, which owns its
loop, so they get the same agent in a background thread (`threaded_agent`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from kiosk_helpers import Agent

from appliance.control import ControlServer
from appliance.kiosk.demo import DemoAgent, DemoHandler


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    handler = DemoHandler()
    a = Agent(handler, ControlServer(handler, tmp_path / "agent.sock"))
    await a.server.start()
    try:
        yield a
    finally:
        await a.server.close()


@pytest.fixture
def threaded_agent(tmp_path: Path) -> Iterator[DemoAgent]:
    with DemoAgent(tmp_path / "agent.sock") as a:
        yield a
