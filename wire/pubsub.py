"""Pattern pub/sub (seed 001) as a sans-I/O core: requests, replies and Redis-exact glob matching.

A subscriber (a dashboard socket, a balancer, a test) sends `{"action":"subscribe","pattern":…}` or
`{"action":"unsubscribe","pattern":…}`; `parse_request` turns that into a typed request or a
`PubSubError` whose `reply` is the `status:false` answer to send back. `Subscriptions` is the
per-process registry: it answers each request with the reply the seed prescribes and says when the
pattern got its first local subscriber (the Redis backend then PSUBSCRIBEs) or lost its last one
(PUNSUBSCRIBE), and `match(channel)` finds who receives a published message without scanning every
pattern: literal patterns sit in a dict, glob patterns in buckets keyed by their literal prefix.
`glob_match` reproduces Redis's `stringmatchlen` byte for byte, quirks included, so the in-process
backend and the Redis backend deliver exactly the same messages; it is iterative and does at most
(len(pattern)+1)·(len(channel)+1) steps, so hostile patterns cannot stall the process.
docs/protocol.md ("Pub/sub") is the user-facing reference of the same rules.
"""

from __future__ import annotations

import bisect
import enum
import functools
import json
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

# Defaults for the registry caps; a deployment may pass others to `Subscriptions`.
MAX_PATTERNS_PER_SUBSCRIBER = 64
MAX_PATTERN_LENGTH = 512  # UTF-8 bytes
# Redis gives up on a pattern whose star nesting passes this depth (abuse guard in stringmatchlen);
# the same patterns must fail here too or the two backends would disagree.
_REDIS_MAX_STAR_NESTING = 1000


class Action(enum.StrEnum):
    """Values of the `action` field of pub/sub frames."""

    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    MESSAGE = "message"
    ERROR = "error"


ACTIONS: tuple[str, ...] = tuple(a.value for a in Action)

S = TypeVar("S", bound=Hashable)


class PubSubError(ValueError):
    """A malformed pub/sub frame; `field` names what was wrong and `reply` is the answer to send."""

    def __init__(
        self, field: str, message: str, *, action: str | None = None, pattern: str | None = None
    ) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.action = action
        self.pattern = pattern

    @property
    def reply(self) -> dict[str, Any]:
        """The `status:false` frame that tells the sender what to fix; the connection stays open."""
        out: dict[str, Any] = {"action": self.action or Action.ERROR.value}
        if self.pattern is not None:
            out["pattern"] = self.pattern
        out["status"] = False
        out["error"] = str(self)
        return out


# --------------------------------------------------------------------------------------------
# Glob matching, exactly as Redis's stringmatchlen (nocase off), on UTF-8 bytes.

_STAR = -1
_ANY = -2
# A token is a literal byte (0..255), _STAR, _ANY, or the set of bytes a [...] class accepts.
_Token = int | frozenset[int]
_ALL_BYTES = frozenset(range(256))
_BACKSLASH, _LBRACKET, _RBRACKET = ord("\\"), ord("["), ord("]")
_CARET, _DASH, _ASTERISK, _QMARK = ord("^"), ord("-"), ord("*"), ord("?")


@dataclass(frozen=True, slots=True)
class _Compiled:
    tokens: tuple[_Token, ...]
    # Bytes every match must start with (the leading literal tokens); the whole pattern if literal.
    prefix: bytes
    literal: bool
    # Redis refuses to match anything through star nesting deeper than its abuse guard.
    never: bool


def _parse_class(pat: bytes, i: int) -> tuple[frozenset[int], int]:
    """Parse the class whose `[` is just before `i`; returns accepted bytes and the next index.

    Same reading order as Redis: escape first, then `]`, then `x-y` ranges (reversed ranges are
    swapped, and the range end is taken literally even if it is `]`). A class with no closing `]`
    runs to the end of the pattern.
    """
    n = len(pat)
    negate = i < n and pat[i] == _CARET
    if negate:
        i += 1
    members: set[int] = set()
    while i < n:  # each pass consumes at least one pattern byte
        c = pat[i]
        if c == _BACKSLASH and n - i >= 2:
            members.add(pat[i + 1])
            i += 2
        elif c == _RBRACKET:
            i += 1
            break
        elif n - i >= 3 and pat[i + 1] == _DASH:
            lo, hi = sorted((c, pat[i + 2]))
            members.update(range(lo, hi + 1))
            i += 3
        else:
            members.add(c)
            i += 1
    accepted = _ALL_BYTES - members if negate else frozenset(members)
    return accepted, i


