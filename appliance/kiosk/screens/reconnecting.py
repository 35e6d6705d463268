"""Shown over any screen while the agent is unreachable; the app removes it once reconnected."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label


class ReconnectingScreen(ModalScreen[None]):
    AUTO_FOCUS = None

    def __init__(self, *, first: bool = False) -> None:
        super().__init__(id="reconnecting-screen")
        self.first = first

    def compose(self) -> ComposeResult:
        with Vertical(id="reconnecting"):
            text = "Connecting to the burner…" if self.first else "Reconnecting to the burner…"
            yield Label(text, id="reconnecting-text")
            yield Label("Burns in progress keep going. This takes a moment.", id="reconnecting-sub")
