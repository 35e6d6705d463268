"""`LinkServer`: the coordinator's registry of server nodes keyed by merged token, handing a
socket to the old node on resume and forgetting nodes whose grace period has passed."""

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

from wire.link.frames import (
    _MERGED,
    DEFAULT_ACK_EVERY,
    DEFAULT_GRACE,
    DEFAULT_MAX_UNACKED,
    Disconnected,
    Event,
    JsonValue,
    LinkError,
    ProtocolViolation,
    Refused,
    Role,
    State,
    new_token,
)
from wire.link.node import LinkNode

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
