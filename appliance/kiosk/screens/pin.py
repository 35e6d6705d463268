"""The operator door: a PIN typed on an on-screen keypad; a wrong PIN says so and clears, five
wrong ones lock the keypad for a while (`appliance.kiosk.pinlock`), and a kiosk with no PIN
configured says its operator screen is locked."""

from __future__ import annotations

import hmac

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Label

from appliance.kiosk.i18n import N_, _
from appliance.kiosk.messages import OperatorUnlocked, PinEntered
from appliance.kiosk.pinlock import PinLock
from appliance.kiosk.widgets.keypad import Keypad

LOCKED = N_(
    "Locked: this kiosk has no operator PIN. Set kiosk.pin in its config "
    "(or BURNSTAND_KIOSK_PIN) to open the operator screen."
)


class PinScreen(Screen[None]):
    AUTO_FOCUS = None

    def __init__(self, pin: str, lock: PinLock | None = None) -> None:
        super().__init__(id="pin-screen")
        self._pin = pin
        self._lock = lock if lock is not None else PinLock()

    def compose(self) -> ComposeResult:
        with Vertical(id="pin-box"):
            yield Label(_("Operator PIN"), classes="screen-title")
            yield Keypad(id="keypad")
            # With no PIN configured, say so at once rather than "wrong" to every PIN typed.
            yield Label("" if self._pin else _(LOCKED), id="pin-error")
        with Horizontal(classes="actions"):
            yield Button(_("Cancel"), id="cancel")

    def on_pin_entered(self, message: PinEntered) -> None:
        message.stop()
        self.query_one(Keypad).clear()
        error = self.query_one("#pin-error", Label)
        wait = self._lock.wait()
        if wait:  # not even compared: a right PIN inside a lock tells nothing
            error.update(_("Too many wrong PINs — locked for {seconds} s").format(seconds=wait))
            return
        # An empty configured PIN locks the operator screen rather than opening it to anyone.
        if self._pin and hmac.compare_digest(message.pin.encode(), self._pin.encode()):
            self._lock.unlocked()
            self.post_message(OperatorUnlocked())
            return
        if not self._pin:
            error.update(_(LOCKED))
            return
        locked = self._lock.missed()
        if locked:
            error.update(_("Too many wrong PINs — locked for {seconds} s").format(seconds=locked))
        else:
            error.update(_("Wrong PIN — try again"))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            event.stop()
            self.dismiss()
