"""`Subscriptions`: which subscriber holds which patterns in this process, indexed so a publish
finds its receivers without scanning every pattern, answering each request as the seed says."""

from __future__ import annotations

import bisect
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from wire.pubsub.frames import Action, Request, Subscribe
from wire.pubsub.glob import Compiled, as_bytes, compile_pattern, match_tokens

# Defaults for the registry caps; a deployment may pass others to `Subscriptions`.
MAX_PATTERNS_PER_SUBSCRIBER = 64
MAX_PATTERN_LENGTH = 512  # UTF-8 bytes

S = TypeVar("S", bound=Hashable)


# --------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to one request: the reply frame, and what the Redis backend must do.

    `first`: this pattern just got its first local subscriber (PSUBSCRIBE it).
    `last`: its last local subscriber just left (PUNSUBSCRIBE it).
    """

    reply: dict[str, Any]
    first: bool = False
    last: bool = False


@dataclass(eq=False, slots=True)
class _Entry(Generic[S]):
    pattern: str
    compiled: Compiled
    # dict as an insertion-ordered set: delivery order is subscription order.
    subscribers: dict[S, None] = field(default_factory=dict)


def _ok(action: Action, pattern: str) -> dict[str, Any]:
    return {"action": action.value, "pattern": pattern, "status": True}


def _refused(action: Action, pattern: str, error: str) -> dict[str, Any]:
    return {"action": action.value, "pattern": pattern, "status": False, "error": error}


class Subscriptions(Generic[S]):
    """Which subscriber holds which patterns in this process, indexed for publishing.

    Subscribers are any hashable handle the shell chooses (a connection object, an id string).
    """

    def __init__(
        self,
        *,
        max_patterns_per_subscriber: int = MAX_PATTERNS_PER_SUBSCRIBER,
        max_pattern_length: int = MAX_PATTERN_LENGTH,
    ) -> None:
        self.max_patterns_per_subscriber = max_patterns_per_subscriber
        self.max_pattern_length = max_pattern_length
        self._held: dict[S, dict[str, None]] = {}
        self._entries: dict[str, _Entry[S]] = {}
        # literal bytes -> entries; two spellings ("a\\b", "ab") can share one literal.
        self._literal: dict[bytes, dict[str, _Entry[S]]] = {}
        # literal prefix -> glob entries, plus the sorted distinct prefix lengths in use, so a
        # publish does one dict lookup per length instead of testing every pattern.
        self._by_prefix: dict[bytes, dict[str, _Entry[S]]] = {}
        self._prefix_lengths: list[int] = []
        self._prefix_length_uses: dict[int, int] = {}

    # -- queries

    def patterns(self) -> frozenset[str]:
        """Every pattern with at least one local subscriber (what the backend must hold)."""
        return frozenset(self._entries)

    def patterns_of(self, subscriber: S) -> tuple[str, ...]:
        return tuple(self._held.get(subscriber, ()))

    def __len__(self) -> int:
        return len(self._held)

    def match(self, channel: str | bytes) -> list[tuple[S, str]]:
        """(subscriber, pattern) pairs to deliver a message on `channel` to, one per match.

        A subscriber holding two matching patterns gets the message twice, once per pattern,
        as with Redis PSUBSCRIBE.
        """
        raw = as_bytes(channel)
        out: list[tuple[S, str]] = []
        exact = self._literal.get(raw)
        if exact:
            for entry in exact.values():
                out.extend((sub, entry.pattern) for sub in entry.subscribers)
        if not raw:
            return out  # Redis: only the empty pattern matches the empty channel
        size = len(raw)
        for length in self._prefix_lengths:
            if length > size:
                break
            bucket = self._by_prefix.get(raw[:length])
            if not bucket:
                continue
            for entry in bucket.values():
                # The prefix already matched: resume after it.
                if match_tokens(entry.compiled.tokens, raw, length, length)[0]:
                    out.extend((sub, entry.pattern) for sub in entry.subscribers)
        return out

    # -- requests

    def handle(self, subscriber: S, request: Request) -> Outcome:
        if isinstance(request, Subscribe):
            return self.subscribe(subscriber, request.pattern)
        return self.unsubscribe(subscriber, request.pattern)

    def subscribe(self, subscriber: S, pattern: str) -> Outcome:
        held = self._held.get(subscriber)
        if held is not None and pattern in held:
            return Outcome(
                _refused(Action.SUBSCRIBE, pattern, f"already subscribed to {pattern!r}")
            )
        raw = pattern.encode("utf-8")
        if not raw:
            return Outcome(_refused(Action.SUBSCRIBE, pattern, "pattern must not be empty"))
        if len(raw) > self.max_pattern_length:
            return Outcome(
                _refused(
                    Action.SUBSCRIBE,
                    pattern,
                    f"pattern is {len(raw)} bytes, at most {self.max_pattern_length} allowed",
                )
            )
        if held is not None and len(held) >= self.max_patterns_per_subscriber:
            return Outcome(
                _refused(
                    Action.SUBSCRIBE,
                    pattern,
                    f"too many patterns: at most {self.max_patterns_per_subscriber} per subscriber",
                )
            )
        if held is None:
            held = self._held[subscriber] = {}
        held[pattern] = None
        entry = self._entries.get(pattern)
        first = entry is None
        if entry is None:
            entry = self._entries[pattern] = _Entry(pattern, compile_pattern(raw))
            self._index(entry)
        entry.subscribers[subscriber] = None
        return Outcome(_ok(Action.SUBSCRIBE, pattern), first=first)

    def unsubscribe(self, subscriber: S, pattern: str) -> Outcome:
        held = self._held.get(subscriber)
        if held is None or pattern not in held:
            return Outcome(_refused(Action.UNSUBSCRIBE, pattern, f"not subscribed to {pattern!r}"))
        del held[pattern]
        if not held:
            del self._held[subscriber]
        last = self._drop(subscriber, pattern)
        return Outcome(_ok(Action.UNSUBSCRIBE, pattern), last=last)

    def remove(self, subscriber: S) -> tuple[str, ...]:
        """Forget a subscriber (it disconnected); returns the patterns nobody holds any more."""
        held = self._held.pop(subscriber, None)
        if held is None:
            return ()
        return tuple(p for p in held if self._drop(subscriber, p))

    # -- index upkeep

    def _drop(self, subscriber: S, pattern: str) -> bool:
        entry = self._entries[pattern]
        del entry.subscribers[subscriber]
        if entry.subscribers:
            return False
        del self._entries[pattern]
        self._unindex(entry)
        return True

    def _index(self, entry: _Entry[S]) -> None:
        c = entry.compiled
        if c.never:
            return  # matches nothing, as in Redis; holding it still counts for the backend
        if c.literal:
            self._literal.setdefault(c.prefix, {})[entry.pattern] = entry
            return
        self._by_prefix.setdefault(c.prefix, {})[entry.pattern] = entry
        size = len(c.prefix)
        uses = self._prefix_length_uses.get(size, 0)
        if uses == 0:
            bisect.insort(self._prefix_lengths, size)
        self._prefix_length_uses[size] = uses + 1

    def _unindex(self, entry: _Entry[S]) -> None:
        c = entry.compiled
        if c.never:
            return
        table = self._literal if c.literal else self._by_prefix
        bucket = table[c.prefix]
        del bucket[entry.pattern]
        if not bucket:
            del table[c.prefix]
        if c.literal:
            return
        size = len(c.prefix)
        uses = self._prefix_length_uses[size] - 1
        if uses:
            self._prefix_length_uses[size] = uses
        else:
            del self._prefix_length_uses[size]
            self._prefix_lengths.remove(size)
