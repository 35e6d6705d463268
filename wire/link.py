"""The token-merge link between a Pi appliance and the coordinator (seed 003), as a sans-I/O core.

An appliance agent keeps one long-lived link to the coordinator over a WebSocket at `/link`; this
module is the whole protocol of that link and nothing else: no sockets, no asyncio, no clock
(every call that needs the time takes a float `now`). A `LinkNode` is one end of a link, in the
client role (the agent) or the server role (the coordinator); `LinkServer` is the coordinator's
registry of server nodes, keyed by merged token, that gives every new socket a temporary node,
hands the socket over to the old node when a client resumes, refuses (close code 1008) a socket
that presents the token of a node whose socket is still open, and forgets nodes whose socket has
been closed for longer than the grace period. Sockets are opaque ids chosen by the shell.
Text frames go in through `receive()`, which returns typed events (frozen dataclasses, a
`ProtocolViolation` for anything malformed or out of place, never an exception); frames to send
come back from `start()`, `send()`, `disconnect()` and `pending_ack()`, and frames that a
received frame provokes (a confirm, resends, a bare ack) wait in one FIFO outbox that
`data_to_send()` drains; every method returning frames drains that same outbox, so order is
kept. Handshake, confirm and formal-disconnect frames hold only a token (32 lowercase hex
chars, or 64 for a merged token, the two tokens sorted and concatenated); application frames
are JSON `{"s": seq, "a": ack, "m": payload}` and a bare ack is `{"a": ack}`. On top of the
seed, every message is numbered and kept until the peer acks it (cumulatively, piggybacked on
data, or as a bare ack after `ack_every` unacked receipts or when `pending_ack()` is asked), and
resent after a resume; the receiver drops duplicates, so across any number of drops within the
grace period each message is delivered exactly once and in order. When the grace period has
passed, the seed makes the resume a new connection: the client's old merged token stands in for
its local token, and the new merged token is the first half of the old one joined with the
server's fresh token (the seed's `AAAABBBB` + `DDDD` → `AAAADDDD`), so it stays 64 chars. The
client's unacked messages carry over, renumbered from 1, because an agent's reports must not be
lost; the old server node and its received state are gone, so those in-flight messages are
delivered at least once (the coordinator may see one again), while the server's own unacked
messages are handed back to the coordinator in the `Disconnected` event of the expiry.
"""

from __future__ import annotations

import enum
import json
import re
import secrets
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeAlias, TypeVar

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


# --------------------------------------------------------------------------------------------
# Errors for local misuse (untrusted input never raises: it becomes a ProtocolViolation event)


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


# --------------------------------------------------------------------------------------------
# One end of a link


@dataclass(slots=True)
class _Pending:
    seq: int
    payload: JsonValue
    encoded: str


