"""LEDs and eject buttons on gpiozero's MockFactory: pin states through a job's life."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from appliance.leds import LedConfig, LedConfigError, LedState, LinkState, Panel

GREEN, RED, LINK, BUTTON = 17, 27, 22, 5


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()


@pytest.fixture
def panel(factory: MockFactory) -> Iterator[Panel]:
    p = Panel(
        LedConfig(drives={"/dev/sr0": (GREEN, RED)}, link=LINK, eject_buttons={"/dev/sr0": BUTTON}),
        pin_factory=factory,
    )
    yield p
    p.close()


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.005)  # poll interval of a bounded wait on another thread's pin writes
    return cond()


def toggles(factory: MockFactory, pin: int, since: int) -> int:
    states = [s.state for s in factory.pin(pin).states[since:]]
    return sum(1 for a, b in itertools.pairwise(states) if a != b)


def lit(factory: MockFactory, pin: int) -> bool:
    return bool(factory.pin(pin).state)


def test_drive_leds_through_a_passing_and_a_failing_job(panel: Panel, factory: MockFactory) -> None:
    assert (lit(factory, GREEN), lit(factory, RED)) == (False, False)  # idle: dark

    mark_g, mark_r = len(factory.pin(GREEN).states), len(factory.pin(RED).states)
    panel.show("/dev/sr0", LedState.WRITING)
    # Blinking: both pins keep toggling on their own.
    assert wait_until(lambda: toggles(factory, GREEN, mark_g) >= 3)
    assert wait_until(lambda: toggles(factory, RED, mark_r) >= 3)

    panel.show("/dev/sr0", LedState.VERIFYING)
    assert (lit(factory, GREEN), lit(factory, RED)) == (True, True)
    mark = len(factory.pin(GREEN).states)
    panel.show("/dev/sr0", LedState.PASSED)
    assert (lit(factory, GREEN), lit(factory, RED)) == (True, False)
    # Solid: the blink thread is gone, nothing toggles any more.
    assert toggles(factory, GREEN, mark) <= 1

    # A failure: red alone, blinking, so it is seen from across the booth.
    mark_r = len(factory.pin(RED).states)
    panel.show("/dev/sr0", LedState.FAILED)
    assert not lit(factory, GREEN)
    assert wait_until(lambda: toggles(factory, RED, mark_r) >= 3)
    assert panel.state("/dev/sr0") is LedState.FAILED
    panel.show("/dev/sr0", LedState.IDLE)
    assert (lit(factory, GREEN), lit(factory, RED)) == (False, False)


def test_link_led(panel: Panel, factory: MockFactory) -> None:
    assert panel.link is not None
    assert not lit(factory, LINK)
    mark = len(factory.pin(LINK).states)
    panel.link.show(LinkState.RECONNECTING)
    assert wait_until(lambda: toggles(factory, LINK, mark) >= 3)
    panel.link.show(LinkState.CONNECTED)
    assert lit(factory, LINK)
    panel.link.show(LinkState.DOWN)
    assert not lit(factory, LINK)


async def test_button_ejects_the_drive(panel: Panel, factory: MockFactory) -> None:
    ejected = asyncio.Event()

    async def eject() -> None:
        ejected.set()

    assert panel.bind_eject("/dev/sr0", eject, asyncio.get_running_loop()) is not None
    factory.pin(BUTTON).drive_low()  # pressed (pull-up button)
    await asyncio.wait_for(ejected.wait(), timeout=5)


async def test_failing_eject_keeps_the_button_working(factory: MockFactory) -> None:
    panel = Panel(
        LedConfig(eject_buttons={"/dev/sr0": BUTTON}, button_bounce=None), pin_factory=factory
    )
    presses = 0
    second = asyncio.Event()

    async def eject() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            raise OSError("tray jammed")
        second.set()

    panel.bind_eject("/dev/sr0", eject, asyncio.get_running_loop())
    pin = factory.pin(BUTTON)
    pin.drive_low()
    pin.drive_high()
    assert await asyncio.to_thread(wait_until, lambda: presses == 1)
    pin.drive_low()
    await asyncio.wait_for(second.wait(), timeout=5)
    panel.close()


async def test_drives_without_leds_are_skipped(panel: Panel, factory: MockFactory) -> None:
    panel.show("/dev/sr9", LedState.WRITING)  # not wired: no error, nothing lit
    assert not lit(factory, GREEN)
    assert panel.bind_eject("/dev/sr9", _never, asyncio.get_running_loop()) is None


async def _never() -> None:
    raise AssertionError("not wired")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (LedConfig(drives={"/dev/sr0": (17, 17)}), "GPIO17 is used twice"),
        (LedConfig(drives={"/dev/sr0": (17, 27)}, link=27), "GPIO27 is used twice"),
        (LedConfig(link=40), "not a BCM GPIO pin"),
    ],
)
def test_bad_pin_config_is_refused(config: LedConfig, message: str, factory: MockFactory) -> None:
    with pytest.raises(LedConfigError, match=message):
        Panel(config, pin_factory=factory)
    # Nothing was claimed: the pins are still free for a corrected config.
    Panel(LedConfig(drives={"/dev/sr0": (17, 27)}, link=22), pin_factory=factory).close()
