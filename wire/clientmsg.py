"""The browser command frames of the client WebSocket (`/ws/<session>`), sans-I/O.

After the auth-first frame (`wire.relay`), a browser sends JSON objects whose `action` names a
command: pub/sub `subscribe`/`unsubscribe`, `snapshot` of the room, the burn commands `queue`,
`qclear`, `open` and `name` that the session master turns into burn-protocol requests, and the
operator commands with no burn-protocol verb: `cancel` a burn, mark a burner `common_only`, and
`reorder` the queue; and `history`, the session's per-minute or per-hour burned/failed counts.
`parse_command` validates one decoded frame into a typed command or raises `CommandError` naming
the bad field; `reply` builds the one answer every command gets,
`{"action": …, "status": true|false, "error"?: …, "result"?: …}`. The server-pushed frames
(`expiring`, `closing`) and the re-auth a client sends after refreshing its credential are
encoded here too, so the balancer, the master and the tests share one spelling. docs/protocol.md
("Browser commands") is the user-facing reference.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

MAX_QUEUE_COUNT: Final = 1024
MAX_NAME_LENGTH: Final = 100
# The queue holds at most 1024 discs, hence at most that many runs.
MAX_QUEUE_POSITION: Final = 1024
# Latest `since` a history request may name (Unix seconds, the year 9999).
MAX_SINCE: Final = 253_402_300_799
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")


class Action(enum.StrEnum):
    """Commands a browser may send after auth."""

    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    SNAPSHOT = "snapshot"
    QUEUE = "queue"
    QCLEAR = "qclear"
    OPEN = "open"
    NAME = "name"
    CANCEL = "cancel"
    COMMON_ONLY = "common_only"
    REORDER = "reorder"
    HISTORY = "history"


ACTIONS: tuple[str, ...] = tuple(a.value for a in Action)


class Push(enum.StrEnum):
    """Frames the server sends on its own, not as a reply."""

    EXPIRING = "expiring"  # the credential expires soon: refresh it and send a new auth frame
    CLOSING = "closing"  # the socket is about to close; `code` says whether to retry


PUSHES: tuple[str, ...] = tuple(p.value for p in Push)


class CommandError(ValueError):
    """A command frame that cannot be carried out as sent; `field` names the bad part."""

    def __init__(self, action: str | None, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.action = action
        self.field = field
        self.reason = message

    def reply(self) -> dict[str, Any]:
        return reply(self.action, False, error=str(self))


@dataclass(frozen=True, slots=True)
class PubSubCommand:
    """`subscribe`/`unsubscribe`: answered by the pub/sub backend with seed 001's replies."""

    action: Action
    pattern: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    action: Action = Action.SNAPSHOT


@dataclass(frozen=True, slots=True)
class QueueImage:
    md5: str
    count: int = 1
    action: Action = Action.QUEUE


@dataclass(frozen=True, slots=True)
class ClearQueue:
    action: Action = Action.QCLEAR


@dataclass(frozen=True, slots=True)
class OpenTray:
    uid: str
    action: Action = Action.OPEN


@dataclass(frozen=True, slots=True)
class NameBurner:
    uid: str
    name: str
    action: Action = Action.NAME


@dataclass(frozen=True, slots=True)
class CancelBurn:
    uid: str
    action: Action = Action.CANCEL


@dataclass(frozen=True, slots=True)
class CommonOnly:
    uid: str
    on: bool
    action: Action = Action.COMMON_ONLY


@dataclass(frozen=True, slots=True)
class Reorder:
    md5: str
    position: int
    action: Action = Action.REORDER


class Span(enum.IntEnum):
    """The width of one history bucket, in seconds."""

    MINUTE = 60
    HOUR = 3600


# What a client may write for a span (and the CSV export's `span` query parameter).
SPANS: Final = {"minute": Span.MINUTE, "hour": Span.HOUR}


@dataclass(frozen=True, slots=True)
class History:
    """Burned/failed counts per bucket of `span` since `since` (Unix seconds; 0 for all)."""

    span: Span = Span.MINUTE
    since: int = 0
    action: Action = Action.HISTORY


def parse_span(action: str | None, value: object) -> Span:
    """`minute` or `hour`, else `CommandError` naming the field."""
    if not isinstance(value, str) or value not in SPANS:
        raise CommandError(action, "span", f"must be one of {', '.join(SPANS)}, got {value!r}")
    return SPANS[value]


