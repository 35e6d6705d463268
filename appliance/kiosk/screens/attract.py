"""The attract screen: what a passer-by sees; one huge "Tap to start" and a small operator door."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Label

from appliance.kiosk.messages import OperatorRequested, VisitorArrived
from appliance.kiosk.model import KioskModel


def _summary(model: KioskModel) -> str:
    if not model.drives:
        return "Waiting for the burners…"
    ready = sum(1 for d in model.drives.values() if d["state"] == "idle" and d["job"] is None)
    busy = len(model.busy_drives())
    parts = [f"{ready} of {len(model.drives)} burners ready"]
    if busy:
        parts.append(f"{busy} burning")
    return " · ".join(parts)


class AttractScreen(Screen[None]):
    AUTO_FOCUS = None

    def __init__(self, model: KioskModel) -> None:
        super().__init__(id="attract-screen")
        self.model = model

    def compose(self) -> ComposeResult:
        with Vertical(id="attract"):
            yield Label("Burnstand", id="brand")
            yield Label(
                "Linux on a disc or USB stick — burned and verified while you wait.", id="tagline"
            )
            yield Button("Tap to start", id="start", variant="primary")
            yield Label(_summary(self.model), id="summary")
        with Horizontal(id="corner"):
            yield Button("Operator", id="operator", classes="small")

    def on_mount(self) -> None:
        self.watch(self.app, "revision", self._sync, init=False)

    def _sync(self) -> None:
        self.query_one("#summary", Label).update(_summary(self.model))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "start":
            self.post_message(VisitorArrived())
        elif event.button.id == "operator":
            self.post_message(OperatorRequested())
