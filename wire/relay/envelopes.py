"""What travels between balancer and master: the actions, room requests and close codes, the
`RelayError` a bad frame raises, the envelopes (client→master, master→client, broadcast) with
their batches and the splice encoders of the hot path, and the join/leave requests."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

AUTH_TIMEOUT: Final = 10.0  # seconds a client has to send its auth frame
MAX_TOKEN_LENGTH: Final = 4096
MAX_ROOM_LENGTH: Final = 128
MAX_ID_LENGTH: Final = 128
MAX_BATCH: Final = 4096  # envelopes in one frame


class Action(enum.StrEnum):
    """Values of the `action` field this module reads or writes."""

    AUTH = "auth"
    REQ = "req"
    INIT = "init"


ACTIONS: tuple[str, ...] = tuple(a.value for a in Action)


class RequestType(enum.StrEnum):
    """Room requests the balancer synthesizes on the client's behalf."""

    JOIN = "join"
    LEAVE = "leave"


REQUEST_TYPES: tuple[str, ...] = tuple(t.value for t in RequestType)


class CloseCode(enum.IntEnum):
    """WebSocket close codes of the client socket and the balancer⇄master socket."""

    GOING_AWAY = 1001  # server draining or shutting down; reconnect elsewhere
    UNSUPPORTED_DATA = 1003  # frame is not JSON text
    POLICY_VIOLATION = 1008  # frame not allowed here (not auth first, forged join, …)
    TRY_AGAIN_LATER = 1013  # no master for the session, or the client read too slowly
    BAD_CREDENTIAL = 4001  # missing, malformed, unknown or expired token
    UNKNOWN_SESSION = 4002  # no such session (room)
    SESSION_UNAVAILABLE = 4003  # session suspended or unloaded
    AUTH_TIMEOUT = 4004  # no auth frame within AUTH_TIMEOUT seconds


CLOSE_CODES: tuple[CloseCode, ...] = tuple(CloseCode)


class RelayError(ValueError):
    """A malformed relay frame. `field` names the bad part, e.g. `envelope[2].room`.

    `close_code` is what a peer that received the frame should close with (1003 for non-JSON,
    1008 otherwise, 4001 for a bad token in an auth frame).
    """

    def __init__(
        self, field: str, message: str, close_code: CloseCode = CloseCode.POLICY_VIOLATION
    ) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message
        self.close_code = close_code


# --------------------------------------------------------------------------------------------
# JSON helpers

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
dumps = _ENCODER.encode


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RelayError(what, f"not JSON: {exc}", CloseCode.UNSUPPORTED_DATA) from None


def _dump_message(message: Mapping[str, Any], where: str) -> str:
    try:
        return dumps(message)
    except (TypeError, ValueError) as exc:
        raise RelayError(where, f"not JSON-serializable: {exc}") from None


def normalize_room(room: str) -> str:
    """The canonical spelling of a room id: rooms are case-insensitive, so fold them here only."""
    return room.casefold()


def text_of(value: object, where: str, limit: int) -> str:
    if not isinstance(value, str):
        raise RelayError(where, f"must be a string, got {type(value).__name__}")
    if not value:
        raise RelayError(where, "must not be empty")
    if len(value) > limit:
        raise RelayError(where, f"longer than {limit} characters")
    return value


def room_of(value: object, where: str) -> str:
    return normalize_room(text_of(value, where, MAX_ROOM_LENGTH))


