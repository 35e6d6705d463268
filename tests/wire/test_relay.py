"""Relay core: envelopes, batching, splice encoding, auth, init and the client handshake."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire import relay
from wire.relay import (
    AUTH_TIMEOUT,
    Authenticated,
    Broadcast,
    ClientEnvelope,
    ClientHandshake,
    Close,
    CloseCode,
    Forward,
    HandshakeState,
    Init,
    MasterEnvelope,
    RelayError,
    RequestType,
    encode,
    encode_auth,
    encode_batch,
    encode_broadcast_json,
    encode_from_client_json,
    encode_init,
    encode_to_client_json,
    parse_auth,
    parse_from_client,
    parse_from_master,
    parse_init,
    room_request,
)

MSG = {"action": "chat", "text": "hi"}


def test_client_envelope_round_trip() -> None:
    env = ClientEnvelope("tok", "Booth-1", "c1", MSG)
    text = encode(env)
    assert json.loads(text) == {"token": "tok", "room": "booth-1", "id": "c1", "message": MSG}
    assert parse_from_client(text) == (env,)


def test_master_envelope_and_broadcast_round_trip() -> None:
    one = MasterEnvelope("booth-1", "c1", MSG)
    everyone = Broadcast("booth-1", MSG)
    assert parse_from_master(encode(one)) == (one,)
    assert parse_from_master(encode(everyone)) == (everyone,)
    assert "id" not in json.loads(encode(everyone))


def test_batches_are_json_arrays_and_both_decoders_accept_them() -> None:
    to_master = [ClientEnvelope("t", "r", str(i), {"n": i}) for i in range(3)]
    text = encode(to_master)
    assert json.loads(text)[2]["id"] == "2"
    assert parse_from_client(text) == tuple(to_master)
    mixed: list[MasterEnvelope | Broadcast] = [
        MasterEnvelope("r", "a", {"n": 1}),
        Broadcast("r", {"n": 2}),
    ]
    assert parse_from_master(encode(mixed)) == tuple(mixed)
    spliced = encode_batch(
        [encode_to_client_json("r", "a", '{"n":1}'), encode_broadcast_json("r", '{"n":2}')]
    )
    assert parse_from_master(spliced) == tuple(mixed)


def test_rooms_are_case_insensitive() -> None:
    assert relay.normalize_room("LinuxFest-SAT") == "linuxfest-sat"
    a = parse_from_master(encode_to_client_json("LinuxFest", "c", "{}"))[0]
    b = MasterEnvelope("linuxfest", "c", {})
    assert a == b
    assert ClientHandshake("BOOTH", "c", now=0).room == "booth"
    # Unicode folding, not just ASCII lowercasing.
    assert Broadcast("STRASSE", {}).room == Broadcast("straße", {}).room


bad_client_frames: list[tuple[str, str, CloseCode]] = [
    ("nope", "frame", CloseCode.UNSUPPORTED_DATA),
    ("42", "frame", CloseCode.POLICY_VIOLATION),
    ("[]", "frame", CloseCode.POLICY_VIOLATION),
    ('{"room":"r","id":"c","message":{}}', "token", CloseCode.POLICY_VIOLATION),
    ('{"token":"t","id":"c","message":{}}', "room", CloseCode.POLICY_VIOLATION),
    ('{"token":"t","room":"r","message":{}}', "id", CloseCode.POLICY_VIOLATION),
    ('{"token":"t","room":"r","id":"c"}', "message", CloseCode.POLICY_VIOLATION),
    ('{"token":1,"room":"r","id":"c","message":{}}', "token", CloseCode.POLICY_VIOLATION),
    ('{"token":"","room":"r","id":"c","message":{}}', "token", CloseCode.POLICY_VIOLATION),
    ('{"token":"t","room":"","id":"c","message":{}}', "room", CloseCode.POLICY_VIOLATION),
    ('{"token":"t","room":["r"],"id":"c","message":{}}', "room", CloseCode.POLICY_VIOLATION),
    ('{"token":"t","room":"r","id":null,"message":{}}', "id", CloseCode.POLICY_VIOLATION),
    ('{"token":"t","room":"r","id":"c","message":[1]}', "message", CloseCode.POLICY_VIOLATION),
    ('{"token":"t","room":"r","id":"c","message":"x"}', "message", CloseCode.POLICY_VIOLATION),
    ('{"token":"t","room":"r","id":"c","message":{},"x":1}', "x", CloseCode.POLICY_VIOLATION),
    ('{"token":"t","room":"r","id":"c","message":{"v":NaN}}', "frame", CloseCode.UNSUPPORTED_DATA),
    (
        '[{"token":"t","room":"r","id":"c","message":{}},5]',
        "envelope[1]",
        CloseCode.POLICY_VIOLATION,
    ),
    (
        '[{"token":"t","room":"r","id":"c","message":{}},{"token":"t","room":"","id":"c","message":{}}]',
        "envelope[1].room",
        CloseCode.POLICY_VIOLATION,
    ),
    (
        json.dumps({"token": "t", "room": "r" * 129, "id": "c", "message": {}}),
        "room",
        CloseCode.POLICY_VIOLATION,
    ),
]


@pytest.mark.parametrize(("frame", "field", "code"), bad_client_frames)
def test_bad_client_envelopes_name_the_field(frame: str, field: str, code: CloseCode) -> None:
    with pytest.raises(RelayError) as info:
        parse_from_client(frame)
    assert info.value.field == field
    assert str(info.value).startswith(field + ":")
    assert info.value.close_code is code


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ('{"id":"c","message":{}}', "room"),
        ('{"room":"r"}', "message"),
        ('{"room":"r","id":7,"message":{}}', "id"),
        ('{"room":"r","message":{},"token":"t"}', "token"),
        ('{"room":"r","id":"c","message":{},"token":"t"}', "token"),
        ('[{"room":"r","message":1}]', "envelope[0].message"),
    ],
)
def test_bad_master_frames_name_the_field(frame: str, field: str) -> None:
    with pytest.raises(RelayError) as info:
        parse_from_master(frame)
    assert info.value.field == field


def test_oversized_and_empty_batches_are_refused() -> None:
    with pytest.raises(RelayError, match="empty batch"):
        encode_batch([])
    with pytest.raises(RelayError, match="at most"):
        encode_batch(["{}"] * (relay.MAX_BATCH + 1))
    too_many = "[" + ",".join(['{"room":"r","message":{}}'] * (relay.MAX_BATCH + 1)) + "]"
    with pytest.raises(RelayError, match="at most"):
        parse_from_master(too_many)


def test_unserializable_message_is_a_typed_error() -> None:
    with pytest.raises(RelayError) as info:
        encode(Broadcast("r", {"x": float("inf")}))
    assert info.value.field == "message"
    with pytest.raises(RelayError) as info:
        encode(MasterEnvelope("r", "c", {"x": object()}))
    assert info.value.field == "message"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(), json_values, max_size=5)
names = st.text(min_size=1, max_size=20)


@given(message=json_objects, token=names, room=names, conn=names)
def test_any_message_survives_wrap_and_unwrap(
    message: dict[str, Any], token: str, room: str, conn: str
) -> None:
    plain = encode(ClientEnvelope(token, room, conn, message))
    spliced = encode_from_client_json(token, room, conn, json.dumps(message))
    (env,) = parse_from_client(plain)
    assert env.message == message
    assert env.room == room.casefold()
    assert json.loads(spliced) == json.loads(plain)
    (back,) = parse_from_master(encode_to_client_json(room, conn, json.dumps(message)))
    assert back == MasterEnvelope(room, conn, message)
    assert json.loads(encode_broadcast_json(room, json.dumps(message))) == json.loads(
        encode(Broadcast(room, message))
    )


@given(message=json_objects, room=names, conn=names)
def test_splice_encoding_is_byte_identical_with_compact_json(
    message: dict[str, Any], room: str, conn: str
) -> None:
    compact = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    assert encode_to_client_json(room, conn, compact) == encode(MasterEnvelope(room, conn, message))


# -- join / leave, auth, init


def test_join_and_leave_requests_are_wrapped_in_the_clients_envelope() -> None:
    (join,) = parse_from_client(relay.encode_join("tok", "Room", "c9"))
    assert join == ClientEnvelope(
        "tok", "room", "c9", {"action": "req", "request": {"type": "join"}}
    )
    assert room_request(join.message) is RequestType.JOIN
    (leave,) = parse_from_client(relay.encode_leave("tok", "room", "c9"))
    assert room_request(leave.message) is RequestType.LEAVE
    assert room_request({"action": "req", "request": {"type": "play"}}) is None
    assert room_request({"action": "req", "request": "join"}) is None
    assert room_request(MSG) is None


def test_parse_auth() -> None:
    assert parse_auth(encode_auth("secret")) == "secret"


@pytest.mark.parametrize(
    ("frame", "field", "code"),
    [
        (b'{"action":"auth","token":"t"}', "frame", CloseCode.UNSUPPORTED_DATA),
        ("{bad", "frame", CloseCode.UNSUPPORTED_DATA),
        ('"auth"', "frame", CloseCode.POLICY_VIOLATION),
        ('{"action":"chat","token":"t"}', "action", CloseCode.POLICY_VIOLATION),
        ('{"token":"t"}', "action", CloseCode.POLICY_VIOLATION),
        ('{"action":"auth"}', "token", CloseCode.BAD_CREDENTIAL),
        ('{"action":"auth","token":""}', "token", CloseCode.BAD_CREDENTIAL),
        ('{"action":"auth","token":123}', "token", CloseCode.BAD_CREDENTIAL),
    ],
)
def test_bad_auth_frames(frame: str | bytes, field: str, code: CloseCode) -> None:
    with pytest.raises(RelayError) as info:
        parse_auth(frame)
    assert (info.value.field, info.value.close_code) == (field, code)


def test_init_round_trip() -> None:
    init = Init(8080, "master-secret")
    text = encode_init(init)
    assert json.loads(text) == {"action": "init", "port": 8080, "token": "master-secret"}
    assert parse_init(text) == init


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ("x", "frame"),
        ("[]", "frame"),
        ('{"action":"auth","port":1,"token":"t"}', "action"),
        ('{"action":"init","token":"t"}', "port"),
        ('{"action":"init","port":1}', "token"),
        ('{"action":"init","port":"80","token":"t"}', "port"),
        ('{"action":"init","port":true,"token":"t"}', "port"),
        ('{"action":"init","port":0,"token":"t"}', "port"),
        ('{"action":"init","port":65536,"token":"t"}', "port"),
        ('{"action":"init","port":80,"token":""}', "token"),
        ('{"action":"init","port":80,"token":"t","extra":1}', "extra"),
    ],
)
def test_bad_init_frames_name_the_field(frame: str, field: str) -> None:
    with pytest.raises(RelayError) as info:
        parse_init(frame)
    assert info.value.field == field


# -- the per-client handshake


def _authed(room: str = "Booth") -> ClientHandshake:
    hs = ClientHandshake(room, "c1", now=100.0)
    assert hs.feed('{"action":"auth","token":"tok"}') == Authenticated("tok")
    return hs


def test_handshake_auth_then_join_then_relay_then_leave() -> None:
    hs = _authed()
    assert hs.state is HandshakeState.AUTHENTICATED
    assert parse_from_client(hs.join())[0].message == relay.request_message(RequestType.JOIN)
    event = hs.feed('{"action":"chat","text":"hi"}')
    assert isinstance(event, Forward)
    assert event.message == {"action": "chat", "text": "hi"}
    assert parse_from_client(event.envelope) == (
        ClientEnvelope("tok", "booth", "c1", {"action": "chat", "text": "hi"}),
    )
    leave = hs.leave()
    assert leave is not None
    assert room_request(parse_from_client(leave)[0].message) is RequestType.LEAVE


@pytest.mark.parametrize(
    ("first", "code"),
    [
        ("not json", CloseCode.UNSUPPORTED_DATA),
        (b"\x00\x01", CloseCode.UNSUPPORTED_DATA),
        ('{"action":"chat"}', CloseCode.POLICY_VIOLATION),
        ('{"action":"auth"}', CloseCode.BAD_CREDENTIAL),
    ],
)
def test_handshake_closes_on_a_bad_first_frame(first: str | bytes, code: CloseCode) -> None:
    hs = ClientHandshake("r", "c", now=0)
    event = hs.feed(first)
    assert isinstance(event, Close)
    assert event.code is code
    assert event.reason
    # Frames that race in after the decision get the same decision, not a crash.
    assert hs.feed('{"action":"auth","token":"t"}') == event
    assert hs.leave() is None
    with pytest.raises(RelayError):
        hs.join()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('{"action":"auth","token":"again"}', CloseCode.POLICY_VIOLATION),
        ('{"action":"req","request":{"type":"leave"}}', CloseCode.POLICY_VIOLATION),
        ('{"action":"req","request":{"type":"join"}}', CloseCode.POLICY_VIOLATION),
        ("[1,2]", CloseCode.POLICY_VIOLATION),
        ("{", CloseCode.UNSUPPORTED_DATA),
        (b"{}", CloseCode.UNSUPPORTED_DATA),
    ],
)
def test_after_auth_forbidden_frames_close(frame: str | bytes, code: CloseCode) -> None:
    hs = _authed()
    hs.join()
    event = hs.feed(frame)
    assert isinstance(event, Close)
    assert event.code is code
    # It did join, so the master must still hear that it left.
    assert hs.leave() is not None


def test_forged_envelope_fields_cannot_be_spliced_in() -> None:
    hs = _authed()
    event = hs.feed('{"a":1},"id":"victim","x":{}')
    assert isinstance(event, Close)
    assert event.code is CloseCode.UNSUPPORTED_DATA


def test_auth_deadline() -> None:
    hs = ClientHandshake("r", "c", now=50.0)
    assert hs.deadline == 50.0 + AUTH_TIMEOUT
    assert hs.check_deadline(59.9) is None
    closed = hs.check_deadline(60.0)
    assert closed is not None
    assert closed.code is CloseCode.AUTH_TIMEOUT
    assert hs.feed('{"action":"auth","token":"late"}') == closed
    on_time = _authed()
    assert on_time.check_deadline(1e9) is None


def test_shell_can_reject_the_token_after_authenticated() -> None:
    hs = _authed()
    decision = hs.close(CloseCode.BAD_CREDENTIAL, "credential expired")
    assert decision == Close(CloseCode.BAD_CREDENTIAL, "credential expired")
    assert hs.close(CloseCode.GOING_AWAY, "later") == decision
    assert hs.leave() is None  # never joined
    with pytest.raises(RelayError):
        hs.join()


def test_close_codes_and_actions_match_the_architecture() -> None:
    assert {int(c) for c in relay.CLOSE_CODES} == {1001, 1003, 1008, 1013, 4001, 4002, 4003, 4004}
    assert set(relay.ACTIONS) == {"auth", "req", "init"}
    assert AUTH_TIMEOUT == 10.0