class LinkNode:
    """One end of one link: the agent's (client role) or one of the coordinator's (server role).

    The client object lives for the whole life of the agent's link, across sockets: call
    `start()` on each new socket, `connection_lost(now)` when a socket closes. Server nodes are
    normally made and driven by `LinkServer`.
    """

    def __init__(
        self,
        role: Role,
        *,
        token_factory: Callable[[], str] = new_token,
        max_unacked: int = DEFAULT_MAX_UNACKED,
        ack_every: int = DEFAULT_ACK_EVERY,
    ) -> None:
        self.role = role
        self.max_unacked = _positive("max_unacked", max_unacked)
        self.ack_every = _positive("ack_every", ack_every)
        self._state = State.OPEN
        # The token this end presents in a handshake; a resuming client presents its merged one.
        self._local = _checked_token(token_factory())
        self._remote: str | None = None
        self._token: str | None = None
        self._lost_at: float | None = None
        self._outbox: list[str] = []
        self._unacked: deque[_Pending] = deque()
        self._next_seq = 1
        self._transmitted = 0  # highest seq put on a wire; acks above it are impossible
        self._received = 0  # highest in-order seq delivered
        self._acked_out = 0  # highest ack value we have sent
        self._ack_due = False  # duplicates arrived: the peer has not seen our ack

    # ---- read-only views

    @property
    def state(self) -> State:
        return self._state

    @property
    def token(self) -> str | None:
        """The merged link token, once the link has been connected."""
        return self._token

    @property
    def local_token(self) -> str:
        return self._local

    @property
    def lost_at(self) -> float | None:
        """When the last socket closed (`now` passed to `connection_lost`), if it has."""
        return self._lost_at

    @property
    def unacked(self) -> tuple[JsonValue, ...]:
        """Messages sent (or queued) that the peer has not acknowledged yet, oldest first."""
        return tuple(p.payload for p in self._unacked)

    # ---- calls from the shell / application

    def start(self) -> list[str]:
        """Begin the handshake on a freshly opened socket; returns the frames to send."""
        if self._state is State.OPEN:
            self._outbox.append(self._local)
        elif self._state is State.RECONNECTING and self.role is Role.CLIENT:
            pass  # the seed has the client wait for the server's fresh token first
        elif self._state is State.DISCONNECTED:
            raise LinkClosed("the link was disconnected; make a new node")
        else:
            raise LinkError(
                f"start() in state {self._state.name}: call connection_lost() for the old "
                "socket first (a server node resumes through LinkServer)"
            )
        return self.data_to_send()

    def send(self, payload: JsonValue) -> list[str]:
        """Queue one message; returns its frame at once when connected, else it waits.

        Raises `UnackedOverflow` when `max_unacked` messages await an ack, `LinkClosed` after a
        disconnect, `LinkError` for a payload that is not JSON.
        """
        if self._state is State.DISCONNECTED:
            raise LinkClosed("the link was disconnected; nothing can be sent on it")
        if len(self._unacked) >= self.max_unacked:
            raise UnackedOverflow(self.max_unacked)
        try:
            encoded = json.dumps(
                payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            )
        except (TypeError, ValueError) as exc:
            raise LinkError(f"payload is not JSON: {exc}") from exc
        pending = _Pending(self._next_seq, payload, encoded)
        self._next_seq += 1
        self._unacked.append(pending)
        if self._state is State.CONNECTED:
            self._transmit(pending)
        return self.data_to_send()

    def pending_ack(self) -> list[str]:
        """A bare ack to send if something received is not acknowledged yet (call when idle)."""
        if self._state is State.CONNECTED and (self._received > self._acked_out or self._ack_due):
            self._queue_ack()
        return self.data_to_send()

    def disconnect(self) -> list[str]:
        """End the link for good; returns the formal-disconnect frame when there is a socket."""
        if self._state is State.CONNECTED:
            assert self._token is not None  # noqa: S101 - CONNECTED always has a token
            self._outbox.append(self._token)
        self._state = State.DISCONNECTED
        return self.data_to_send()

    def connection_lost(self, now: float) -> None:
        """The socket closed. Frames not yet sent are dropped; unacked messages are kept."""
        self._outbox.clear()
        if self._state is State.CONNECTED:
            self._state = State.RECONNECTING
            self._lost_at = now
        elif self._state is State.PRECONNECTED:
            # A resume attempt goes back to waiting; a first handshake starts over.
            self._state = State.RECONNECTING if self._token is not None else State.OPEN
            self._remote = None

    def data_to_send(self) -> list[str]:
        """Drain the outbox: frames provoked by received frames, in order."""
        out, self._outbox = self._outbox, []
        return out

    def receive(self, frame: str) -> list[Event]:
        """Feed one received text frame; returns what happened. Never raises on bad input."""
        parsed = _parse(frame)
        if isinstance(parsed, ProtocolViolation):
            return [parsed]
        if self._state is State.DISCONNECTED:
            return [ProtocolViolation("the link is disconnected; frame ignored")]
        if self._state is State.CONNECTED:
            return self._receive_connected(parsed)
        if not isinstance(parsed, _Token):
            return [
                ProtocolViolation(f"data before the handshake finished (state {self._state.name})")
            ]
        return self._receive_token(parsed.value)

    # ---- calls from LinkServer

    def resume(self) -> list[Event]:
        """Server role: take over a new socket whose client presented our merged token."""
        if self.role is not Role.SERVER or self._state is not State.RECONNECTING:
            raise LinkError(f"only a RECONNECTING server node resumes (this is {self._state.name})")
        assert self._token is not None  # noqa: S101 - RECONNECTING always has a token
        self._outbox.append(self._token)
        return self._connected(resumed=True)

    def expire(self) -> Disconnected:
        """The grace period passed with no resume: the link is over, unacked messages returned."""
        self._state = State.DISCONNECTED
        self._outbox.clear()
        return Disconnected(self._token or self._local, formal=False, unacked=self.unacked)

    # ---- internals

    def _receive_token(self, token: str) -> list[Event]:
        if self._state is State.OPEN:
            return self._on_handshake(token)
        if self._state is State.RECONNECTING:
            if self.role is Role.SERVER:
                return [ProtocolViolation("a server node without a socket cannot receive")]
            if not _TOKEN.fullmatch(token):
                return [ProtocolViolation("expected the server's fresh 32-char token")]
            assert self._token is not None  # noqa: S101 - RECONNECTING always has a token
            self._remote = token
            self._local = self._token
            self._state = State.PRECONNECTED
            self._outbox.append(self._token)
            return []
        # PRECONNECTED
        if token == self._remote:
            return self._on_confirm()
        if self.role is Role.CLIENT and token == self._token:
            # The server's old node took our new socket over.
            return self._connected(resumed=True)
        return [ProtocolViolation("unexpected token while confirming the handshake")]

    def _on_handshake(self, token: str) -> list[Event]:
        if self.role is Role.CLIENT and not _TOKEN.fullmatch(token):
            return [ProtocolViolation("the server's handshake token must be 32 characters")]
        if token == self._local:
            return [ProtocolViolation("the peer presented our own token")]
        self._remote = token
        self._state = State.PRECONNECTED
        self._outbox.append(self._local)
        return []

    def _on_confirm(self) -> list[Event]:
        assert self._remote is not None  # noqa: S101 - PRECONNECTED always has a remote token
        if self.role is Role.CLIENT and self._token is not None:
            # The server answered our old merged token with its fresh token again: the old
            # node is gone, so this is a new link. Our old token plays our local token.
            self._outbox.append(self._local)
            self._renumber()
        self._token = merge_tokens(self._local, self._remote)
        return self._connected(resumed=False)

    def _renumber(self) -> None:
        """Carry unacked messages over to a new link, numbered from 1 (at-least-once)."""
        for i, pending in enumerate(self._unacked, start=1):
            pending.seq = i
        self._next_seq = len(self._unacked) + 1
        self._transmitted = self._received = self._acked_out = 0
        self._ack_due = False

    def _connected(self, *, resumed: bool) -> list[Event]:
        assert self._token is not None  # noqa: S101 - set by the caller
        self._state = State.CONNECTED
        self._lost_at = None
        self._remote = None
        for pending in self._unacked:
            self._transmit(pending)
        if resumed and not self._unacked and self._received:
            # Tell the peer at once what arrived, so it resends only what is missing.
            self._queue_ack()
        return [Connected(self._token, resumed)]

    def _transmit(self, pending: _Pending) -> None:
        self._outbox.append(f'{{"s":{pending.seq},"a":{self._received},"m":{pending.encoded}}}')
        self._transmitted = max(self._transmitted, pending.seq)
        self._acked_out = self._received
        self._ack_due = False

    def _queue_ack(self) -> None:
        self._outbox.append(f'{{"a":{self._received}}}')
        self._acked_out = self._received
        self._ack_due = False

    def _receive_connected(self, parsed: _Token | _Data | _Ack) -> list[Event]:
        if isinstance(parsed, _Token):
            if parsed.value == self._token:
                self._state = State.DISCONNECTED
                self._outbox.clear()
                return [Disconnected(parsed.value, formal=True, unacked=self.unacked)]
            return [ProtocolViolation("a token that is not this link's while connected")]
        if parsed.ack > self._transmitted:
            return [
                ProtocolViolation(
                    f"ack {parsed.ack} for a message never sent (last sent {self._transmitted})"
                )
            ]
        while self._unacked and self._unacked[0].seq <= parsed.ack:
            self._unacked.popleft()
        if isinstance(parsed, _Ack):
            return []
        events: list[Event] = []
        if parsed.seq <= self._received:
            self._ack_due = True  # a resend of something we had; drop it
        elif parsed.seq != self._received + 1:
            return [
                ProtocolViolation(f"sequence gap: expected {self._received + 1}, got {parsed.seq}")
            ]
        else:
            self._received = parsed.seq
            events.append(Message(parsed.payload))
        if self._received - self._acked_out >= self.ack_every:
            self._queue_ack()
        return events


