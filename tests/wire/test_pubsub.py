"""Pub/sub core: Redis-exact glob matching, request parsing, replies and the subscription index."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wire import pubsub
from wire.pubsub import (
    ACTIONS,
    Outcome,
    PubSubError,
    Subscribe,
    Subscriptions,
    Unsubscribe,
    encode_message,
    encode_message_json,
    encode_reply,
    glob_match,
    glob_match_steps,
    parse_message,
    parse_request,
)

if TYPE_CHECKING:
    from tests.conftest import RedisServer

# (pattern, channel, Redis PSUBSCRIBE delivers?) — every row is also checked against a real
# redis-server below, so the table cannot drift from Redis.
GLOB_CASES: list[tuple[str, str, bool]] = [
    ("hello", "hello", True),
    ("hello", "hellO", False),
    ("hello", "hello!", False),
    ("h?llo", "hello", True),
    ("h?llo", "hallo", True),
    ("h?llo", "hllo", False),
    ("h*llo", "hllo", True),  # * matches the empty run
    ("h*llo", "heeeello", True),
    ("h*llo", "hello world", False),
    ("h[ae]llo", "hello", True),
    ("h[ae]llo", "hallo", True),
    ("h[ae]llo", "hillo", False),
    ("h[^e]llo", "hallo", True),
    ("h[^e]llo", "hello", False),
    ("h[a-b]llo", "hbllo", True),
    ("h[a-b]llo", "hcllo", False),
    ("[z-a]", "m", True),  # reversed range is swapped
    ("[z-a]", "A", False),
    ("[a-]", "]", True),  # the range end is taken literally even when it is ]
    ("\\*", "*", True),
    ("\\*", "a", False),
    ("\\[", "[", True),
    ("\\?", "?", True),
    ("\\?", "x", False),
    ("a\\", "a\\", True),  # trailing backslash is literal
    ("a\\", "a", False),
    ("[\\]]", "]", True),
    ("[\\]", "]", True),  # escaped ] then end of pattern: an unclosed class
    ("[\\-]", "-", True),
    ("[abc", "b", True),  # unclosed class runs to the end of the pattern
    ("[abc", "bc", False),
    ("a[", "a", False),  # an empty unclosed class at the end matches nothing
    ("a[", "ab", False),
    ("[^", "x", True),  # an empty negated class matches any byte
    ("[]", "]", False),  # [] is an empty class, not a literal ]
    ("[]a]", "]a]", False),
    ("[^]", "q", True),
    ("", "", True),
    ("", "a", False),
    ("*", "", False),  # Redis: the empty channel matches only the empty pattern
    ("*", "anything", True),
    ("**", "x", True),  # nested stars collapse
    ("a**b", "ab", True),
    ("a*b*c", "aXXbYYc", True),
    ("a*b*c", "aXXbYY", False),
    ("*.error", "kiosk.7.error", True),
    ("kiosk.*.status", "kiosk.7.status", True),
    ("kiosk.*.status", "kiosk.7.stat", False),
    ("?", "é", False),  # matching is per UTF-8 byte, as in Redis
    ("??", "é", True),
    ("[é]", "é", False),
    ("*?", "a", True),
    ("?*", "", False),
]


@pytest.mark.parametrize(("pattern", "channel", "expected"), GLOB_CASES)
def test_glob_match_follows_redis(pattern: str, channel: str, expected: bool) -> None:
    assert glob_match(pattern, channel) is expected


def test_glob_table_is_large_enough() -> None:
    assert len(GLOB_CASES) >= 40


def _redis_delivers(client: redis.Redis, pattern: str, channel: str) -> bool:
    sub = client.pubsub()  # type: ignore[no-untyped-call]
    try:
        sub.psubscribe(pattern)
        confirmed = sub.get_message(timeout=5)
        assert confirmed is not None
        assert confirmed["type"] == "psubscribe"
        return bool(client.publish(channel, "x") == 1)
    finally:
        sub.close()


def test_glob_table_agrees_with_a_real_redis(redis_server: RedisServer) -> None:
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    try:
        disagree = [
            (p, c)
            for p, c, _ in GLOB_CASES
            if p and _redis_delivers(client, p, c) != glob_match(p, c)
        ]
    finally:
        client.close()
    assert disagree == []


def test_redis_star_nesting_guard_is_reproduced(redis_server: RedisServer) -> None:
    # Redis stops matching past 1000 nested stars; both backends must agree on such patterns.
    cases = [
        ("*a" * 999 + "*b", "a" * 999 + "b"),
        ("*a" * 1000 + "*b", "a" * 1000 + "b"),
        ("*a" * 1000 + "*", "a" * 1000),
    ]
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    try:
        got = [(glob_match(p, c), _redis_delivers(client, p, c)) for p, c in cases]
    finally:
        client.close()
    assert got == [(True, True), (False, False), (True, True)]


def test_glob_accepts_bytes() -> None:
    assert glob_match(b"kiosk.*", b"kiosk.\xff")


def test_pathological_pattern_is_bounded() -> None:
    pattern = "a*" * 30 + "b"
    channel = "a" * 200
    matched, steps = glob_match_steps(pattern, channel)
    assert not matched
    # Exponential backtracking would need astronomically many steps; we stay within n·m.
    assert steps <= (len(pattern) + 1) * (len(channel) + 1)


def _escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\^-" else ch for ch in text)


short_text = st.text(alphabet="ab*?[]^-\\c.", max_size=8)


@given(literal=short_text, other=short_text)
def test_escaped_literal_matches_only_itself(literal: str, other: str) -> None:
    pattern = _escape(literal)
    if literal:
        assert glob_match(pattern, literal)
    assert glob_match(pattern, other) is (other == literal)


# -- requests and replies


def test_parse_subscribe_and_unsubscribe() -> None:
    assert parse_request('{"action":"subscribe","pattern":"kiosk.*"}') == Subscribe("kiosk.*")
    assert parse_request({"action": "unsubscribe", "pattern": "a"}) == Unsubscribe("a")


@pytest.mark.parametrize(
    ("frame", "field", "reply"),
    [
        ("not json", "frame", {"action": "error", "status": False}),
        ("[1]", "frame", {"action": "error", "status": False}),
        ('{"pattern":"a"}', "action", {"action": "error", "status": False}),
        ('{"action":"publish","pattern":"a"}', "action", {"action": "error", "status": False}),
        ('{"action":"subscribe"}', "pattern", {"action": "subscribe", "status": False}),
        ('{"action":"subscribe","pattern":5}', "pattern", {"action": "subscribe", "status": False}),
        (
            '{"action":"subscribe","pattern":""}',
            "pattern",
            {"action": "subscribe", "pattern": "", "status": False},
        ),
        (
            '{"action":"unsubscribe","pattern":"a","x":1}',
            "x",
            {"action": "unsubscribe", "pattern": "a", "status": False},
        ),
    ],
)
def test_bad_requests_name_the_field_and_carry_a_reply(
    frame: str, field: str, reply: dict[str, object]
) -> None:
    with pytest.raises(PubSubError) as info:
        parse_request(frame)
    assert info.value.field == field
    got = info.value.reply
    assert got.pop("error").startswith(field)
    assert got == reply


def test_subscribe_replies_exactly_as_the_seed() -> None:
    subs: Subscriptions[str] = Subscriptions()
    first = subs.subscribe("alice", "kiosk.*")
    assert first == Outcome({"action": "subscribe", "pattern": "kiosk.*", "status": True}, True)
    dup = subs.subscribe("alice", "kiosk.*")
    assert dup.reply["status"] is False
    assert dup.reply["action"] == "subscribe"
    assert dup.reply["pattern"] == "kiosk.*"
    assert "already subscribed" in dup.reply["error"]
    assert not dup.first
    assert set(dup.reply) == {"action", "pattern", "status", "error"}


def test_unsubscribe_unknown_pattern_is_refused() -> None:
    subs: Subscriptions[str] = Subscriptions()
    subs.subscribe("bob", "a")
    for who, pattern in [("alice", "a"), ("bob", "b")]:
        out = subs.unsubscribe(who, pattern)
        assert out.reply["status"] is False
        assert out.reply["action"] == "unsubscribe"
        assert "not subscribed" in out.reply["error"]
        assert not out.last
    assert subs.patterns() == {"a"}


def test_first_and_last_subscriber_signals() -> None:
    subs: Subscriptions[str] = Subscriptions()
    assert subs.handle("a", Subscribe("x.*")).first
    assert not subs.handle("b", Subscribe("x.*")).first
    leave_a = subs.handle("a", Unsubscribe("x.*"))
    assert leave_a.reply == {"action": "unsubscribe", "pattern": "x.*", "status": True}
    assert not leave_a.last
    assert subs.handle("b", Unsubscribe("x.*")).last
    assert subs.patterns() == frozenset()
    assert subs.match("x.1") == []
    assert len(subs) == 0


def test_removing_a_subscriber_reports_emptied_patterns() -> None:
    subs: Subscriptions[str] = Subscriptions()
    for p in ("a", "b.*", "c?"):
        subs.subscribe("gone", p)
    subs.subscribe("stays", "b.*")
    assert subs.patterns_of("gone") == ("a", "b.*", "c?")
    assert set(subs.remove("gone")) == {"a", "c?"}
    assert subs.remove("gone") == ()
    assert subs.patterns() == {"b.*"}
    assert subs.match("b.1") == [("stays", "b.*")]


def test_caps_refuse_with_clear_errors() -> None:
    subs: Subscriptions[str] = Subscriptions(max_patterns_per_subscriber=2, max_pattern_length=8)
    subs.subscribe("s", "a")
    subs.subscribe("s", "b")
    too_many = subs.subscribe("s", "c")
    assert too_many.reply["status"] is False
    assert "at most 2" in too_many.reply["error"]
    too_long = subs.subscribe("t", "x" * 9)
    assert too_long.reply["status"] is False
    assert "at most 8" in too_long.reply["error"]
    empty = subs.subscribe("t", "")
    assert empty.reply["status"] is False
    assert subs.patterns() == {"a", "b"}
    assert subs.patterns_of("t") == ()


def test_match_delivers_once_per_matching_pattern() -> None:
    subs: Subscriptions[int] = Subscriptions()
    subs.subscribe(1, "kiosk.7.status")
    subs.subscribe(1, "kiosk.*")
    subs.subscribe(2, "kiosk.?.status")
    subs.subscribe(3, "kiosk\\.7.status")  # another spelling of the same literal
    subs.subscribe(4, "*")
    got = sorted(subs.match("kiosk.7.status"))
    assert got == [
        (1, "kiosk.*"),
        (1, "kiosk.7.status"),
        (2, "kiosk.?.status"),
        (3, "kiosk\\.7.status"),
        (4, "*"),
    ]
    assert subs.match("") == []
    assert sorted(subs.match("kiosk.")) == [(1, "kiosk.*"), (4, "*")]


def test_patterns_redis_never_matches_are_held_but_deliver_nothing() -> None:
    subs: Subscriptions[str] = Subscriptions(max_pattern_length=4096)
    deep = "*a" * 1001 + "*b"
    assert subs.subscribe("s", deep).first
    assert subs.match("a" * 1001 + "b") == []
    assert subs.unsubscribe("s", deep).last


pattern_st = st.text(alphabet="ab.*?[]^-\\", min_size=1, max_size=7)
channel_st = st.text(alphabet="ab.]^-\\[*", max_size=8)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(st.tuples(st.integers(0, 3), pattern_st, st.booleans()), min_size=1, max_size=25),
    channels=st.lists(channel_st, min_size=1, max_size=10),
)
def test_index_agrees_with_brute_force(
    ops: list[tuple[int, str, bool]], channels: list[str]
) -> None:
    subs: Subscriptions[int] = Subscriptions()
    held: dict[int, set[str]] = {}
    for who, pattern, add in ops:
        if add:
            subs.subscribe(who, pattern)
            held.setdefault(who, set()).add(pattern)
        else:
            subs.unsubscribe(who, pattern)
            held.get(who, set()).discard(pattern)
    for channel in channels:
        expected = sorted(
            (who, p) for who, ps in held.items() for p in ps if glob_match(p, channel)
        )
        assert sorted(subs.match(channel)) == expected


# -- delivered messages


def test_message_frame_round_trips() -> None:
    text = encode_message("kiosk.*", "kiosk.7", {"burn": 42})
    assert json.loads(text) == {
        "action": "message",
        "pattern": "kiosk.*",
        "channel": "kiosk.7",
        "data": {"burn": 42},
    }
    assert text == encode_message_json("kiosk.*", "kiosk.7", '{"burn":42}')
    msg = parse_message(text)
    assert (msg.pattern, msg.channel, msg.data) == ("kiosk.*", "kiosk.7", {"burn": 42})


@given(
    data=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=10,
    )
)
def test_any_json_data_survives_delivery(data: object) -> None:
    assert parse_message(encode_message("p*", "pq", data)).data == data


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ('{"action":"subscribe","pattern":"a","channel":"a","data":1}', "action"),
        ('{"action":"message","channel":"a","data":1}', "pattern"),
        ('{"action":"message","pattern":"a","channel":3,"data":1}', "channel"),
        ('{"action":"message","pattern":"a","channel":"a"}', "data"),
        ('{"action":"message","pattern":"a","channel":"a","data":NaN}', "frame"),
    ],
)
def test_bad_message_frames_name_the_field(frame: str, field: str) -> None:
    with pytest.raises(PubSubError) as info:
        parse_message(frame)
    assert info.value.field == field


def test_unserializable_data_is_a_typed_error() -> None:
    with pytest.raises(PubSubError) as info:
        encode_message("a", "a", {"x": float("nan")})
    assert info.value.field == "data"


def test_reply_encoding_and_actions() -> None:
    assert json.loads(encode_reply({"action": "subscribe", "status": True})) == {
        "action": "subscribe",
        "status": True,
    }
    assert set(ACTIONS) == {"subscribe", "unsubscribe", "message", "error"}
    assert pubsub.MAX_PATTERN_LENGTH >= 64


def test_index_stays_exact_as_patterns_sharing_prefixes_come_and_go() -> None:
    subs: Subscriptions[str] = Subscriptions()
    # Two globs in one prefix bucket, a third with the same prefix length, two literal spellings.
    for who, p in [("a", "ki*"), ("b", "ki?"), ("c", "zz*"), ("d", "kiX"), ("e", "ki\\X")]:
        subs.subscribe(who, p)
    subs.unsubscribe("a", "ki*")
    assert sorted(subs.match("kiX")) == [("b", "ki?"), ("d", "kiX"), ("e", "ki\\X")]
    subs.unsubscribe("d", "kiX")
    subs.unsubscribe("b", "ki?")
    assert subs.match("kiX") == [("e", "ki\\X")]
    assert subs.match("zz") == [("c", "zz*")]
