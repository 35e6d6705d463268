"""Helpers shared by the kiosk tests: the demo agent on a socket, drive uids, waiting on the UI."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Button, Label

from appliance.control import ControlServer
from appliance.kiosk.demo import DemoHandler

LEFT = "a1" * 16
RIGHT = "b2" * 16
USB = "c3" * 16
PIN = "2468"


@dataclass
class Agent:
    handler: DemoHandler
    server: ControlServer

    @property
    def path(self) -> Path:
        return self.server.path

    async def stop(self) -> None:
        await self.server.close()

    async def restart(self) -> None:
        self.server = ControlServer(self.handler, self.server.path)
        await self.server.start()


Predicate = Callable[[], bool]


async def wait_for(
    pilot: Pilot[None], predicate: Predicate, what: str, seconds: float = 30.0
) -> None:
    """Let the app run until `predicate()` holds and the current screen has composed and
    mounted its widgets (a screen just pushed has no labels yet); fail after `seconds` (or
    10,000 turns).

    Bounded in time, not only in turns: on a loaded machine 500 turns of 10 ms ran out while
    the kiosk was still in its reconnect back-off (up to 2 s) after an agent restart."""
    deadline = time.monotonic() + seconds
    for _ in range(10_000):
        if predicate() and pilot.app.screen.is_mounted:
            return
        if time.monotonic() > deadline:
            break
        await pilot.pause(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def screen_text(pilot: Pilot[None]) -> str:
    """Every label and button caption on the current screen, one per line."""
    parts = [str(w.render()) for w in pilot.app.screen.query(Label)]
    parts += [str(b.label) for b in pilot.app.screen.query(Button)]
    return "\n".join(parts)