# --------------------------------------------------------------------------------------------
# The coordinator's registry of server nodes

SocketT = TypeVar("SocketT", bound=Hashable)


class Outbound(NamedTuple, Generic[SocketT]):
    """Frames for the socket a link currently owns (`socket` is None while it has none)."""

    socket: SocketT | None
    frames: list[str]


@dataclass(slots=True)
class _Handshaking:
    node: LinkNode
    peer: str | None


@dataclass(slots=True)
class _Link(Generic[SocketT]):
    node: LinkNode
    peer: str | None
    socket: SocketT | None


class LinkServer(Generic[SocketT]):
    """Every server-side link of one coordinator, keyed by merged token.

    `peer` (optional, on `accept`) names who opened the socket, e.g. the appliance id of its
    Bearer credential; a link may only be resumed by the same peer that made it.
    """

    def __init__(
        self,
        *,
        grace: float = DEFAULT_GRACE,
        token_factory: Callable[[], str] = new_token,
        max_unacked: int = DEFAULT_MAX_UNACKED,
        ack_every: int = DEFAULT_ACK_EVERY,
    ) -> None:
        if grace < 0:
            raise ValueError(f"grace must be >= 0 seconds, got {grace}")
        self.grace = grace
        self._max_unacked = max_unacked
        self._ack_every = ack_every
        self._token_factory = token_factory
        self._handshaking: dict[SocketT, _Handshaking] = {}
        self._links: dict[str, _Link[SocketT]] = {}
        self._by_socket: dict[SocketT, str] = {}

    # ---- views

    def link(self, token: str) -> LinkNode:
        """The node of a live (CONNECTED or RECONNECTING) link."""
        try:
            return self._links[token].node
        except KeyError:
            raise LinkError(
                "no link with that token (never made, disconnected or expired)"
            ) from None

    def node_on(self, socket: SocketT) -> LinkNode | None:
        """The node that owns a socket now: a temporary one while handshaking, else the link's."""
        if socket in self._handshaking:
            return self._handshaking[socket].node
        token = self._by_socket.get(socket)
        return None if token is None else self._links[token].node

    def socket_of(self, token: str) -> SocketT | None:
        return self._links[token].socket if token in self._links else None

    def tokens(self) -> Iterator[str]:
        return iter(list(self._links))

    @property
    def handshaking(self) -> int:
        """How many sockets still hold a temporary node (no link yet)."""
        return len(self._handshaking)

    # ---- calls from the shell

    def accept(self, socket: SocketT, *, peer: str | None = None) -> list[str]:
        """A new socket was opened: give it a temporary node; returns the frames to send on it."""
        if socket in self._handshaking or socket in self._by_socket:
            raise LinkError("socket id already in use; call connection_lost() for it first")
        node = LinkNode(
            Role.SERVER,
            token_factory=self._token_factory,
            max_unacked=self._max_unacked,
            ack_every=self._ack_every,
        )
        self._handshaking[socket] = _Handshaking(node, peer)
        return node.start()

    def receive(self, socket: SocketT, frame: str, now: float) -> list[Event]:
        """A frame arrived on `socket`; drain `data_to_send(socket)` afterwards."""
        token = self._by_socket.get(socket)
        if token is not None:
            link_events = self._links[token].node.receive(frame)
            if any(isinstance(e, Disconnected) for e in link_events):
                self._forget(token)
            return link_events
        pending = self._handshaking.get(socket)
        if pending is None:
            return [ProtocolViolation("frame on a socket that is not open (refused or closed)")]
        events: list[Event] = []
        if pending.node.state is State.OPEN and _MERGED.fullmatch(frame):
            events, took_over = self._try_resume(socket, pending, frame, now)
            if took_over:
                return events
        events.extend(pending.node.receive(frame))
        if pending.node.state is State.CONNECTED:
            del self._handshaking[socket]
            new_token_ = pending.node.token
            assert new_token_ is not None  # noqa: S101 - CONNECTED always has a token
            self._links[new_token_] = _Link(pending.node, pending.peer, socket)
            self._by_socket[socket] = new_token_
        return events

    def data_to_send(self, socket: SocketT) -> list[str]:
        node = self.node_on(socket)
        return [] if node is None else node.data_to_send()

    def connection_lost(self, socket: SocketT, now: float) -> None:
        """The socket closed: a temporary node goes away, a link waits `grace` for a resume."""
        if self._handshaking.pop(socket, None) is not None:
            return
        token = self._by_socket.pop(socket, None)
        if token is not None:
            link = self._links[token]
            link.socket = None
            link.node.connection_lost(now)

    def send(self, token: str, payload: JsonValue) -> Outbound[SocketT]:
        """Send to one appliance; queued (and resent later) while its socket is gone."""
        frames = self.link(token).send(payload)
        return Outbound(self.socket_of(token), frames)

    def disconnect(self, token: str) -> Outbound[SocketT]:
        """Formally end a link; send the frames, then close the socket."""
        socket = self.socket_of(token)
        frames = self.link(token).disconnect()
        self._forget(token)
        return Outbound(socket, frames)

    def pending_acks(self) -> list[tuple[SocketT, str]]:
        """Bare acks due on every connected link (call on an idle timer)."""
        out: list[tuple[SocketT, str]] = []
        for link in self._links.values():
            if link.socket is not None:
                out.extend((link.socket, f) for f in link.node.pending_ack())
        return out

    def expire(self, now: float) -> list[Disconnected]:
        """Forget links whose socket closed more than `grace` seconds before `now`."""
        return [self._expire(t) for t in list(self._links) if self._expired(t, now)]

    # ---- internals

    def _expired(self, token: str, now: float) -> bool:
        lost_at = self._links[token].node.lost_at
        return lost_at is not None and now - lost_at > self.grace

    def _expire(self, token: str) -> Disconnected:
        node = self._links[token].node
        self._forget(token)
        return node.expire()

    def _forget(self, token: str) -> None:
        link = self._links.pop(token)
        if link.socket is not None:
            self._by_socket.pop(link.socket, None)

    def _try_resume(
        self, socket: SocketT, pending: _Handshaking, token: str, now: float
    ) -> tuple[list[Event], bool]:
        """A client presented a merged token: resume its link, refuse, or fall through."""
        events: list[Event] = []
        if token in self._links and self._expired(token, now):
            events.append(self._expire(token))
        link = self._links.get(token)
        if link is None:
            return events, False  # unknown or expired: the seed's new connection
        if link.peer != pending.peer:
            reason = "the link belongs to another peer"
        elif link.socket is not None:
            reason = "the link is still connected on another socket"
        else:
            del self._handshaking[socket]
            link.socket = socket
            self._by_socket[socket] = token
            return link.node.resume(), True
        del self._handshaking[socket]
        return [Refused(token, reason)], True
