"""The pub/sub frames: the actions, `PubSubError` with the `status:false` reply it stands for,
subscribe/unsubscribe requests and published messages, parsed and encoded."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class Action(enum.StrEnum):
    """Values of the `action` field of pub/sub frames."""

    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    MESSAGE = "message"
    ERROR = "error"


ACTIONS: tuple[str, ...] = tuple(a.value for a in Action)


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
