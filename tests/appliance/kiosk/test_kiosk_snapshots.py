"""Snapshots of every kiosk screen at 800x480 (100x30 cells), plus the image list at 1280x800.

Each app runs against the demo agent on a real socket (in a thread: `snap_compare` runs the app
on its own loop). Nothing time-based reaches the picture: the simulated drives only move when
the test advances their clock, the progress bar shows the agent's ETA instead of its own, and
no widget blinks or spins. Regenerate with `pytest --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from kiosk_helpers import LEFT, PIN, RIGHT, screen_text, wait_for
from textual.pilot import Pilot
from textual.widgets import Button

from appliance.drives.base import Phase
from appliance.kiosk import i18n
from appliance.kiosk.app import KioskApp
from appliance.kiosk.demo import DemoAgent, DemoHandler
from appliance.kiosk.screens.attract import AttractScreen
from appliance.kiosk.screens.operator import OperatorScreen
from appliance.kiosk.screens.pick_drive import PickDriveScreen
from appliance.kiosk.screens.pick_image import PickImageScreen
from appliance.kiosk.screens.pin import PinScreen
from appliance.kiosk.screens.progress import ProgressScreen
from appliance.kiosk.screens.reconnecting import ReconnectingScreen
from appliance.kiosk.screens.result import ResultScreen

SMALL = (100, 30)
LARGE = (160, 50)
Steps = Callable[[Pilot[None], DemoAgent], Awaitable[None]]
SnapCompare = Callable[..., bool]


def _shoot(
    snap_compare: SnapCompare,
    agent: DemoAgent,
    steps: Steps,
    size: Any = SMALL,
    state_dir: Path | None = None,
    language: str = "en",
) -> bool:
    agent.handler.language = language  # the agent's config sets the kiosk's language
    app = KioskApp(agent.path, pin=PIN, state_dir=state_dir)

    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.pause()
        await wait_for(
            pilot,
            lambda: (
                app.model.connected
                and isinstance(app.screen, AttractScreen)
                and i18n.language() == language
            ),
            "the kiosk to connect",
        )
        await steps(pilot, agent)
        # A tapped button stays highlighted for a moment on a timer; let that pass.
        await wait_for(
            pilot,
            lambda: not any(b.has_class("-active") for b in pilot.app.screen.query(Button)),
            "the tap highlight to fade",
        )
        await pilot.pause()

    return snap_compare(app, terminal_size=size, run_before=run_before)


async def _advance(agent: DemoAgent, seconds: float) -> None:
    async def go(h: DemoHandler) -> None:
        await h.advance(seconds)

    await asyncio.to_thread(agent.call, go)


async def _to_images(pilot: Pilot[None], agent: DemoAgent) -> None:
    await pilot.click("#start")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, PickImageScreen), "images")


async def _to_drives(pilot: Pilot[None], agent: DemoAgent) -> None:
    await _to_images(pilot, agent)
    await pilot.click("#image-1")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, PickDriveScreen), "drives")


async def _burning(pilot: Pilot[None], agent: DemoAgent) -> None:
    await _to_drives(pilot, agent)
    await pilot.click("#drive-0")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ProgressScreen), "progress")


async def _nothing(pilot: Pilot[None], agent: DemoAgent) -> None:
    return None


def test_attract(snap_compare: SnapCompare, threaded_agent: DemoAgent) -> None:
    assert _shoot(snap_compare, threaded_agent, _nothing)


def test_attract_waiting_for_acceptance(
    snap_compare: SnapCompare, threaded_agent: DemoAgent, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "enrollment-code").write_text("ABCD2345\n")
    threaded_agent.handler.link = "pending"  # before the kiosk connects: no race with the loop

    async def steps(pilot: Pilot[None], agent: DemoAgent) -> None:
        await wait_for(pilot, lambda: "ABCD-2345" in screen_text(pilot), "the code")

    assert _shoot(snap_compare, threaded_agent, steps, state_dir=state)


def test_pick_image(snap_compare: SnapCompare, threaded_agent: DemoAgent) -> None:
    assert _shoot(snap_compare, threaded_agent, _to_images)


def test_pick_image_large(snap_compare: SnapCompare, threaded_agent: DemoAgent) -> None:
    assert _shoot(snap_compare, threaded_agent, _to_images, LARGE)


def test_pick_drive_with_one_tray_open(
    snap_compare: SnapCompare, threaded_agent: DemoAgent
) -> None:
    async def steps(pilot: Pilot[None], agent: DemoAgent) -> None:
        await asyncio.to_thread(agent.call, lambda h: h.eject(RIGHT))
        await wait_for(
            pilot,
            lambda: cast(KioskApp, pilot.app).model.drives[RIGHT]["state"] == "trayopen",
            "eject",
        )
        await _to_drives(pilot, agent)

    assert _shoot(snap_compare, threaded_agent, steps)


def test_progress_writing(snap_compare: SnapCompare, threaded_agent: DemoAgent) -> None:
    async def steps(pilot: Pilot[None], agent: DemoAgent) -> None:
        await _burning(pilot, agent)
        await _advance(agent, 20.0)
        await wait_for(pilot, lambda: "Writing 31%" in screen_text(pilot), "31%")

    assert _shoot(snap_compare, threaded_agent, steps)


def test_progress_verifying(snap_compare: SnapCompare, threaded_agent: DemoAgent) -> None:
    async def steps(pilot: Pilot[None], agent: DemoAgent) -> None:
        await _burning(pilot, agent)
        await _advance(agent, 80.0)
        await wait_for(pilot, lambda: "Verifying 46%" in screen_text(pilot), "verify")

    assert _shoot(snap_compare, threaded_agent, steps)


def test_result_passed(snap_compare: SnapCompare, threaded_agent: DemoAgent) -> None:
    async def steps(pilot: Pilot[None], agent: DemoAgent) -> None:
        await _burning(pilot, agent)
        await _advance(agent, 200.0)
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ResultScreen), "result")

    assert _shoot(snap_compare, threaded_agent, steps)


async def _failed(pilot: Pilot[None], agent: DemoAgent) -> None:
    async def fail(h: DemoHandler) -> None:
        h.fail_next(LEFT, "verify-mismatch", "sector 1234 differs", phase=Phase.VERIFY)

    await asyncio.to_thread(agent.call, fail)
    await _burning(pilot, agent)
    await _advance(agent, 200.0)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ResultScreen), "result")


def test_result_failed(snap_compare: SnapCompare, threaded_agent: DemoAgent) -> None:
    assert _shoot(snap_compare, threaded_agent, _failed)


# The visitor's screens in each translated language, at the kiosk's 800x480.
@pytest.mark.parametrize("language", ["de", "es"])
@pytest.mark.parametrize(
    "steps",
    [_nothing, _to_images, _to_drives, _failed],
    ids=["attract", "pick_image", "pick_drive", "result_failed"],
)
def test_visitor_screens_in(
    snap_compare: SnapCompare, threaded_agent: DemoAgent, steps: Steps, language: str
) -> None:
    assert _shoot(snap_compare, threaded_agent, steps, language=language)
    assert i18n.missing() == set()


def test_pin_after_a_wrong_pin(snap_compare: SnapCompare, threaded_agent: DemoAgent) -> None:
    async def steps(pilot: Pilot[None], agent: DemoAgent) -> None:
        await pilot.click("#operator")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, PinScreen), "pin pad")
        for key in ("1", "1", "1", "ok"):
            await pilot.click(f"#key-{key}")
        await wait_for(pilot, lambda: "Wrong PIN" in screen_text(pilot), "wrong pin")
        await pilot.click("#key-2")
        await pilot.click("#key-4")

    assert _shoot(snap_compare, threaded_agent, steps)


def test_operator(snap_compare: SnapCompare, threaded_agent: DemoAgent) -> None:
    async def steps(pilot: Pilot[None], agent: DemoAgent) -> None:
        async def busy(h: DemoHandler) -> None:
            await h.burn(h.catalog[2]["sha256"], LEFT)
            await h.advance(5.0)
            h.set_link("offline")

        await asyncio.to_thread(agent.call, busy)
        await pilot.click("#operator")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, PinScreen), "pin pad")
        for key in PIN:
            await pilot.click(f"#key-{key}")
        await pilot.click("#key-ok")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, OperatorScreen), "operator")
        await wait_for(pilot, lambda: "offline" in screen_text(pilot), "link state")
        await wait_for(pilot, lambda: "Writing 31%" in screen_text(pilot), "progress row")

    assert _shoot(snap_compare, threaded_agent, steps)


def test_reconnecting(snap_compare: SnapCompare, threaded_agent: DemoAgent) -> None:
    async def steps(pilot: Pilot[None], agent: DemoAgent) -> None:
        await asyncio.to_thread(agent.stop)
        await wait_for(
            pilot, lambda: isinstance(pilot.app.screen, ReconnectingScreen), "the banner"
        )

    assert _shoot(snap_compare, threaded_agent, steps)
