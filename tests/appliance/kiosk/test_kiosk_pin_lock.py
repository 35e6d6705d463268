"""Issue 23 case 9: the operator PIN locks after five misses, for a minute, then doubling."""

from __future__ import annotations

from kiosk_helpers import PIN, Agent, screen_text, wait_for
from textual.pilot import Pilot

from appliance.kiosk.app import KioskApp
from appliance.kiosk.pinlock import PinLock
from appliance.kiosk.screens.attract import AttractScreen
from appliance.kiosk.screens.operator import OperatorScreen
from appliance.kiosk.screens.pin import PinScreen


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _type(pilot: Pilot[None], pin: str) -> None:
    for key in pin:
        await pilot.click(f"#key-{key}")
    await pilot.click("#key-ok")


async def test_five_wrong_pins_lock_the_keypad_even_across_reopening(agent: Agent) -> None:
    clock = Clock()
    app = KioskApp(agent.path, pin=PIN)
    app.pin_lock = PinLock(clock=clock)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, AttractScreen), "the kiosk")
        await pilot.click("#operator")
        await wait_for(pilot, lambda: isinstance(app.screen, PinScreen), "the PIN pad")
        for n in range(4):
            await _type(pilot, "1111")
            await wait_for(pilot, lambda: "Wrong PIN" in screen_text(pilot), f"miss {n + 1}")
        await _type(pilot, "1111")
        await wait_for(pilot, lambda: "locked for 60 s" in screen_text(pilot), "the lock")
        # Inside the lock the right PIN is not even compared; closing the pad resets nothing.
        await pilot.click("#cancel")
        await wait_for(pilot, lambda: isinstance(app.screen, AttractScreen), "back")
        await pilot.click("#operator")
        await wait_for(pilot, lambda: isinstance(app.screen, PinScreen), "the PIN pad again")
        clock.now += 30
        await _type(pilot, PIN)
        await wait_for(pilot, lambda: "locked for 30 s" in screen_text(pilot), "still locked")
        assert isinstance(app.screen, PinScreen)
        # After the minute, five more misses lock for two minutes.
        clock.now += 31
        for _ in range(5):
            await _type(pilot, "9999")
        await wait_for(pilot, lambda: "locked for 120 s" in screen_text(pilot), "a longer lock")
        clock.now += 121
        await _type(pilot, PIN)
        await wait_for(pilot, lambda: isinstance(app.screen, OperatorScreen), "the operator")
        assert app.pin_lock.locks == 0  # a right PIN starts over
