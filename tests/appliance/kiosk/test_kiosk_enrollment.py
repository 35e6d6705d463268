"""A kiosk that is not enrolled yet shows its first-boot code, and every link state has words.

The show admin accepts a new kiosk in the dashboard by matching the code listed there with the
one on the kiosk's screen, so the attract screen must show it while the agent reports
`connecting` or `pending`, say so when the enrollment was refused, and drop it once the agent
holds a credential. The code comes from the agent's state directory (a real file in tmp_path),
the link state from the demo agent over a real control socket.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kiosk_helpers import PIN, Agent, screen_text, wait_for
from textual.pilot import Pilot
from textual.widgets import Label

from appliance import agent as agent_module
from appliance import link as link_module
from appliance.kiosk.app import KioskApp
from appliance.kiosk.enrollment import enrollment_notice, read_enrollment_code
from appliance.kiosk.screens.attract import AttractScreen
from appliance.kiosk.screens.operator import LINK_NAMES, status_text

SMALL = (100, 30)


def _agent_link_states() -> set[str]:
    """Every state the agent can report as `link`: its own enum and the link module's."""
    states: set[str] = set()
    for enum_type in (agent_module.LinkState, link_module.LinkState):
        assert issubclass(enum_type, enum.Enum)
        states.update(str(member.value) for member in enum_type)
    return states


def test_every_link_state_the_agent_reports_has_a_human_label() -> None:
    states = _agent_link_states()
    assert {"pending", "rejected"} <= states  # the enrollment states are among them
    missing = sorted(states - set(LINK_NAMES))
    assert not missing, f"operator screen has no label for link state(s) {missing}"


@pytest.mark.parametrize("state", sorted(_agent_link_states()))
def test_operator_status_line_uses_the_label(state: str) -> None:
    status = {
        "version": "1.0",
        "link": state,
        "coordinator": "http://127.0.0.1:8080",
        "cache_used": 0,
        "cache_max": 20 * 1000**3,
        "drives": 0,
    }
    text = status_text(status)  # type: ignore[arg-type]
    assert text.startswith(f"Coordinator: {LINK_NAMES[state]}   ·")


def test_rejected_is_explained_not_shown_raw() -> None:
    assert "rejected" not in LINK_NAMES["rejected"]
    assert "new code" in LINK_NAMES["rejected"]


def _state_dir(tmp_path: Path, code: str | bytes | None = "abcd2345\n") -> Path:
    state = tmp_path / "state"
    state.mkdir()
    if isinstance(code, bytes):
        (state / "enrollment-code").write_bytes(code)
    elif code is not None:
        (state / "enrollment-code").write_text(code)
    return state


def test_code_is_read_as_the_screen_shows_it(tmp_path: Path) -> None:
    assert read_enrollment_code(_state_dir(tmp_path)) == "ABCD-2345"


def test_no_code_before_first_boot_made_one(tmp_path: Path) -> None:
    assert read_enrollment_code(_state_dir(tmp_path, None)) is None


def test_no_code_once_the_agent_holds_a_credential(tmp_path: Path) -> None:
    state = _state_dir(tmp_path)
    (state / "credential").write_text("appliance-credential\n")
    assert read_enrollment_code(state) is None


@pytest.mark.parametrize(
    "content",
    [b"ABCD0000\n", b"short\n", b"\xff\xfe\x00garbage", b""],
    ids=["look-alike digits", "too short", "not utf-8", "empty"],
)
def test_a_bad_code_file_shows_nothing_and_is_logged(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    state = _state_dir(tmp_path, content)
    assert read_enrollment_code(state) is None
    assert any("enrollment code" in r.getMessage() for r in caplog.records)


def test_an_unreadable_code_path_shows_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = _state_dir(tmp_path, None)
    (state / "enrollment-code").mkdir()  # a directory where the file should be
    assert read_enrollment_code(state) is None
    assert any("cannot read the enrollment code" in r.getMessage() for r in caplog.records)


def test_notice_follows_the_enrollment() -> None:
    assert enrollment_notice("pending", None) is None
    assert enrollment_notice("online", "ABCD-2345") is None
    connecting = enrollment_notice("connecting", "ABCD-2345")
    assert connecting is not None
    assert "ABCD-2345" in connecting
    pending = enrollment_notice("pending", "ABCD-2345")
    assert pending is not None
    assert "ABCD-2345" in pending
    assert "Pending kiosks" in pending
    rejected = enrollment_notice("rejected", "ABCD-2345")
    assert rejected is not None
    assert "refused" in rejected


@pytest.fixture
async def enrolling(
    agent: Agent, tmp_path: Path
) -> AsyncIterator[tuple[KioskApp, Pilot[None], Path]]:
    state = _state_dir(tmp_path)
    agent.handler.link = "connecting"
    app = KioskApp(agent.path, pin=PIN, state_dir=state)
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(
            pilot,
            lambda: app.model.connected and isinstance(app.screen, AttractScreen),
            "the kiosk to connect",
        )
        yield app, pilot, state


def _notice(app: KioskApp) -> Label:
    return app.screen.query_one("#enrollment", Label)


async def test_attract_screen_shows_the_code_until_the_kiosk_is_accepted(
    enrolling: tuple[KioskApp, Pilot[None], Path], agent: Agent
) -> None:
    app, pilot, state = enrolling
    notice = _notice(app)
    assert notice.display
    assert "Not enrolled yet · enrollment code ABCD-2345" in screen_text(pilot)

    agent.handler.set_link("pending")
    await wait_for(pilot, lambda: "Waiting for acceptance" in screen_text(pilot), "pending")
    assert "enrollment code ABCD-2345" in screen_text(pilot)
    assert "Pending kiosks" in screen_text(pilot)

    # Accepted: the agent saves its credential, then the link comes up.
    (state / "credential").write_text("appliance-credential\n")
    agent.handler.set_link("online")
    await wait_for(pilot, lambda: not notice.display, "the code to disappear")
    assert "ABCD-2345" not in screen_text(pilot)
    assert app.model.enrollment_code is None


async def test_attract_screen_says_when_enrollment_was_refused(
    enrolling: tuple[KioskApp, Pilot[None], Path], agent: Agent
) -> None:
    _app, pilot, _state = enrolling
    agent.handler.set_link("rejected")
    await wait_for(pilot, lambda: "was refused" in screen_text(pilot), "the refusal")
    assert "Enrollment ABCD-2345 was refused" in screen_text(pilot)


async def test_a_new_code_replaces_a_refused_one(
    enrolling: tuple[KioskApp, Pilot[None], Path], agent: Agent
) -> None:
    _app, pilot, state = enrolling
    agent.handler.set_link("rejected")
    await wait_for(pilot, lambda: "was refused" in screen_text(pilot), "the refusal")
    # The operator removes the spent code; first boot's script makes a new one; the agent
    # restarts and asks again.
    (state / "enrollment-code").write_text("WXYZ6789\n")
    agent.handler.set_link("pending")
    await wait_for(pilot, lambda: "WXYZ-6789" in screen_text(pilot), "the new code")
    assert "ABCD-2345" not in screen_text(pilot)


async def test_kiosk_without_a_state_dir_never_shows_a_code(agent: Agent, tmp_path: Path) -> None:
    _state_dir(tmp_path)
    agent.handler.link = "pending"
    app = KioskApp(agent.path, pin=PIN)
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(pilot, lambda: app.model.connected, "the kiosk to connect")
        assert not _notice(app).display
        assert "ABCD" not in screen_text(pilot)
