"""`LinkNode`: one end of one link, client or server role, with numbering, acks and resends."""

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from wire.link.frames import (
    _TOKEN,
    DEFAULT_ACK_EVERY,
    DEFAULT_MAX_UNACKED,
    Connected,
    Disconnected,
    Event,
    JsonValue,
    LinkClosed,
    LinkError,
    Message,
    ProtocolViolation,
    Role,
    State,
    UnackedOverflow,
    _Ack,
    _checked_token,
    _Data,
    _parse,
    _positive,
    _Token,
    merge_tokens,
    new_token,
)


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
