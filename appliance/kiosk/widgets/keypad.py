"""An on-screen PIN keypad: digits, delete and OK, no physical keyboard needed."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Button, Label

from appliance.kiosk.messages import PinEntered

MAX_PIN = 12
KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "del", "0", "ok"]
LABELS = {"del": "⌫", "ok": "OK"}


class Keypad(Vertical):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.digits = ""

    def compose(self) -> ComposeResult:
        yield Label(self._masked(), id="pin-display")
        with Grid(id="keys"):
            for key in KEYS:
                yield Button(LABELS.get(key, key), id=f"key-{key}", classes="key")

    def _masked(self) -> str:
        return " ".join("●" for _ in self.digits) or "Enter PIN"

    def clear(self) -> None:
        self.digits = ""
        self.query_one("#pin-display", Label).update(self._masked())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        key = (event.button.id or "").removeprefix("key-")
        if key == "ok":
            self.post_message(PinEntered(self.digits))
            return
        if key == "del":
            self.digits = self.digits[:-1]
        elif key.isdigit() and len(self.digits) < MAX_PIN:
            self.digits += key
        self.query_one("#pin-display", Label).update(self._masked())
