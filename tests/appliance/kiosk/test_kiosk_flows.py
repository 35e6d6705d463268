"""Every kiosk flow a visitor or operator goes through, tapped with Textual's pilot against a
real control socket served by the demo agent (simulated drives on a clock the test moves)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kiosk_helpers import LEFT, PIN, RIGHT, USB, Agent, screen_text, wait_for
from textual.pilot import Pilot
from textual.widgets import Button, Input

from appliance.control import ControlError
from appliance.drives.base import Phase
from appliance.kiosk.app import KioskApp, main
from appliance.kiosk.screens.attract import AttractScreen
from appliance.kiosk.screens.operator import OperatorScreen
from appliance.kiosk.screens.pick_drive import PickDriveScreen
from appliance.kiosk.screens.pick_image import PickImageScreen
from appliance.kiosk.screens.pin import PinScreen
from appliance.kiosk.screens.progress import ProgressScreen
from appliance.kiosk.screens.reconnecting import ReconnectingScreen
from appliance.kiosk.screens.result import ResultScreen

SMALL = (100, 30)  # 800x480 at an 8x16 cell
LARGE = (160, 50)  # 1280x800


@pytest.fixture
async def kiosk(agent: Agent) -> AsyncIterator[tuple[KioskApp, Pilot[None]]]:
    app = KioskApp(agent.path, pin=PIN)
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(
            pilot,
            lambda: app.model.connected and isinstance(app.screen, AttractScreen),
            "the kiosk to connect",
        )
        yield app, pilot


async def _pick(pilot: Pilot[None], image_index: int, drive_button: str) -> None:
    await pilot.click("#start")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, PickImageScreen), "image list")
    await pilot.click(f"#image-{image_index}")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, PickDriveScreen), "drive list")
    await pilot.click(drive_button)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ProgressScreen), "progress")


async def test_visitor_burns_a_disc_and_is_told_to_take_it(
    kiosk: tuple[KioskApp, Pilot[None]], agent: Agent
) -> None:
    app, pilot = kiosk
    await _pick(pilot, 1, "#drive-0")  # Server image on the Left burner
    left = next(d for d in agent.handler.drive_list if d.uid == LEFT)
    assert left.job is not None
    assert left.job.image["name"] == "Ubuntu 26.04 Server amd64"

    await agent.handler.advance(20.0)  # 800 MB of 2.6 GB at 40 MB/s
    await wait_for(pilot, lambda: "Writing 31%" in screen_text(pilot), "write progress")
    text = screen_text(pilot)
    assert "40.0 MB/s" in text
    assert "0:45 left" in text
    assert "Left burner  (your disc)" in text

    await agent.handler.advance(70.0)  # the write ends at 65 s, then read-back at 80 MB/s
    await wait_for(pilot, lambda: "Verifying" in screen_text(pilot), "verify phase")

    await agent.handler.advance(40.0)
    await wait_for(pilot, lambda: isinstance(app.screen, ResultScreen), "the result")
    text = screen_text(pilot)
    assert "Your disc is ready" in text
    assert "Take your disc from the Left burner." in text

    await pilot.click("#done")
    await wait_for(pilot, lambda: isinstance(app.screen, AttractScreen), "back to attract")
    assert app.model.burn is None


async def test_auto_pick_uses_the_smallest_free_medium_that_fits(
    kiosk: tuple[KioskApp, Pilot[None]], agent: Agent
) -> None:
    app, pilot = kiosk
    await _pick(pilot, 2, "#auto")  # a CD-sized image
    assert app.model.burn is not None
    assert app.model.burn.drive == LEFT
    assert "Left burner  (your disc)" in screen_text(pilot)


async def test_a_failed_verify_says_why_and_offers_another_disc(
    kiosk: tuple[KioskApp, Pilot[None]], agent: Agent
) -> None:
    app, pilot = kiosk
    agent.handler.fail_next(
        RIGHT, "verify-mismatch", "sector 1234 differs", phase=Phase.VERIFY, at_percent=40
    )
    await _pick(pilot, 0, "#drive-0")  # Desktop image: Right burner is the first that fits
    assert app.model.burn is not None
    assert app.model.burn.drive == RIGHT
    await agent.handler.advance(300.0)
    await wait_for(pilot, lambda: isinstance(app.screen, ResultScreen), "the result")
    text = screen_text(pilot)
    assert "That didn't work" in text
    assert "The disc did not read back correctly. Take another blank and try again." in text
    assert "Try another disc" in text
    # What the tool said is one tap away, not in the visitor's face.
    assert "sector 1234 differs" not in text
    await pilot.click("#details")
    await wait_for(pilot, lambda: "sector 1234 differs" in screen_text(pilot), "the tool detail")

    agent.handler.load_media(RIGHT)
    await pilot.click("#retry")
    await wait_for(pilot, lambda: isinstance(app.screen, PickDriveScreen), "drive list again")
    screen = app.screen
    assert isinstance(screen, PickDriveScreen)
    assert screen.image["name"] == "Ubuntu 26.04 Desktop amd64"
    await pilot.click("#back")  # back goes to the image list, not out of the flow
    await wait_for(pilot, lambda: isinstance(app.screen, PickImageScreen), "image list")


async def test_busy_and_open_burners_cannot_be_picked_and_refusals_are_shown(
    kiosk: tuple[KioskApp, Pilot[None]], agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, pilot = kiosk
    await agent.handler.eject(LEFT)
    await pilot.click("#start")
    await wait_for(pilot, lambda: isinstance(app.screen, PickImageScreen), "image list")
    await pilot.click("#image-1")
    await wait_for(pilot, lambda: isinstance(app.screen, PickDriveScreen), "drive list")
    buttons = {str(b.label): b for b in app.screen.query(Button)}
    assert buttons["Left burner — tray open"].disabled
    assert not buttons["Right burner — ready"].disabled

    await agent.handler.burn(agent.handler.catalog[1]["sha256"], RIGHT)  # someone else
    await wait_for(
        pilot,
        lambda: app.screen.query_one("#drive-1", Button).disabled,
        "the busy burner to grey out",
    )
    assert str(app.screen.query_one("#drive-1", Button).label) == "Right burner — burning"

    async def refuse(image: str, drive: str) -> None:
        raise ControlError("no-drive", "No free burner can take this image right now")

    monkeypatch.setattr(agent.handler, "burn", refuse)
    await pilot.click("#auto")
    await wait_for(
        pilot,
        lambda: "Sorry — No free burner can take this image right now" in screen_text(pilot),
        "the refusal",
    )
    assert isinstance(app.screen, PickDriveScreen)
    assert app.model.burn is None


async def test_a_kiosk_without_a_pin_says_its_operator_screen_is_locked(agent: Agent) -> None:
    app = KioskApp(agent.path, pin="")
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, AttractScreen), "the kiosk")
        await pilot.click("#operator")
        await wait_for(pilot, lambda: isinstance(app.screen, PinScreen), "the PIN pad")
        assert "Locked: this kiosk has no operator PIN" in screen_text(pilot)
        for key in "1234":
            await pilot.click(f"#key-{key}")
        await pilot.click("#key-ok")
        await wait_for(pilot, lambda: "Enter PIN" in screen_text(pilot), "the cleared pad")
        assert "Wrong PIN" not in screen_text(pilot)
        assert "Locked: this kiosk has no operator PIN" in screen_text(pilot)
        assert isinstance(app.screen, PinScreen)


async def test_operator_pin_wrong_then_right_then_operator_actions(
    kiosk: tuple[KioskApp, Pilot[None]], agent: Agent
) -> None:
    app, pilot = kiosk
    await pilot.click("#operator")
    await wait_for(pilot, lambda: isinstance(app.screen, PinScreen), "the PIN pad")
    for key in "1357":
        await pilot.click(f"#key-{key}")
    await pilot.click("#key-ok")
    await wait_for(pilot, lambda: "Wrong PIN" in screen_text(pilot), "the wrong-PIN notice")
    assert isinstance(app.screen, PinScreen)
    assert "Enter PIN" in screen_text(pilot)  # cleared for another try

    for key in "24681":
        await pilot.click(f"#key-{key}")
    await pilot.click("#key-del")
    await pilot.click("#key-ok")
    await wait_for(pilot, lambda: isinstance(app.screen, OperatorScreen), "the operator screen")
    text = screen_text(pilot)
    assert "Coordinator: online" in text
    assert "Cache: 9.2 GB of 32.0 GB" in text

    agent.handler.set_link("offline")
    await wait_for(pilot, lambda: "offline — burning from the cache" in screen_text(pilot), "link")

    await agent.handler.burn(agent.handler.catalog[2]["sha256"], USB)
    cancel = app.screen.query_one("#row-2 .cancel", Button)
    await wait_for(pilot, lambda: not cancel.disabled, "cancel to be enabled")
    await pilot.click("#row-2 .cancel")
    await wait_for(pilot, lambda: agent.handler.drive_list[2].job is None, "the cancel")
    last = agent.handler.drive_list[2].last_result
    assert last is not None
    assert last["reason"] == "cancelled"

    app.screen.query_one("#row-0 Input", Input).value = "Front burner"
    await pilot.click("#row-0 .save")
    await wait_for(pilot, lambda: agent.handler.drive_list[0].name == "Front burner", "rename")
    await wait_for(pilot, lambda: "Renamed to Front burner" in screen_text(pilot), "report")

    await pilot.click("#eject-all")
    await wait_for(pilot, lambda: "Ejected 3 drives" in screen_text(pilot), "eject all")
    assert {d.state.value for d in agent.handler.drive_list} == {"trayopen"}

    await pilot.click("#close")
    await wait_for(pilot, lambda: isinstance(app.screen, AttractScreen), "back to attract")
    assert "0 of 3 burners ready" in screen_text(pilot)


async def test_the_kiosk_shows_reconnecting_while_the_agent_is_gone_and_comes_back(
    kiosk: tuple[KioskApp, Pilot[None]], agent: Agent
) -> None:
    app, pilot = kiosk
    await agent.stop()
    # The banner's words, not only its screen: a screen just pushed has not composed its labels.
    await wait_for(
        pilot,
        lambda: (
            isinstance(app.screen, ReconnectingScreen)
            and "Reconnecting to the burner…" in screen_text(pilot)
        ),
        "the banner",
    )
    assert not app.model.connected

    await agent.handler.eject(LEFT)  # the world changed while we were away
    await agent.restart()
    await wait_for(pilot, lambda: isinstance(app.screen, AttractScreen), "the kiosk to recover")
    assert app.model.connected
    assert app.model.drives[LEFT]["state"] == "trayopen"
    assert "2 of 3 burners ready" in screen_text(pilot)


async def test_a_result_that_arrived_while_disconnected_is_still_shown(
    kiosk: tuple[KioskApp, Pilot[None]], agent: Agent
) -> None:
    app, pilot = kiosk
    await _pick(pilot, 2, "#drive-0")
    await agent.stop()
    await wait_for(pilot, lambda: isinstance(app.screen, ReconnectingScreen), "the banner")
    await agent.handler.advance(60.0)  # the burn finishes while the kiosk cannot hear it
    await agent.restart()
    await wait_for(pilot, lambda: isinstance(app.screen, ResultScreen), "the missed result")
    assert "Your disc is ready" in screen_text(pilot)


async def test_the_large_screen_shows_the_same_flow(agent: Agent) -> None:
    app = KioskApp(agent.path, pin=PIN)
    async with app.run_test(size=LARGE) as pilot:
        await wait_for(pilot, lambda: app.model.connected, "the kiosk to connect")
        await wait_for(pilot, lambda: isinstance(app.screen, AttractScreen), "attract")
        await _pick(pilot, 1, "#auto")
        await agent.handler.advance(300.0)
        await wait_for(pilot, lambda: isinstance(app.screen, ResultScreen), "the result")
        start = app.screen.query_one("#done", Button)
        assert start.region.height >= 3  # still a thumb-sized target


def test_main_rejects_a_bad_config_with_the_key_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "kiosk.toml"
    conf.write_text('[kiosk]\npin = "12ab"\n')
    assert main(["--config", str(conf)]) == 2
    assert "kiosk.pin must be digits only" in capsys.readouterr().err
    conf.write_text("[kiosk\n")
    assert main(["--config", str(conf)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err