# Commands the session master answers (the balancer answers pub/sub itself).
MasterCommand = (
    Snapshot
    | QueueImage
    | ClearQueue
    | OpenTray
    | NameBurner
    | CancelBurn
    | CommonOnly
    | Reorder
    | History
)
Command = PubSubCommand | MasterCommand


def _str(msg: Mapping[str, Any], action: str, name: str, limit: int) -> str:
    if name not in msg:
        raise CommandError(action, name, "missing")
    value = msg[name]
    if not isinstance(value, str):
        raise CommandError(action, name, f"must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise CommandError(action, name, f"longer than {limit} characters")
    return value


def _hex32(msg: Mapping[str, Any], action: str, name: str) -> str:
    value = _str(msg, action, name, 32)
    if not _HEX32.fullmatch(value):
        raise CommandError(action, name, f"must be 32 hex digits, got {value!r}")
    return value.lower()


def _int(msg: Mapping[str, Any], action: str, name: str, low: int, high: int) -> int:
    """An integer field within `low..high`; the error never formats a huge number (Python
    refuses to turn an int of over 4,300 digits into text)."""
    value = msg[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise CommandError(action, name, f"must be an integer, got {value!r}")
    if not low <= value <= high:
        shown = str(value) if value.bit_length() <= 128 else f"a {value.bit_length()}-bit number"
        raise CommandError(action, name, f"must be {low}..{high}, got {shown}")
    return value


def parse_command(msg: Mapping[str, Any]) -> Command:
    """The typed command of one decoded client frame, or `CommandError`."""
    action = msg.get("action")
    if action is None:
        raise CommandError(None, "action", "missing")
    if not isinstance(action, str):
        raise CommandError(None, "action", f"must be a string, got {type(action).__name__}")
    try:
        act = Action(action)
    except ValueError:
        raise CommandError(action, "action", f"unknown action {action!r}") from None
    match act:
        case Action.SUBSCRIBE | Action.UNSUBSCRIBE:
            return PubSubCommand(act, _str(msg, action, "pattern", 4096))
        case Action.SNAPSHOT:
            return Snapshot()
        case Action.QUEUE:
            count = _int(msg, action, "count", 1, MAX_QUEUE_COUNT) if "count" in msg else 1
            return QueueImage(_hex32(msg, action, "md5"), count)
        case Action.QCLEAR:
            return ClearQueue()
        case Action.OPEN:
            return OpenTray(_hex32(msg, action, "uid"))
        case Action.NAME:
            name = _str(msg, action, "name", MAX_NAME_LENGTH)
            if any(ch < " " for ch in name):
                raise CommandError(action, "name", "one line of text, no tabs")
            return NameBurner(_hex32(msg, action, "uid"), name)
        case Action.CANCEL:
            return CancelBurn(_hex32(msg, action, "uid"))
        case Action.COMMON_ONLY:
            uid = _hex32(msg, action, "uid")
            if "on" not in msg:
                raise CommandError(action, "on", "missing")
            on = msg["on"]
            if not isinstance(on, bool):
                raise CommandError(action, "on", f"must be true or false, got {on!r}")
            return CommonOnly(uid, on)
        case Action.REORDER:
            md5 = _hex32(msg, action, "md5")
            if "position" not in msg:
                raise CommandError(action, "position", "missing")
            return Reorder(md5, _int(msg, action, "position", 0, MAX_QUEUE_POSITION - 1))
        case Action.HISTORY:
            span = parse_span(action, msg["span"]) if "span" in msg else Span.MINUTE
            since = _int(msg, action, "since", 0, MAX_SINCE) if "since" in msg else 0
            return History(span, since)
    raise CommandError(action, "action", f"unknown action {action!r}")  # pragma: no cover


def reply(
    action: str | None, status: bool, *, error: str | None = None, result: Any = None
) -> dict[str, Any]:
    """The answer to one command."""
    out: dict[str, Any] = {"action": action, "status": status}
    if error is not None:
        out["error"] = error
    if result is not None:
        out["result"] = result
    return out


def expiring(expires_at: float) -> dict[str, Any]:
    """Pushed when the credential of this socket is about to expire (Unix seconds)."""
    return {"action": Push.EXPIRING.value, "expires_at": expires_at}


def closing(code: int, reason: str) -> dict[str, Any]:
    """Pushed right before the server closes the socket with `code`."""
    return {"action": Push.CLOSING.value, "code": code, "reason": reason}