@functools.lru_cache(maxsize=4096)
def _compile(pattern: bytes) -> _Compiled:
    tokens: list[_Token] = []
    i, n = 0, len(pattern)
    while i < n:  # each pass consumes at least one pattern byte
        c = pattern[i]
        if c == _ASTERISK:
            tokens.append(_STAR)
            i += 1
        elif c == _QMARK:
            tokens.append(_ANY)
            i += 1
        elif c == _LBRACKET:
            accepted, i = _parse_class(pattern, i + 1)
            tokens.append(accepted)
        elif c == _BACKSLASH and n - i >= 2:
            tokens.append(pattern[i + 1])
            i += 2
        else:  # a trailing lone backslash is a literal backslash
            tokens.append(c)
            i += 1
    prefix = bytearray()
    for t in tokens:
        if isinstance(t, frozenset) or t < 0:
            break
        prefix.append(t)
    literal = len(prefix) == len(tokens)
    return _Compiled(tuple(tokens), bytes(prefix), literal, _too_deep(tokens))


def _too_deep(tokens: list[_Token]) -> bool:
    """Whether Redis's nesting guard rejects every match: a star run past the limit, not last."""
    runs = 0
    prev_star = False
    for idx, t in enumerate(tokens):
        is_star = t == _STAR
        if is_star and not prev_star:
            runs += 1
            if runs > _REDIS_MAX_STAR_NESTING and any(u != _STAR for u in tokens[idx:]):
                return True
        prev_star = is_star
    return False


def _match_tokens(tokens: tuple[_Token, ...], s: bytes, p: int, i: int) -> tuple[bool, int]:
    """Match tokens[p:] against s[i:]; returns (matched, steps taken).

    Classic single-backtrack-point wildcard matching: every non-star token consumes exactly one
    byte, so on a mismatch only the most recent star needs to swallow one more byte; earlier
    stars growing could not help (Redis reasons the same way with its skipLongerMatches flag).
    That bounds the work by (len(tokens)+1)·(len(s)+1) steps.
    """
    n, m = len(tokens), len(s)
    star_p = -1  # token index just after the most recent star run
    star_i = 0  # where that star's match currently ends
    steps = 0
    while i < m:
        steps += 1
        if p < n:
            t = tokens[p]
            if t == _STAR:
                while p < n and tokens[p] == _STAR:
                    p += 1
                if p == n:
                    return True, steps
                star_p, star_i = p, i
                continue
            c = s[i]
            if t in (c, _ANY) or (isinstance(t, frozenset) and c in t):
                p += 1
                i += 1
                continue
        if star_p < 0:
            return False, steps
        star_i += 1
        p, i = star_p, star_i
    while p < n and tokens[p] == _STAR:
        p += 1
    return p == n, steps


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def glob_match_steps(pattern: str | bytes, channel: str | bytes) -> tuple[bool, int]:
    """`glob_match` plus the number of matching steps it took (for tests and diagnostics)."""
    raw = _as_bytes(channel)
    compiled = _compile(_as_bytes(pattern))
    if not raw:
        # Redis never enters its loop for an empty string: only the empty pattern matches it.
        return not compiled.tokens, 0
    if compiled.never:
        return False, 0
    return _match_tokens(compiled.tokens, raw, 0, 0)


