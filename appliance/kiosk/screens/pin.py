"""The operator door: a PIN typed on an on-screen keypad; a wrong PIN says so and clears, and a
kiosk with no PIN configured says its operator screen is locked."""

from __future__ import annotations

import hmac

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Label

from appliance.kiosk.messages import OperatorUnlocked, PinEntered
from appliance.kiosk.widgets.keypad import Keypad

LOCKED = (
    "Locked: this kiosk has no operator PIN. Set kiosk.pin in its config "
    "(or BURNSTAND_KIOSK_PIN) to open the operator screen."
)


class PinScreen(Screen[None]):
    AUTO_FOCUS = None

    def __init__(self, pin: str) -> None:
        super().__init__(id="pin-screen")
        self._pin = pin

    def compose(self) -> ComposeResult:
        with Vertical(id="pin-box"):
            yield Label("Operator PIN", classes="screen-title")
            yield Keypad(id="keypad")
            # With no PIN configured, say so at once rather than "wrong" to every PIN typed.
            yield Label("" if self._pin else LOCKED, id="pin-error")
        with Horizontal(classes="actions"):
            yield Button("Cancel", id="cancel")

    def on_pin_entered(self, message: PinEntered) -> None:
        message.stop()
        # An empty configured PIN locks the operator screen rather than opening it to anyone.
        if self._pin and hmac.compare_digest(message.pin.encode(), self._pin.encode()):
            self.post_message(OperatorUnlocked())
            return
        self.query_one(Keypad).clear()
        self.query_one("#pin-error", Label).update("Wrong PIN — try again" if self._pin else LOCKED)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            event.stop()
            self.dismiss()
