"""The token-merge link driven back to back: a LinkServer and a client node over a cuttable pipe."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire.link import (
    CLOSE_STALE_SOCKET,
    FRAMES,
    STATES,
    Connected,
    Disconnected,
    Event,
    JsonValue,
    LinkClosed,
    LinkError,
    LinkNode,
    LinkServer,
    Message,
    ProtocolViolation,
    Refused,
    Role,
    State,
    UnackedOverflow,
    merge_tokens,
    new_token,
)

# The seed's tokens: the server is AAAA, the client BBBB, then CCCC and DDDD for later sockets.
A, B, C, D, E = ("a" * 32, "b" * 32, "c" * 32, "d" * 32, "e" * 32)


def tokens(*values: str) -> Callable[[], str]:
    it = iter(values)
    return lambda: next(it)


def counter_tokens() -> Callable[[], str]:
    n = iter(range(1, 10_000))
    return lambda: f"{next(n):032x}"


class Pipe:
    """Both machines and one socket at a time between them; a cut loses what is in flight.

    `stale` is a socket the client has given up on but the server has not noticed closing yet.
    """

    def __init__(
        self,
        *,
        grace: float = 120.0,
        server_tokens: Callable[[], str] | None = None,
        client_token: str | None = None,
        max_unacked: int = 10_000,
        ack_every: int = 16,
        peer: str | None = None,
    ) -> None:
        self.server: LinkServer[int] = LinkServer(
            grace=grace,
            token_factory=server_tokens or counter_tokens(),
            ack_every=ack_every,
        )
        self.client = LinkNode(
            Role.CLIENT,
            token_factory=(lambda: client_token) if client_token else new_token,
            max_unacked=max_unacked,
            ack_every=ack_every,
        )
        self.peer = peer
        self.now = 0.0
        self.sock: int | None = None
        self.stale: int | None = None
        self._next_sock = 0
        self.to_server: deque[str] = deque()
        self.to_client: deque[str] = deque()
        self.server_events: list[Event] = []
        self.client_events: list[Event] = []

    # ---- the shells

    def open_socket(self) -> int:
        assert self.sock is None
        self._next_sock += 1
        self.sock = self._next_sock
        self.to_server.clear()
        self.to_client.clear()
        self.to_client.extend(self.server.accept(self.sock, peer=self.peer))
        self.to_server.extend(self.client.start())
        return self.sock

    def deliver_to_server(self) -> bool:
        if not self.to_server or self.sock is None:
            return False
        events = self.server.receive(self.sock, self.to_server.popleft(), self.now)
        self.server_events.extend(events)
        self.to_client.extend(self.server.data_to_send(self.sock))
        if any(isinstance(e, Refused) for e in events):
            self.close(server_notices=True)  # the shell closes the socket with 1008
        return True

    def deliver_to_client(self) -> bool:
        if not self.to_client or self.sock is None:
            return False
        self.client_events.extend(self.client.receive(self.to_client.popleft()))
        self.to_server.extend(self.client.data_to_send())
        return True

    def pump(self) -> None:
        for _ in range(100_000):
            if not (self.deliver_to_server() or self.deliver_to_client()):
                return
        raise AssertionError("the link never went quiet")

    def close(self, *, server_notices: bool = True) -> None:
        if self.sock is None:
            return
        self.client.connection_lost(self.now)
        if server_notices:
            self.server.connection_lost(self.sock, self.now)
        else:
            self.stale = self.sock
        self.sock = None
        self.to_server.clear()
        self.to_client.clear()

    def server_notices(self) -> None:
        if self.stale is not None:
            self.server.connection_lost(self.stale, self.now)
            self.stale = None

    def client_send(self, payload: JsonValue) -> None:
        frames = self.client.send(payload)
        if self.sock is None:
            assert frames == []
        self.to_server.extend(frames)

    def server_send(self, token: str, payload: JsonValue) -> None:
        out = self.server.send(token, payload)
        if out.socket is not None and out.socket == self.sock:
            self.to_client.extend(out.frames)

    def acks(self) -> None:
        self.to_server.extend(self.client.pending_ack())
        for sock, frame in self.server.pending_acks():
            if sock == self.sock:
                self.to_client.append(frame)

    def connect(self) -> str:
        self.open_socket()
        self.pump()
        assert self.client.state is State.CONNECTED
        assert self.client.token is not None
        return self.client.token

    # ---- what each side got

    def received_by_server(self) -> list[JsonValue]:
        return [e.payload for e in self.server_events if isinstance(e, Message)]

    def received_by_client(self) -> list[JsonValue]:
        return [e.payload for e in self.client_events if isinstance(e, Message)]


def violations(events: list[Event]) -> list[str]:
    return [e.reason for e in events if isinstance(e, ProtocolViolation)]


# --------------------------------------------------------------------------------------------
# The seed's four scenarios


def test_connect_follows_the_seed_and_merges_sorted_tokens() -> None:
    pipe = Pipe(server_tokens=tokens(A), client_token=B)
    sock = pipe.open_socket()
    # Both send their local token first.
    assert list(pipe.to_server) == [B]
    assert list(pipe.to_client) == [A]
    pipe.deliver_to_client()
    pipe.deliver_to_server()
    server_node = pipe.server.node_on(sock)
    assert server_node is not None
    assert (pipe.client.state, server_node.state) == (State.PRECONNECTED, State.PRECONNECTED)
    # Both resend their local token to confirm.
    assert list(pipe.to_server) == [B]
    assert list(pipe.to_client) == [A]
    pipe.pump()
    assert pipe.client.state is State.CONNECTED
    assert server_node.state is State.CONNECTED
    assert pipe.client.token == server_node.token == A + B
    assert pipe.client_events == [Connected(A + B, resumed=False)]
    assert pipe.server_events == [Connected(A + B, resumed=False)]
    assert pipe.server.link(A + B) is server_node
    assert pipe.server.handshaking == 0


def test_reconnect_is_taken_over_by_the_old_server_node() -> None:
    pipe = Pipe(server_tokens=tokens(A, C), client_token=B)
    token = pipe.connect()
    old_node = pipe.server.link(token)
    pipe.close()
    assert pipe.client.state is State.RECONNECTING
    assert old_node.state is State.RECONNECTING
    pipe.now = 60.0
    sock2 = pipe.open_socket()
    temporary = pipe.server.node_on(sock2)
    assert temporary is not None
    assert temporary is not old_node
    assert temporary.state is State.OPEN
    assert temporary.local_token == C
    assert pipe.server.handshaking == 1
    # The client waits for the server's fresh token, then presents its merged token.
    assert list(pipe.to_server) == []
    assert list(pipe.to_client) == [C]
    pipe.deliver_to_client()
    assert pipe.client.state is State.PRECONNECTED
    assert list(pipe.to_server) == [token]
    pipe.deliver_to_server()
    assert pipe.server.node_on(sock2) is old_node
    assert pipe.server.handshaking == 0
    assert old_node.state is State.CONNECTED
    assert pipe.server.socket_of(token) == sock2
    assert list(pipe.to_client) == [token]  # the old node confirms with the merged token
    pipe.pump()
    assert pipe.client.state is State.CONNECTED
    assert pipe.client.token == token
    assert pipe.client_events[-1] == Connected(token, resumed=True)
    assert pipe.server_events[-1] == Connected(token, resumed=True)
    assert list(pipe.server.tokens()) == [token]
    # The resumed link carries messages both ways.
    pipe.client_send({"report": "burned"})
    pipe.server_send(token, {"job": 7})
    pipe.pump()
    assert pipe.received_by_server() == [{"report": "burned"}]
    assert pipe.received_by_client() == [{"job": 7}]


@pytest.mark.parametrize("shell_runs_expire", [True, False])
def test_reconnect_after_grace_becomes_a_new_connection(shell_runs_expire: bool) -> None:
    pipe = Pipe(server_tokens=tokens(A, D), client_token=B)
    token = pipe.connect()
    pipe.client_send("report-0")  # delivered and acked before the drop
    pipe.pump()
    pipe.acks()
    pipe.pump()
    assert pipe.client.unacked == ()
    # In flight when the socket dies: one report each way that the peer never acked.
    pipe.client_send("report-1")
    pipe.server_send(token, "order-1")
    pipe.close()
    pipe.client_send("report-2")  # queued while offline
    pipe.now = 120.5
    expired: list[Disconnected] = []
    if shell_runs_expire:
        assert pipe.server.expire(119.9) == []  # still within the grace period
        expired = pipe.server.expire(pipe.now)
    sock3 = pipe.open_socket()
    assert list(pipe.to_client) == [D]
    pipe.deliver_to_client()
    assert list(pipe.to_server) == [token]  # the old merged token plays the local token
    pipe.deliver_to_server()
    if not shell_runs_expire:
        expired = [e for e in pipe.server_events if isinstance(e, Disconnected)]
    assert expired == [Disconnected(token, formal=False, unacked=("order-1",))]
    temporary = pipe.server.node_on(sock3)
    assert temporary is not None
    assert temporary.state is State.PRECONNECTED
    assert list(pipe.to_client) == [D]  # the server sends its token again
    pipe.pump()
    new = A + D  # the seed's AAAABBBB + DDDD → AAAADDDD
    assert pipe.client.token == new
    assert pipe.server.link(new) is temporary
    assert temporary.state is State.CONNECTED
    assert pipe.client_events[-1] == Connected(new, resumed=False)
    assert Connected(new, resumed=False) in pipe.server_events
    with pytest.raises(LinkError, match="no link"):
        pipe.server.link(token)
    # The agent's reports are carried over, in order; nothing the client sent is lost.
    assert pipe.received_by_server() == ["report-0", "report-1", "report-2"]
    pipe.client_send("report-3")
    pipe.pump()
    pipe.acks()
    pipe.pump()
    assert pipe.received_by_server() == ["report-0", "report-1", "report-2", "report-3"]
    assert pipe.client.unacked == ()


def test_formal_disconnect_is_final_for_both_ends() -> None:
    pipe = Pipe(server_tokens=tokens(A, C, D), client_token=B)
    token = pipe.connect()
    pipe.client_send("unacked")
    pipe.to_server.clear()  # lost on the way: the disconnect reports it
    frames = pipe.client.disconnect()
    assert frames == [token]
    assert pipe.client.state is State.DISCONNECTED
    pipe.to_server.extend(frames)
    server_node = pipe.server.link(token)
    pipe.pump()
    assert server_node.state is State.DISCONNECTED
    assert pipe.server_events[-1] == Disconnected(token, formal=True)
    with pytest.raises(LinkError):
        pipe.server.link(token)
    assert pipe.client.disconnect() == []  # idempotent
    with pytest.raises(LinkClosed):
        pipe.client.start()
    with pytest.raises(LinkClosed):
        pipe.client.send("more")
    assert violations(pipe.client.receive(A)) == ["the link is disconnected; frame ignored"]
    # Someone presenting that token later does not get the old link back.
    sock = pipe.sock
    assert sock is not None
    pipe.server.connection_lost(sock, 1.0)
    assert pipe.server.accept(50) == [C]
    events = pipe.server.receive(50, token, now=2.0)
    assert events == []
    assert pipe.server.data_to_send(50) == [C]  # a new connection, as for any unknown token
    events = pipe.server.receive(50, token, now=2.0)
    assert events == [Connected(A + C, resumed=False)]
    assert token != A + C


def test_server_side_formal_disconnect_reaches_the_client() -> None:
    pipe = Pipe()
    token = pipe.connect()
    out = pipe.server.disconnect(token)
    assert out.socket == pipe.sock
    assert out.frames == [token]
    pipe.to_client.extend(out.frames)
    pipe.pump()
    assert pipe.client.state is State.DISCONNECTED
    assert pipe.client_events[-1] == Disconnected(token, formal=True)
    assert list(pipe.server.tokens()) == []


# --------------------------------------------------------------------------------------------
# Delivery guarantee


# Weighted so that most scripts get messages through before a cut, which is when resends and
# duplicates happen.
OPS = (
    ["csend", "ssend"] * 2
    + ["to_server", "to_client"] * 3
    + ["acks", "cut", "half_cut", "notice"]
    + ["reconnect"] * 2
)


@st.composite
def scripts(draw: st.DrawFn) -> list[str]:
    return draw(st.lists(st.sampled_from(OPS), max_size=120))


@settings(max_examples=300, deadline=None)
@given(script=scripts(), ack_every=st.integers(min_value=1, max_value=5))
def test_every_message_arrives_once_in_order_across_random_drops(
    script: list[str], ack_every: int
) -> None:
    pipe = Pipe(ack_every=ack_every)
    sent_up: list[JsonValue] = []
    sent_down: list[JsonValue] = []

    def server_token() -> str | None:
        token = pipe.client.token
        return token if token in set(pipe.server.tokens()) else None

    pipe.connect()
    for op in script:
        pipe.now += 1.0
        if op == "csend":
            sent_up.append(f"up-{len(sent_up)}")
            pipe.client_send(sent_up[-1])
        elif op == "ssend" and (token := server_token()) is not None:
            sent_down.append({"n": len(sent_down)})
            pipe.server_send(token, sent_down[-1])
        elif op == "to_server":
            pipe.deliver_to_server()
        elif op == "to_client":
            pipe.deliver_to_client()
        elif op == "cut":
            pipe.close()
        elif op == "half_cut" and pipe.stale is None:
            pipe.close(server_notices=False)
        elif op == "notice":
            pipe.server_notices()
        elif op == "reconnect" and pipe.sock is None:
            pipe.open_socket()
        elif op == "acks":
            pipe.acks()
    # Settle: the server notices the dead socket, the client reconnects, everything drains.
    pipe.server_notices()
    for _ in range(3):
        if pipe.client.state is State.CONNECTED and pipe.sock is not None:
            break
        pipe.close()
        pipe.open_socket()
        pipe.pump()
    pipe.pump()
    pipe.acks()
    pipe.pump()
    assert pipe.received_by_server() == sent_up
    assert pipe.received_by_client() == sent_down
    assert pipe.client.unacked == ()
    assert all(pipe.server.link(t).unacked == () for t in pipe.server.tokens())
    assert not any(isinstance(e, ProtocolViolation) for e in pipe.server_events)
    assert not any(isinstance(e, ProtocolViolation) for e in pipe.client_events)


def test_resend_after_resume_drops_duplicates_and_keeps_order() -> None:
    pipe = Pipe(ack_every=100)
    token = pipe.connect()
    for i in range(5):
        pipe.client_send(i)
        pipe.server_send(token, -i)
    pipe.pump()  # delivered, but no ack went back
    assert pipe.client.unacked == (0, 1, 2, 3, 4)
    pipe.close()
    pipe.open_socket()
    pipe.pump()
    assert pipe.received_by_server() == [0, 1, 2, 3, 4]
    assert pipe.received_by_client() == [0, -1, -2, -3, -4]
    pipe.acks()
    pipe.pump()
    assert pipe.client.unacked == ()
    assert pipe.server.link(token).unacked == ()


def test_resumed_node_with_nothing_to_resend_acks_at_once() -> None:
    pipe = Pipe(ack_every=100)
    pipe.connect()
    for i in range(3):
        pipe.client_send(i)
    pipe.pump()  # the server has them; its ack never left
    pipe.close()
    pipe.open_socket()
    pipe.pump()  # no pending_ack() call: the resume itself tells the client what arrived
    assert pipe.client.unacked == ()
    assert pipe.received_by_server() == [0, 1, 2]


def test_a_one_way_stream_gets_acked_every_n_messages() -> None:
    pipe = Pipe(ack_every=4)
    pipe.connect()
    for i in range(10):
        pipe.client_send(i)
    pipe.pump()
    # Two automatic bare acks (after 4 and 8): only the last two are still unacked.
    assert pipe.client.unacked == (8, 9)
    assert pipe.client.pending_ack() == []  # the client received nothing to ack
    pipe.acks()
    pipe.pump()
    assert pipe.client.unacked == ()
    assert pipe.server.pending_acks() == []


# --------------------------------------------------------------------------------------------
# Refusals, missing servers, backpressure


def test_a_socket_presenting_a_live_links_token_is_refused() -> None:
    pipe = Pipe()
    token = pipe.connect()
    live_sock = pipe.sock
    pipe.server.accept(99)
    events = pipe.server.receive(99, token, now=1.0)
    assert events == [
        Refused(token, "the link is still connected on another socket", CLOSE_STALE_SOCKET)
    ]
    assert events[0].close_code == 1008  # type: ignore[union-attr]
    assert pipe.server.node_on(99) is None
    assert violations(pipe.server.receive(99, "{}", now=1.0)) == [
        "frame on a socket that is not open (refused or closed)"
    ]
    # The live node keeps its socket and keeps working.
    assert pipe.server.socket_of(token) == live_sock
    pipe.client_send("still here")
    pipe.server_send(token, "and here")
    pipe.pump()
    assert pipe.received_by_server() == ["still here"]
    assert pipe.received_by_client() == ["and here"]


def test_client_retrying_before_the_server_notices_the_drop_gets_in_afterwards() -> None:
    pipe = Pipe()
    token = pipe.connect()
    pipe.close(server_notices=False)  # half-open: the server still thinks it is connected
    pipe.client_send("queued")
    pipe.open_socket()
    pipe.pump()
    assert any(isinstance(e, Refused) for e in pipe.server_events)
    assert pipe.client.state is State.RECONNECTING
    pipe.server_notices()
    pipe.open_socket()
    pipe.pump()
    assert pipe.client_events[-1] == Connected(token, resumed=True)
    assert pipe.received_by_server() == ["queued"]


def test_a_link_is_only_resumed_by_the_peer_that_made_it() -> None:
    pipe = Pipe(peer="pi-1")
    token = pipe.connect()
    pipe.close()
    pipe.server.accept(77, peer="pi-2")
    assert pipe.server.receive(77, token, now=1.0) == [
        Refused(token, "the link belongs to another peer")
    ]
    pipe.open_socket()
    pipe.pump()
    assert pipe.client_events[-1] == Connected(token, resumed=True)


def test_no_server_answering_never_claims_connected() -> None:
    pipe = Pipe(server_tokens=tokens(C), client_token=B)
    pipe.sock = 1
    assert pipe.client.start() == [B]
    pipe.client_send("waiting")
    assert pipe.client.state is State.OPEN
    assert pipe.client.token is None
    # A server that handshakes but never confirms leaves it PRECONNECTED.
    assert pipe.client.receive(E) == []
    assert pipe.client.data_to_send() == [B]
    assert pipe.client.state is State.PRECONNECTED
    assert pipe.client.token is None
    assert pipe.client.unacked == ("waiting",)
    pipe.client.connection_lost(5.0)
    assert pipe.client.state is State.OPEN
    pipe.sock = None
    # A real server later: the queued message goes through.
    pipe.open_socket()
    pipe.pump()
    assert pipe.client.token == merge_tokens(B, C)
    assert pipe.received_by_server() == ["waiting"]


def test_unacked_bound_refuses_the_message_and_loses_nothing() -> None:
    pipe = Pipe(max_unacked=3, ack_every=100)
    pipe.connect()
    for i in range(3):
        pipe.client_send(i)
    with pytest.raises(UnackedOverflow, match="3 messages") as info:
        pipe.client.send(3)
    assert info.value.limit == 3
    assert pipe.client.unacked == (0, 1, 2)
    pipe.pump()
    pipe.acks()
    pipe.pump()
    pipe.client_send(3)
    pipe.pump()
    assert pipe.received_by_server() == [0, 1, 2, 3]


def test_payload_that_is_not_json_is_refused_and_not_queued() -> None:
    pipe = Pipe()
    pipe.connect()
    with pytest.raises(LinkError, match="not JSON"):
        pipe.client.send({"x": object()})  # type: ignore[dict-item]
    with pytest.raises(LinkError, match="not JSON"):
        pipe.client.send(float("nan"))
    assert pipe.client.unacked == ()
    pipe.client_send(["ok", 1, None, 2.5, {"nested": True}])
    pipe.pump()
    assert pipe.received_by_server() == [["ok", 1, None, 2.5, {"nested": True}]]


# --------------------------------------------------------------------------------------------
# Malformed input, in every state


MALFORMED = {
    "empty": "",
    "text": "hello",
    "broken JSON": '{"s":1,',
    "JSON array": "[1, 2]",
    "upper-case token": A.upper(),
    "short token": "abc123",
    "33-char token": "0" * 33,
    "missing keys": '{"s": 1}',
    "extra keys": '{"s": 1, "a": 0, "m": 1, "x": 2}',
    "bool seq": '{"s": true, "a": 0, "m": 1}',
    "zero seq": '{"s": 0, "a": 0, "m": 1}',
    "negative ack": '{"a": -1}',
    "negative ack in data": '{"s": 1, "a": -1, "m": 0}',
    "float ack": '{"a": 1.5}',
    "NaN payload": '{"s": 1, "a": 0, "m": NaN}',
    "huge number": '{"a": ' + "9" * 5000 + "}",
    "deep nesting": '{"s": 1, "a": 0, "m": ' + "[" * 100_000 + "}",
}


def _client_open(pipe: Pipe) -> LinkNode:
    pipe.open_socket()
    return pipe.client


def _client_preconnected(pipe: Pipe) -> LinkNode:
    pipe.open_socket()
    pipe.deliver_to_client()
    return pipe.client


def _client_connected(pipe: Pipe) -> LinkNode:
    pipe.connect()
    return pipe.client


def _client_reconnecting(pipe: Pipe) -> LinkNode:
    pipe.connect()
    pipe.close()
    pipe.open_socket()
    return pipe.client


def _client_resuming(pipe: Pipe) -> LinkNode:
    _client_reconnecting(pipe)
    pipe.deliver_to_client()
    return pipe.client


STAGES: dict[str, tuple[Callable[[Pipe], LinkNode], State]] = {
    "OPEN": (_client_open, State.OPEN),
    "PRECONNECTED": (_client_preconnected, State.PRECONNECTED),
    "CONNECTED": (_client_connected, State.CONNECTED),
    "RECONNECTING": (_client_reconnecting, State.RECONNECTING),
    "PRECONNECTED (resume)": (_client_resuming, State.PRECONNECTED),
}

# Frames that are well formed but wrong where they arrive.
OUT_OF_PLACE = {
    "OPEN": ['{"s": 1, "a": 0, "m": 1}', '{"a": 0}', A + B],
    "PRECONNECTED": [E, A + B, '{"a": 0}'],
    "CONNECTED": ['{"s": 5, "a": 0, "m": 1}', '{"a": 99}', E, A + E],
    "RECONNECTING": ['{"s": 1, "a": 0, "m": 1}', A + B],
    "PRECONNECTED (resume)": [E, A + E, '{"s": 1, "a": 0, "m": 1}'],
}


def _finish(pipe: Pipe, stage: str) -> None:
    """After the bad frame, the link completes and carries a message both ways."""
    pipe.pump()
    assert pipe.client.state is State.CONNECTED
    token = pipe.client.token
    assert token is not None
    pipe.client_send("after")
    pipe.server_send(token, "after")
    pipe.pump()
    assert pipe.received_by_server()[-1] == "after"
    assert pipe.received_by_client()[-1] == "after"


@pytest.mark.parametrize("stage", sorted(STAGES))
@pytest.mark.parametrize("bad", sorted(MALFORMED))
def test_malformed_frames_in_every_client_state(stage: str, bad: str) -> None:
    pipe = Pipe()
    reach, state = STAGES[stage]
    node = reach(pipe)
    assert node.state is state
    events = node.receive(MALFORMED[bad])
    assert len(violations(events)) == 1, events
    assert node.state is state
    assert node.data_to_send() == []
    _finish(pipe, stage)


@pytest.mark.parametrize(
    ("stage", "frame"), [(s, f) for s, frames in OUT_OF_PLACE.items() for f in frames]
)
def test_out_of_place_frames_in_every_client_state(stage: str, frame: str) -> None:
    pipe = Pipe(client_token=B, server_tokens=tokens(A, C))
    reach, state = STAGES[stage]
    node = reach(pipe)
    events = node.receive(frame)
    assert len(violations(events)) == 1, events
    assert node.state is state
    assert node.data_to_send() == []
    _finish(pipe, stage)


@pytest.mark.parametrize("bad", sorted(MALFORMED))
@pytest.mark.parametrize("stage", ["OPEN", "PRECONNECTED", "CONNECTED"])
def test_malformed_frames_in_every_server_state(stage: str, bad: str) -> None:
    pipe = Pipe()
    sock = pipe.open_socket()
    if stage == "PRECONNECTED":
        pipe.deliver_to_server()
    elif stage == "CONNECTED":
        pipe.pump()
    node = pipe.server.node_on(sock)
    assert node is not None
    assert node.state.name == stage
    assert pipe.server.data_to_send(sock) == []
    assert len(violations(pipe.server.receive(sock, MALFORMED[bad], now=0.0))) == 1
    assert node.state.name == stage
    assert pipe.server.data_to_send(sock) == []
    _finish(pipe, stage)


def test_echoed_token_and_ack_of_unsent_message_are_violations_on_the_server() -> None:
    pipe = Pipe(server_tokens=tokens(A, C), client_token=B)
    pipe.server.accept(5)
    assert violations(pipe.server.receive(5, A, now=0.0)) == ["the peer presented our own token"]
    token = pipe.connect()
    pipe.client_send("x")
    pipe.pump()
    sock = pipe.sock
    assert sock is not None
    assert violations(pipe.server.receive(sock, '{"a": 1}', now=0.0)) == [
        "ack 1 for a message never sent (last sent 0)"
    ]
    assert violations(pipe.server.receive(sock, '{"s": 1, "a": 0, "m": "dup"}', now=0.0)) == []
    assert violations(pipe.server.receive(sock, '{"s": 3, "a": 0, "m": "gap"}', now=0.0)) == [
        "sequence gap: expected 2, got 3"
    ]
    assert pipe.received_by_server() == ["x"]
    assert pipe.server.link(token).state is State.CONNECTED


# --------------------------------------------------------------------------------------------
# Misuse by the shell or the application: typed errors


def test_tokens_are_128_bit_lowercase_hex_and_merge_sorted() -> None:
    token = new_token()
    assert len(token) == 32
    assert token == token.lower()
    int(token, 16)
    assert new_token() != token
    assert merge_tokens(B, A) == merge_tokens(A, B) == A + B
    assert merge_tokens(A + B, D) == A + D
    with pytest.raises(ValueError, match="lowercase hex"):
        merge_tokens("xyz", A)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="32 lowercase hex"):
        LinkNode(Role.CLIENT, token_factory=lambda: "short")
    with pytest.raises(ValueError, match="max_unacked"):
        LinkNode(Role.CLIENT, max_unacked=0)
    with pytest.raises(ValueError, match="ack_every"):
        LinkNode(Role.SERVER, ack_every=0)
    with pytest.raises(ValueError, match="grace"):
        LinkServer[int](grace=-1)


def test_shell_mistakes_raise_link_errors() -> None:
    pipe = Pipe()
    token = pipe.connect()
    with pytest.raises(LinkError, match="connection_lost"):
        pipe.client.start()
    assert pipe.sock is not None
    with pytest.raises(LinkError, match="already in use"):
        pipe.server.accept(pipe.sock)
    with pytest.raises(LinkError, match="no link"):
        pipe.server.send("f" * 64, "x")
    with pytest.raises(LinkError, match="resumes"):
        pipe.client.resume()
    server_node = pipe.server.link(token)
    pipe.close()
    with pytest.raises(LinkError, match="LinkServer"):
        server_node.start()
    assert violations(server_node.receive(A)) == ["a server node without a socket cannot receive"]
    assert pipe.server.data_to_send(12345) == []
    pipe.server.connection_lost(12345, 0.0)  # unknown socket: nothing to do
    out = pipe.server.send(token, "later")
    assert out.socket is None
    assert out.frames == []
    assert pipe.server.socket_of("f" * 64) is None


def test_client_that_gives_up_offline_sends_nothing() -> None:
    pipe = Pipe()
    pipe.connect()
    pipe.close()
    assert pipe.client.disconnect() == []
    assert pipe.client.state is State.DISCONNECTED


def test_names_exported_for_the_docs() -> None:
    assert STATES == ("OPEN", "PRECONNECTED", "CONNECTED", "RECONNECTING", "DISCONNECTED")
    assert [int(s) for s in State] == [0, 1, 2, 3, 4]
    assert FRAMES == ("handshake", "confirm", "data", "ack", "disconnect")


def test_data_frames_are_the_documented_json() -> None:
    pipe = Pipe()
    pipe.connect()
    pipe.to_client.extend(pipe.server.send(pipe.client.token or "", "hi").frames)
    pipe.pump()
    [frame] = pipe.client.send({"k": "v"})
    assert json.loads(frame) == {"s": 1, "a": 1, "m": {"k": "v"}}
    assert pipe.client.pending_ack() == []  # the ack rode on the data frame
    pipe.to_server.append(frame)
    pipe.pump()
    sock = pipe.sock
    assert sock is not None
    assert pipe.server.pending_acks() == [(sock, '{"a":1}')]
