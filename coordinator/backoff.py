"""Back-off for guessing: secrets on `/join`, credentials on the burn listener's `ID` line.

Each failed attempt is counted against every key it names (the client's address, and the user it
tried); a key with `threshold` failures inside `window` seconds is locked for `lockout` seconds,
and every further lock of the same key within a day doubles that, up to `max_lockout`. While a
key is locked its attempts are refused unchecked (HTTP 429 with `Retry-After`, or an `ERROR`
over TCP), so a right guess inside a lock gains nothing. A success clears the keys it names.
Each lock is logged once, when it starts, not once per refused attempt. State is in memory and
bounded: past `max_keys`, keys with nothing recent are forgotten first.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

DAY = 86_400.0


@dataclass(slots=True)
class _Key:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0
    locks: int = 0
    last_lock: float = 0.0


@dataclass
class Backoff:
    """Counts failures per key and says how long a key must wait (0: go ahead)."""

    what: str
    threshold: int = 10
    window: float = 60.0
    lockout: float = 60.0
    max_lockout: float = 3600.0
    max_keys: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _keys: dict[str, _Key] = field(default_factory=dict)

    def wait(self, keys: Iterable[str]) -> int:
        """Seconds until every one of ``keys`` may try again (0 when none is locked)."""
        now = self.clock()
        longest = 0.0
        for key in keys:
            state = self._keys.get(key)
            if state is not None and state.locked_until > now:
                longest = max(longest, state.locked_until - now)
        return math.ceil(longest)

    def failed(self, keys: Iterable[str]) -> None:
        now = self.clock()
        for key in keys:
            state = self._keys.get(key)
            if state is None:
                if len(self._keys) >= self.max_keys:
                    self._prune(now)
                state = self._keys[key] = _Key()
            state.failures = [t for t in state.failures if t > now - self.window]
            state.failures.append(now)
            if len(state.failures) >= self.threshold and state.locked_until <= now:
                state.locks = state.locks + 1 if now - state.last_lock < DAY else 1
                seconds = min(self.lockout * 2 ** (state.locks - 1), self.max_lockout)
                state.locked_until, state.last_lock = now + seconds, now
                state.failures.clear()
                log.warning(
                    "too many failed attempts, backing off",
                    extra={"what": self.what, "key": key, "seconds": seconds},
                )

    def succeeded(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._keys.pop(key, None)

    def _prune(self, now: float) -> None:
        stale = [
            k
            for k, s in self._keys.items()
            if s.locked_until <= now and not any(t > now - self.window for t in s.failures)
        ]
        for k in stale:
            del self._keys[k]
        if len(self._keys) >= self.max_keys:  # everyone is busy: drop the oldest half
            for k in list(self._keys)[: self.max_keys // 2]:
                del self._keys[k]