def glob_match(pattern: str | bytes, channel: str | bytes) -> bool:
    """Whether `channel` matches the Redis PSUBSCRIBE glob `pattern` (compared as UTF-8 bytes).

    `*` any run of bytes, `?` one byte, `[abc]` `[a-z]` `[z-a]` `[^x]` a byte class, `\\x` the
    byte x; an unclosed `[` class runs to the end of the pattern, `[]` matches nothing and a
    trailing `\\` is literal.
    """
    return glob_match_steps(pattern, channel)[0]


# --------------------------------------------------------------------------------------------
# Frames


@dataclass(frozen=True, slots=True)
class Subscribe:
    pattern: str


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    pattern: str


Request = Subscribe | Unsubscribe


@dataclass(frozen=True, slots=True)
class Message:
    """A published message as delivered to one subscriber, for the pattern that matched."""

    pattern: str
    channel: str
    data: Any


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_dumps = _ENCODER.encode


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _load(frame: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(frame, Mapping):
        return frame
    try:
        obj = json.loads(frame, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PubSubError("frame", f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise PubSubError("frame", f"must be a JSON object, got {type(obj).__name__}")
    return obj


def parse_request(frame: str | bytes | Mapping[str, Any]) -> Request:
    """Parse a subscribe/unsubscribe frame (JSON text or an already decoded object)."""
    obj = _load(frame)
    if "action" not in obj:
        raise PubSubError("action", "missing")
    action = obj["action"]
    if action not in (Action.SUBSCRIBE, Action.UNSUBSCRIBE) or not isinstance(action, str):
        raise PubSubError("action", f"must be 'subscribe' or 'unsubscribe', got {action!r}")
    raw_pattern = obj.get("pattern")
    shown = raw_pattern if isinstance(raw_pattern, str) else None
    if "pattern" not in obj:
        raise PubSubError("pattern", "missing", action=action)
    if not isinstance(raw_pattern, str):
        raise PubSubError(
            "pattern", f"must be a string, got {type(raw_pattern).__name__}", action=action
        )
    if not raw_pattern:
        raise PubSubError("pattern", "must not be empty", action=action, pattern=shown)
    extra = sorted(set(obj) - {"action", "pattern"})
    if extra:
        raise PubSubError(extra[0], f"unexpected field(s) {extra}", action=action, pattern=shown)
    return Subscribe(raw_pattern) if action == Action.SUBSCRIBE else Unsubscribe(raw_pattern)


def encode_reply(reply: Mapping[str, Any]) -> str:
    """JSON text of a reply dict (from `Subscriptions` or `PubSubError.reply`)."""
    return _dumps(reply)


def encode_message(pattern: str, channel: str, data: Any) -> str:
    """The frame that delivers `data`, published on `channel`, to a subscriber of `pattern`."""
    try:
        data_json = _dumps(data)
    except (TypeError, ValueError) as exc:
        raise PubSubError("data", f"not JSON-serializable: {exc}") from None
    return encode_message_json(pattern, channel, data_json)


def encode_message_json(pattern: str, channel: str, data_json: str) -> str:
    """Like `encode_message` with `data` already serialized: fan-out serializes it once.

    `data_json` must be the text of exactly one JSON value (e.g. from json.dumps); it is spliced
    in unchecked.
    """
    return (
        f'{{"action":"message","pattern":{_dumps(pattern)},"channel":{_dumps(channel)},'
        f'"data":{data_json}}}'
    )


def parse_message(frame: str | bytes | Mapping[str, Any]) -> Message:
    """Parse a delivered message frame (the subscriber's side)."""
    obj = _load(frame)
    if obj.get("action") != Action.MESSAGE:
        raise PubSubError("action", f"must be 'message', got {obj.get('action')!r}")
    for name in ("pattern", "channel"):
        if not isinstance(obj.get(name), str):
            raise PubSubError(name, "missing or not a string")
    if "data" not in obj:
        raise PubSubError("data", "missing")
    return Message(obj["pattern"], obj["channel"], obj["data"])


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
    compiled: _Compiled
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
        raw = _as_bytes(channel)
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
                if _match_tokens(entry.compiled.tokens, raw, length, length)[0]:
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
            entry = self._entries[pattern] = _Entry(pattern, _compile(raw))
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