def _message(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RelayError(where, f"must be a JSON object, got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------------------------
# Envelopes


@dataclass(frozen=True, slots=True)
class ClientEnvelope:
    """Balancer → master: a message from one client connection (`id`) in `room`."""

    token: str
    room: str
    id: str
    message: dict[str, Any]

    def __post_init__(self) -> None:
        text_of(self.token, "token", MAX_TOKEN_LENGTH)
        object.__setattr__(self, "room", room_of(self.room, "room"))
        text_of(self.id, "id", MAX_ID_LENGTH)
        _message(self.message, "message")


@dataclass(frozen=True, slots=True)
class MasterEnvelope:
    """Master → balancer: a message for one client connection."""

    room: str
    id: str
    message: dict[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "room", room_of(self.room, "room"))
        text_of(self.id, "id", MAX_ID_LENGTH)
        _message(self.message, "message")


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Master → balancer: a message for every client of `room` on that balancer."""

    room: str
    message: dict[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "room", room_of(self.room, "room"))
        _message(self.message, "message")


Envelope = ClientEnvelope | MasterEnvelope | Broadcast
ToBalancer = MasterEnvelope | Broadcast

_CLIENT_FIELDS = frozenset({"token", "room", "id", "message"})
_MASTER_FIELDS = frozenset({"room", "id", "message"})
_BROADCAST_FIELDS = frozenset({"room", "message"})


def _items(text: str | bytes) -> list[tuple[str, Any]]:
    """Split a frame into (field prefix, envelope) pairs: one object, or an array of them."""
    obj = loads(text, "frame")
    if isinstance(obj, dict):
        return [("", obj)]
    if not isinstance(obj, list):
        raise RelayError(
            "frame", f"must be an envelope object or an array, not {type(obj).__name__}"
        )
    if not obj:
        raise RelayError("frame", "empty batch")
    if len(obj) > MAX_BATCH:
        raise RelayError("frame", f"batch of {len(obj)} envelopes, at most {MAX_BATCH}")
    return [(f"envelope[{i}].", item) for i, item in enumerate(obj)]


def fields_of(
    obj: object, where: str, allowed: frozenset[str], required: Iterable[str]
) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise RelayError(
            where.rstrip(".") or "frame", f"must be an object, got {type(obj).__name__}"
        )
    for name in required:
        if name not in obj:
            raise RelayError(where + name, "missing")
    if len(obj) > len(allowed) or not allowed.issuperset(obj):
        extra = sorted(set(obj) - allowed)
        raise RelayError(where + extra[0], f"unexpected field(s) {extra}")
    return obj


def _client_envelope(obj: object, where: str) -> ClientEnvelope:
    d = fields_of(obj, where, _CLIENT_FIELDS, ("token", "room", "id", "message"))
    try:
        return ClientEnvelope(d["token"], d["room"], d["id"], d["message"])
    except RelayError as exc:
        raise RelayError(where + exc.field, exc.reason) from None


def _to_balancer(obj: object, where: str) -> ToBalancer:
    allowed = _MASTER_FIELDS if isinstance(obj, dict) and "id" in obj else _BROADCAST_FIELDS
    d = fields_of(obj, where, allowed, ("room", "message"))
    try:
        if "id" in d:
            return MasterEnvelope(d["room"], d["id"], d["message"])
        return Broadcast(d["room"], d["message"])
    except RelayError as exc:
        raise RelayError(where + exc.field, exc.reason) from None


def parse_from_client(text: str | bytes) -> tuple[ClientEnvelope, ...]:
    """Parse a balancer → master frame: one client envelope or an array of them."""
    return tuple(_client_envelope(obj, where) for where, obj in _items(text))


def parse_from_master(text: str | bytes) -> tuple[ToBalancer, ...]:
    """Parse a master → balancer frame: envelopes and broadcasts, alone or in an array."""
    return tuple(_to_balancer(obj, where) for where, obj in _items(text))


def encode(envelope: Envelope | Iterable[Envelope]) -> str:
    """JSON text of one envelope, or of a batch (a JSON array) when given several."""
    if isinstance(envelope, ClientEnvelope | MasterEnvelope | Broadcast):
        return _encode_one(envelope)
    return encode_batch(_encode_one(e) for e in envelope)


def _encode_one(e: Envelope) -> str:
    # Same key order and separators as the splice encoders, so both give identical text.
    if isinstance(e, ClientEnvelope):
        return encode_from_client_json(e.token, e.room, e.id, _dump_message(e.message, "message"))
    if isinstance(e, MasterEnvelope):
        return encode_to_client_json(e.room, e.id, _dump_message(e.message, "message"))
    return encode_broadcast_json(e.room, _dump_message(e.message, "message"))


def encode_batch(frames: Iterable[str]) -> str:
    """One frame holding several already-encoded envelopes (a JSON array)."""
    parts = list(frames)
    if not parts:
        raise RelayError("frame", "empty batch")
    if len(parts) > MAX_BATCH:
        raise RelayError("frame", f"batch of {len(parts)} envelopes, at most {MAX_BATCH}")
    return "[" + ",".join(parts) + "]"


# The splice encoders trust `message_json` to be the text of exactly one JSON object (from
# json.dumps, or a client frame `check_client_frame` accepted): it is not parsed again.


def encode_from_client_json(token: str, room: str, conn_id: str, message_json: str) -> str:
    """Balancer → master envelope around already-serialized message text."""
    return (
        f'{{"token":{dumps(text_of(token, "token", MAX_TOKEN_LENGTH))},'
        f'"room":{dumps(room_of(room, "room"))},'
        f'"id":{dumps(text_of(conn_id, "id", MAX_ID_LENGTH))},'
        f'"message":{message_json}}}'
    )


def encode_to_client_json(room: str, conn_id: str, message_json: str) -> str:
    """Master → balancer envelope for one client around already-serialized message text."""
    return (
        f'{{"room":{dumps(room_of(room, "room"))},'
        f'"id":{dumps(text_of(conn_id, "id", MAX_ID_LENGTH))},"message":{message_json}}}'
    )


def encode_broadcast_json(room: str, message_json: str) -> str:
    """Master → balancer broadcast to a whole room around already-serialized message text."""
    return f'{{"room":{dumps(room_of(room, "room"))},"message":{message_json}}}'


def check_client_frame(text: str | bytes) -> dict[str, Any]:
    """Validate a frame received from a client: one JSON object. Returns it decoded.

    Splicing unchecked client text into an envelope would let `{…},"id":"other"` forge fields,
    so the balancer checks every frame before it relays the original text.
    """
    obj = loads(text, "message")
    return _message(obj, "message")


# --------------------------------------------------------------------------------------------
# Join / leave requests


def request_message(kind: RequestType) -> dict[str, Any]:
    """The `req` message the balancer sends for a client joining or leaving a room."""
    return {"action": Action.REQ.value, "request": {"type": kind.value}}


def encode_join(token: str, room: str, conn_id: str) -> str:
    return encode_from_client_json(token, room, conn_id, dumps(request_message(RequestType.JOIN)))


def encode_leave(token: str, room: str, conn_id: str) -> str:
    return encode_from_client_json(token, room, conn_id, dumps(request_message(RequestType.LEAVE)))


def room_request(message: Mapping[str, Any]) -> RequestType | None:
    """The join/leave request a message carries, or None for any other message."""
    if message.get("action") != Action.REQ:
        return None
    request = message.get("request")
    if not isinstance(request, dict):
        return None
    kind = request.get("type")
    if kind == RequestType.JOIN:
        return RequestType.JOIN
    if kind == RequestType.LEAVE:
        return RequestType.LEAVE
    return None
