"""The link's vocabulary: tokens and their merge, states, typed events, local-misuse errors, and
the parsing of received frames (a malformed frame is a value, never an exception)."""

import enum
import json
import re
import secrets
from dataclasses import dataclass
from typing import TypeAlias

TOKEN_CHARS = 32
MERGED_CHARS = 64
DEFAULT_GRACE = 120.0
DEFAULT_MAX_UNACKED = 10_000
DEFAULT_ACK_EVERY = 16
# WebSocket close code for a socket presenting a live link's token ("policy violation").
CLOSE_STALE_SOCKET = 1008

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None


class State(enum.IntEnum):
    """Where one end of a link is, numbered as in the seed."""

    OPEN = 0
    PRECONNECTED = 1
    CONNECTED = 2
    RECONNECTING = 3
    DISCONNECTED = 4


STATES: tuple[str, ...] = tuple(s.name for s in State)


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class FrameKind(enum.StrEnum):
    """What a frame means; handshake, confirm and disconnect all look like a bare token."""

    HANDSHAKE = "handshake"  # local token, first frame on a socket
    CONFIRM = "confirm"  # local token again, or the merged token when resuming
    DATA = "data"  # {"s": seq, "a": ack, "m": payload}
    ACK = "ack"  # {"a": ack}
    DISCONNECT = "disconnect"  # the merged token while connected


FRAMES: tuple[str, ...] = tuple(k.value for k in FrameKind)

_TOKEN = re.compile(r"[0-9a-f]{32}")
_MERGED = re.compile(r"[0-9a-f]{64}")
_HEXISH = re.compile(r"[0-9A-Fa-f]+")


def new_token() -> str:
    """A fresh 128-bit random token as 32 lowercase hex chars."""
    return secrets.token_hex(TOKEN_CHARS // 2)


def merge_tokens(a: str, b: str) -> str:
    """The link token both ends agree on: the two tokens sorted and concatenated.

    A 64-char token (a client's old merged token standing in for its local token when a resume
    turns into a new connection) contributes its first half, so a merged token is always 64.
    """
    halves = []
    for t in (a, b):
        if _MERGED.fullmatch(t):
            t = t[:TOKEN_CHARS]
        if not _TOKEN.fullmatch(t):
            raise ValueError("a link token is 32 (or 64) lowercase hex characters")
        halves.append(t)
    return "".join(sorted(halves))


class LinkError(Exception):
    """The shell or the application used the link in a way it cannot honour."""


class LinkClosed(LinkError):
    """The link was formally disconnected (or expired); it cannot carry anything again."""


class UnackedOverflow(LinkError):
    """`send` would hold more unacknowledged messages than the configured bound.

    The message was not accepted (nothing queued); retry once the peer has acked some.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"{limit} messages are already waiting for the peer's ack; "
            "the message was not queued (back off until acks arrive)"
        )
        self.limit = limit


# Brief and docs name the condition "backpressure"; one class, two names.
LinkBackpressure = UnackedOverflow


# --------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class Connected:
    """The link is up. `resumed` is False for a new link: the peer has none of the old state."""

    token: str
    resumed: bool


@dataclass(frozen=True, slots=True)
class Message:
    """One application message, delivered in order and (within the grace period) exactly once."""

    payload: JsonValue


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The link is over for good: the peer disconnected formally, or the server's grace expired.

    `unacked` holds what this end had sent that the peer never acknowledged.
    """

    token: str
    formal: bool
    unacked: tuple[JsonValue, ...] = ()


@dataclass(frozen=True, slots=True)
class Refused:
    """A new socket may not take this link over; the shell closes it with `close_code`."""

    token: str
    reason: str
    close_code: int = CLOSE_STALE_SOCKET


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """A frame was malformed or out of place; it was dropped and the state did not change."""

    reason: str


Event: TypeAlias = Connected | Message | Disconnected | Refused | ProtocolViolation


# --------------------------------------------------------------------------------------------
# Frame parsing


@dataclass(frozen=True, slots=True)
class _Token:
    value: str


@dataclass(frozen=True, slots=True)
class _Data:
    seq: int
    ack: int
    payload: JsonValue


@dataclass(frozen=True, slots=True)
class _Ack:
    ack: int


_Parsed: TypeAlias = _Token | _Data | _Ack | ProtocolViolation


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _counter(obj: dict[str, JsonValue], key: str, minimum: int) -> int | None:
    value = obj[key]
    # bool is an int in Python but never a sequence number.
    if type(value) is not int or value < minimum:
        return None
    return value


def _parse(frame: str) -> _Parsed:
    if _TOKEN.fullmatch(frame) or _MERGED.fullmatch(frame):
        return _Token(frame)
    if _HEXISH.fullmatch(frame):
        return ProtocolViolation(
            f"a token is 32 or 64 lowercase hex characters; got {len(frame)} characters"
            + ("" if frame == frame.lower() else " with upper case")
        )
    try:
        obj = json.loads(frame, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        return ProtocolViolation(f"frame is neither a token nor valid JSON: {exc}")
    if not isinstance(obj, dict):
        return ProtocolViolation(f"a JSON frame must be an object, got {type(obj).__name__}")
    keys = set(obj)
    if keys == {"a"}:
        ack = _counter(obj, "a", 0)
        if ack is None:
            return ProtocolViolation('"a" must be an integer >= 0')
        return _Ack(ack)
    if keys == {"s", "a", "m"}:
        seq = _counter(obj, "s", 1)
        ack = _counter(obj, "a", 0)
        if seq is None:
            return ProtocolViolation('"s" must be an integer >= 1')
        if ack is None:
            return ProtocolViolation('"a" must be an integer >= 0')
        return _Data(seq, ack, obj["m"])
    return ProtocolViolation(
        f'a data frame has keys "s", "a", "m" and a bare ack only "a"; got {sorted(keys)}'
    )


def _checked_token(token: str) -> str:
    if not _TOKEN.fullmatch(token):
        raise ValueError("token_factory must return 32 lowercase hex characters")
    return token


def _positive(name: str, value: int) -> int:
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value
