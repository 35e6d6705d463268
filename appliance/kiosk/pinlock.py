"""How many wrong operator PINs the kiosk takes before its keypad locks, and for how long.

Five misses in a row lock the keypad for a minute; each further lock doubles that, up to an hour,
and a right PIN starts over. The count lives in the app, not in the PIN screen, so closing and
reopening the screen does not reset it. Without a lockout a four-digit PIN falls to anyone with a
few minutes at the touchscreen.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

MISSES_BEFORE_LOCK = 5
FIRST_LOCK = 60.0
LONGEST_LOCK = 3600.0


@dataclass
class PinLock:
    clock: Callable[[], float] = time.monotonic
    misses: int = 0
    locks: int = 0
    locked_until: float = 0.0

    def wait(self) -> int:
        """Whole seconds the keypad stays locked (0: a PIN may be tried)."""
        return max(0, math.ceil(self.locked_until - self.clock()))

    def missed(self) -> int:
        """Count a wrong PIN; the seconds of the lock it started (0 if none)."""
        self.misses += 1
        if self.misses < MISSES_BEFORE_LOCK:
            return 0
        self.misses = 0
        seconds: float = min(FIRST_LOCK * 2.0**self.locks, LONGEST_LOCK)
        self.locks += 1
        self.locked_until = self.clock() + seconds
        return math.ceil(seconds)

    def unlocked(self) -> None:
        self.misses = self.locks = 0
        self.locked_until = 0.0
