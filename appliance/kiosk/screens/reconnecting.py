"""Shown over any screen while the agent is unreachable; the app removes it once reconnected."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

from appliance.kiosk.i18n import _


class ReconnectingScreen(ModalScreen[None]):
    AUTO_FOCUS = None

    def __init__(self, *, first: bool = False) -> None:
        super().__init__(id="reconnecting-screen")
        self.first = first

    def compose(self) -> ComposeResult:
        with Vertical(id="reconnecting"):
            text = (
                _("Connecting to the burner…") if self.first else _("Reconnecting to the burner…")
            )
            yield Label(text, id="reconnecting-text")
            yield Label(
                _("Burns in progress keep going. This takes a moment."), id="reconnecting-sub"
            )
