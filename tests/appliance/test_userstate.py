"""Where `burn` keeps its journal when nobody names one (issue 24): the user's state directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance import userstate
from appliance.userstate import default_journal


def test_the_journal_goes_to_xdg_state_home_or_its_default() -> None:
    assert default_journal({"XDG_STATE_HOME": "/srv/state", "HOME": "/home/ada"}) == Path(
        "/srv/state/burnstand/journal.sqlite3"
    )
    assert default_journal({"HOME": "/home/ada"}) == Path(
        "/home/ada/.local/state/burnstand/journal.sqlite3"
    )
    # The spec says a relative XDG_STATE_HOME is invalid and is ignored.
    assert default_journal({"XDG_STATE_HOME": "state", "HOME": "/home/ada"}) == Path(
        "/home/ada/.local/state/burnstand/journal.sqlite3"
    )


def test_only_the_service_user_uses_var_lib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(userstate, "_user", lambda: ("burnstand", Path("/var/lib/burnstand")))
    assert default_journal({"XDG_STATE_HOME": "/srv/state"}) == Path(
        "/var/lib/burnstand/journal.sqlite3"
    )
