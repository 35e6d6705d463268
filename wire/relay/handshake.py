"""A client's first frames: its `auth` frame, the master's `init`, and `ClientHandshake`, the
per-connection state machine that turns each received frame into a typed decision."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from wire.relay.envelopes import (
    AUTH_TIMEOUT,
    MAX_ID_LENGTH,
    MAX_TOKEN_LENGTH,
    Action,
    CloseCode,
    RelayError,
    check_client_frame,
    dumps,
    encode_from_client_json,
    encode_join,
    encode_leave,
    fields_of,
    loads,
    room_of,
    room_request,
    text_of,
)

# --------------------------------------------------------------------------------------------
# Client auth and the master's init


def parse_auth(frame: str | bytes) -> str:
    """The token of a client's first frame `{"action":"auth","token":…}`.

    Binary or non-JSON → RelayError with 1003; anything but an auth object → 1008; a missing,
    empty, non-string or oversized token → 4001.
    """
    if isinstance(frame, bytes | bytearray):
        raise RelayError("frame", "binary frames are not supported", CloseCode.UNSUPPORTED_DATA)
    obj = loads(frame, "frame")
    if not isinstance(obj, dict):
        raise RelayError("frame", f"must be a JSON object, got {type(obj).__name__}")
    if obj.get("action") != Action.AUTH:
        raise RelayError("action", f"first frame must be 'auth', got {obj.get('action')!r}")
    if "token" not in obj:
        raise RelayError("token", "missing", CloseCode.BAD_CREDENTIAL)
    try:
        return text_of(obj["token"], "token", MAX_TOKEN_LENGTH)
    except RelayError as exc:
        exc.close_code = CloseCode.BAD_CREDENTIAL
        raise


def encode_auth(token: str) -> str:
    return dumps({"action": Action.AUTH.value, "token": text_of(token, "token", MAX_TOKEN_LENGTH)})


@dataclass(frozen=True, slots=True)
class Init:
    """Master → balancer, first frame: the master's HTTP port and the token proving who it is."""

    port: int
    token: str

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or isinstance(self.port, bool):
            raise RelayError("port", f"must be an integer, got {type(self.port).__name__}")
        if not 1 <= self.port <= 65535:
            raise RelayError("port", f"must be 1..65535, got {self.port}")
        text_of(self.token, "token", MAX_TOKEN_LENGTH)


def parse_init(text: str | bytes) -> Init:
    obj = loads(text, "frame")
    if not isinstance(obj, dict):
        raise RelayError("frame", f"must be a JSON object, got {type(obj).__name__}")
    if obj.get("action") != Action.INIT:
        raise RelayError("action", f"first master frame must be 'init', got {obj.get('action')!r}")
    d = fields_of(obj, "", frozenset({"action", "port", "token"}), ("port", "token"))
    return Init(d["port"], d["token"])


def encode_init(init: Init) -> str:
    return dumps({"action": Action.INIT.value, "port": init.port, "token": init.token})


# --------------------------------------------------------------------------------------------
# Per-client handshake


class HandshakeState(enum.Enum):
    WAITING_FOR_AUTH = "waiting-for-auth"
    AUTHENTICATED = "authenticated"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The auth frame arrived: check `token`, then send `ClientHandshake.join()` to the master."""

    token: str


@dataclass(frozen=True, slots=True)
class Forward:
    """A client message, wrapped and ready to send to the master as is."""

    envelope: str
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Close:
    """Close the client socket with this code and reason."""

    code: CloseCode
    reason: str


Event = Authenticated | Forward | Close


class ClientHandshake:
    """The balancer's view of one client socket: auth first, then relayed frames.

    The shell owns the clock: it passes `now` (a monotonic time) in and must call
    `check_deadline` or close by `deadline` itself; this object never reads the time.
    """

    def __init__(
        self, room: str, conn_id: str, *, now: float, timeout: float = AUTH_TIMEOUT
    ) -> None:
        self.room = room_of(room, "room")
        self.conn_id = text_of(conn_id, "id", MAX_ID_LENGTH)
        self.timeout = timeout
        self.deadline = now + timeout
        self.state = HandshakeState.WAITING_FOR_AUTH
        self.token: str | None = None
        self.closed_with: Close | None = None
        self._joined = False

    def feed(self, frame: str | bytes) -> Event:
        """Handle one received WebSocket message (text → str, binary → bytes)."""
        if self.closed_with is not None:
            return self.closed_with
        if self.state is HandshakeState.WAITING_FOR_AUTH:
            try:
                self.token = parse_auth(frame)
            except RelayError as exc:
                return self.close(exc.close_code, str(exc))
            self.state = HandshakeState.AUTHENTICATED
            return Authenticated(self.token)
        assert self.token is not None  # noqa: S101 - AUTHENTICATED always holds a token
        return self._relay(self.token, frame)

    def _relay(self, token: str, frame: str | bytes) -> Event:
        if not isinstance(frame, str):
            return self.close(CloseCode.UNSUPPORTED_DATA, "binary frames are not supported")
        try:
            message = check_client_frame(frame)
        except RelayError as exc:
            return self.close(exc.close_code, str(exc))
        action = message.get("action")
        if action == Action.AUTH:
            return self.close(CloseCode.POLICY_VIOLATION, "already authenticated")
        if room_request(message) is not None:
            # Only the balancer may speak for joins and leaves, or a client could fake presence.
            return self.close(CloseCode.POLICY_VIOLATION, "join/leave requests are not allowed")
        return Forward(encode_from_client_json(token, self.room, self.conn_id, frame), message)

    def check_deadline(self, now: float) -> Close | None:
        """A 4004 close decision once `deadline` passed without an auth frame, else None."""
        if self.state is HandshakeState.WAITING_FOR_AUTH and now >= self.deadline:
            return self.close(CloseCode.AUTH_TIMEOUT, f"no auth frame within {self.timeout:g} s")
        return None

    def close(self, code: CloseCode, reason: str) -> Close:
        """Record a close decision (e.g. 4001 after the token check failed) and return it."""
        if self.closed_with is None:
            self.closed_with = Close(code, reason)
            self.state = HandshakeState.CLOSED
        return self.closed_with

    def join(self) -> str:
        """The join request envelope for the master; only after `Authenticated`."""
        if self.token is None or self.closed_with is not None:
            raise RelayError("state", f"cannot join in state {self.state.value}")
        self._joined = True
        return encode_join(self.token, self.room, self.conn_id)

    def leave(self) -> str | None:
        """The leave request envelope once the socket is gone, or None if it never joined."""
        if self.token is None or not self._joined:
            return None
        return encode_leave(self.token, self.room, self.conn_id)
