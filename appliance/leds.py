"""The kiosk's status lights and eject buttons, driven with gpiozero.

Each drive has a pair of LEDs, green and red: both off when idle, both blinking (amber) while
writing, both lit while verifying, green alone for a verified burn and red alone, blinking, for a
failure, so a visitor can read the result from across the booth; the agent puts them out when the
disc is taken from the drive. One more LED shows the coordinator link:
off when down, blinking while reconnecting, lit when connected. An optional button per drive
ejects its disc. Every class takes a gpiozero pin factory, so tests (and machines with no GPIO)
pass `gpiozero.pins.mock.MockFactory`; anything with on/off/blink satisfies `Light`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gpiozero import LED, Button

log = logging.getLogger(__name__)

WRITE_BLINK = 0.5  # seconds on, seconds off
RECONNECT_BLINK = 0.25
FAIL_BLINK = 0.3  # a failed disc's red LED blinks until the disc is taken out


class Light(Protocol):
    """A single indicator; gpiozero's LED and PWMLED are ones."""

    def on(self) -> None: ...

    def off(self) -> None: ...

    def blink(
        self, on_time: float = 1, off_time: float = 1, n: int | None = None, background: bool = True
    ) -> None: ...

    def close(self) -> None: ...


class LedState(enum.StrEnum):
    IDLE = "idle"
    WRITING = "writing"
    VERIFYING = "verifying"
    PASSED = "passed"
    FAILED = "failed"


class LinkState(enum.StrEnum):
    DOWN = "down"
    RECONNECTING = "reconnecting"
    CONNECTED = "connected"


class LedConfigError(ValueError):
    """The LED/button pin configuration cannot work (duplicate or invalid pins)."""


class DriveLeds:
    """The green/red pair of one drive. The agent calls `show` on every job phase change."""

    def __init__(self, green: Light, red: Light) -> None:
        self.green = green
        self.red = red
        self.state = LedState.IDLE
        self.show(LedState.IDLE)

    @classmethod
    def from_pins(cls, green: int | str, red: int | str, pin_factory: Any = None) -> DriveLeds:
        return cls(LED(green, pin_factory=pin_factory), LED(red, pin_factory=pin_factory))

    def show(self, state: LedState) -> None:
        self.state = state
        if state is LedState.WRITING:
            # Blink both from one call each, started back to back, so they read as one amber.
            self.green.blink(WRITE_BLINK, WRITE_BLINK)
            self.red.blink(WRITE_BLINK, WRITE_BLINK)
            return
        if state is LedState.FAILED:
            self.green.off()
            self.red.blink(FAIL_BLINK, FAIL_BLINK)
            return
        lit = {
            LedState.IDLE: (False, False),
            LedState.VERIFYING: (True, True),
            LedState.PASSED: (True, False),
        }[state]
        for light, on in ((self.green, lit[0]), (self.red, lit[1])):
            if on:
                light.on()
            else:
                light.off()

    def close(self) -> None:
        self.green.close()
        self.red.close()


class LinkLed:
    def __init__(self, light: Light) -> None:
        self.light = light
        self.state = LinkState.DOWN
        self.show(LinkState.DOWN)

    @classmethod
    def from_pin(cls, pin: int | str, pin_factory: Any = None) -> LinkLed:
        return cls(LED(pin, pin_factory=pin_factory))

    def show(self, state: LinkState) -> None:
        self.state = state
        if state is LinkState.CONNECTED:
            self.light.on()
        elif state is LinkState.RECONNECTING:
            self.light.blink(RECONNECT_BLINK, RECONNECT_BLINK)
        else:
            self.light.off()

    def close(self) -> None:
        self.light.close()


class EjectButton:
    """A push button that ejects a drive (gpiozero calls back in its thread: hop to the loop)."""

    def __init__(
        self,
        pin: int | str,
        eject: Callable[[], Awaitable[None]],
        loop: asyncio.AbstractEventLoop,
        *,
        pin_factory: Any = None,
        bounce_time: float | None = 0.05,
    ) -> None:
        self._eject = eject
        self._loop = loop
        self._tasks: set[asyncio.Task[None]] = set()
        self.button = Button(pin, pin_factory=pin_factory, bounce_time=bounce_time)
        self.button.when_pressed = self._pressed

    def _pressed(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._start)

    def _start(self) -> None:
        # Keep a reference: the loop only holds tasks weakly.
        task = self._loop.create_task(self._run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        try:
            await self._eject()
        except Exception:
            # A failed eject must not kill the button; the drive's state shows the outcome.
            log.exception("eject from button failed")

    def close(self) -> None:
        self.button.close()


@dataclass(frozen=True)
class LedConfig:
    """Pins from the agent's config: per drive path a (green, red) pair, the link LED, buttons."""

    drives: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    link: int | None = None
    eject_buttons: Mapping[str, int] = field(default_factory=dict)
    button_bounce: float | None = 0.05  # seconds; None turns debouncing off

    def validate(self) -> None:
        used: dict[int, str] = {}

        def claim(pin: int, what: str) -> None:
            if not isinstance(pin, int) or isinstance(pin, bool) or not 0 <= pin <= 27:
                raise LedConfigError(f"{what}: {pin!r} is not a BCM GPIO pin number (0-27)")
            if pin in used:
                raise LedConfigError(f"GPIO{pin} is used twice: {used[pin]} and {what}")
            used[pin] = what

        for path, (green, red) in self.drives.items():
            claim(green, f"green LED of {path}")
            claim(red, f"red LED of {path}")
        if self.link is not None:
            claim(self.link, "link LED")
        for path, pin in self.eject_buttons.items():
            claim(pin, f"eject button of {path}")


class Panel:
    """All lights and buttons of one kiosk, built from `LedConfig`."""

    def __init__(self, config: LedConfig, *, pin_factory: Any = None) -> None:
        config.validate()
        self._factory = pin_factory
        self.drives: dict[str, DriveLeds] = {
            path: DriveLeds.from_pins(green, red, pin_factory)
            for path, (green, red) in config.drives.items()
        }
        self.link = LinkLed.from_pin(config.link, pin_factory) if config.link is not None else None
        self._button_pins = dict(config.eject_buttons)
        self._bounce = config.button_bounce
        self.buttons: dict[str, EjectButton] = {}

    def show(self, drive_path: str, state: LedState) -> None:
        """Light a drive's pair; drives without LEDs in the config are silently skipped."""
        leds = self.drives.get(drive_path)
        if leds is not None:
            leds.show(state)

    def state(self, drive_path: str) -> LedState | None:
        """What a drive's pair shows now; None for a drive without LEDs."""
        leds = self.drives.get(drive_path)
        return None if leds is None else leds.state

    def bind_eject(
        self,
        drive_path: str,
        eject: Callable[[], Awaitable[None]],
        loop: asyncio.AbstractEventLoop,
    ) -> EjectButton | None:
        pin = self._button_pins.get(drive_path)
        if pin is None:
            return None
        if drive_path in self.buttons:
            self.buttons.pop(drive_path).close()
        button = EjectButton(pin, eject, loop, pin_factory=self._factory, bounce_time=self._bounce)
        self.buttons[drive_path] = button
        return button

    def close(self) -> None:
        for leds in self.drives.values():
            leds.close()
        if self.link is not None:
            self.link.close()
        for button in self.buttons.values():
            button.close()
