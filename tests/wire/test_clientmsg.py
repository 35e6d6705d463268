"""Browser command frames, sans-I/O: every action parses to its typed command, every malformed
frame gives a `CommandError` naming the field at fault (and leaves the frame untouched), replies
and pushed frames have exactly the documented keys, and every JSON example in the "Browser
commands" section of docs/protocol.md is something this module reads or writes."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import clientmsg as cm
from wire import relay
from wire.clientmsg import (
    CancelBurn,
    ClearQueue,
    CommandError,
    CommonOnly,
    NameBurner,
    OpenTray,
    PubSubCommand,
    QueueImage,
    Reorder,
    Snapshot,
    parse_command,
)

UID = "3f2b9c1d0e4a5b6c7d8e9f0a1b2c3d4e"
MD5 = "0123456789abcdef0123456789abcdef"

DOC = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
SECTION = DOC.split("## Browser commands", 1)[1].split("\n## ", 1)[0]
COMMANDS_TABLE, PUSHED_PART = SECTION.split("### Pushed frames", 1)

# One valid frame per action, with the command it must become.
VALID: dict[str, tuple[dict[str, Any], cm.Command]] = {
    "subscribe": (
        {"action": "subscribe", "pattern": "session.ab12.*"},
        PubSubCommand(cm.Action.SUBSCRIBE, "session.ab12.*"),
    ),
    "unsubscribe": (
        {"action": "unsubscribe", "pattern": "session.ab12.*"},
        PubSubCommand(cm.Action.UNSUBSCRIBE, "session.ab12.*"),
    ),
    "snapshot": ({"action": "snapshot"}, Snapshot()),
    "queue": ({"action": "queue", "md5": MD5, "count": 3}, QueueImage(MD5, 3)),
    "qclear": ({"action": "qclear"}, ClearQueue()),
    "open": ({"action": "open", "uid": UID}, OpenTray(UID)),
    "name": ({"action": "name", "uid": UID, "name": "left box"}, NameBurner(UID, "left box")),
    "cancel": ({"action": "cancel", "uid": UID}, CancelBurn(UID)),
    "common_only": ({"action": "common_only", "uid": UID, "on": True}, CommonOnly(UID, True)),
    "reorder": ({"action": "reorder", "md5": MD5, "position": 2}, Reorder(MD5, 2)),
    "history": (
        {"action": "history", "span": "hour", "since": 1_700_000_000},
        cm.History(cm.Span.HOUR, 1_700_000_000),
    ),
}


# -- every action


def test_every_action_has_a_valid_case() -> None:
    assert tuple(VALID) == cm.ACTIONS


@pytest.mark.parametrize("action", cm.ACTIONS)
def test_every_action_parses_to_its_typed_command(action: str) -> None:
    frame, expected = VALID[action]
    before = copy.deepcopy(frame)
    command = parse_command(frame)
    assert command == expected
    assert command.action == action
    assert type(command.action) is cm.Action
    assert frame == before  # parsing reads the frame, never rewrites it


@pytest.mark.parametrize("action", cm.ACTIONS)
def test_only_pub_sub_is_left_to_the_balancer(action: str) -> None:
    command = parse_command(VALID[action][0])
    is_pubsub = action in ("subscribe", "unsubscribe")
    assert isinstance(command, PubSubCommand) is is_pubsub
    assert isinstance(command, cm.MasterCommand) is not is_pubsub


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        # count defaults to 1 and both ends of its range are accepted
        ({"action": "queue", "md5": MD5}, QueueImage(MD5, 1)),
        ({"action": "queue", "md5": MD5, "count": 1}, QueueImage(MD5, 1)),
        ({"action": "queue", "md5": MD5, "count": 1024}, QueueImage(MD5, 1024)),
        # hex digits are case-insensitive and come out lower-case, so one image has one key
        ({"action": "queue", "md5": MD5.upper()}, QueueImage(MD5, 1)),
        ({"action": "open", "uid": UID.upper()}, OpenTray(UID)),
        ({"action": "name", "uid": UID.upper(), "name": "x"}, NameBurner(UID, "x")),
        # a name is up to 100 characters (not bytes) of one line; empty clears it
        ({"action": "name", "uid": UID, "name": "é" * 100}, NameBurner(UID, "é" * 100)),
        ({"action": "name", "uid": UID, "name": ""}, NameBurner(UID, "")),
        ({"action": "name", "uid": UID, "name": "Tür 2 → links"}, NameBurner(UID, "Tür 2 → links")),
        # common_only takes both booleans; reorder both ends of its range, md5 lower-cased
        ({"action": "common_only", "uid": UID, "on": False}, CommonOnly(UID, False)),
        ({"action": "reorder", "md5": MD5.upper(), "position": 0}, Reorder(MD5, 0)),
        ({"action": "reorder", "md5": MD5, "position": 1023}, Reorder(MD5, 1023)),
        ({"action": "cancel", "uid": UID.upper()}, CancelBurn(UID)),
        # history: minutes since the start by default
        ({"action": "history"}, cm.History(cm.Span.MINUTE, 0)),
        ({"action": "history", "span": "minute", "since": 0}, cm.History(cm.Span.MINUTE, 0)),
        # a pattern is passed on as sent, up to 4096 characters; pub/sub judges it
        (
            {"action": "subscribe", "pattern": "s" * 4096},
            PubSubCommand(cm.Action.SUBSCRIBE, "s" * 4096),
        ),
    ],
)
def test_accepted_edge_cases(frame: dict[str, Any], expected: cm.Command) -> None:
    assert parse_command(frame) == expected


def test_commands_are_immutable_values() -> None:
    command = parse_command(VALID["queue"][0])
    with pytest.raises(AttributeError):
        command.count = 5  # type: ignore[misc,union-attr]
    assert command == QueueImage(MD5, 3)
    assert hash(command) == hash(QueueImage(MD5, 3))


# -- every validation error

BAD: list[tuple[dict[str, Any], str | None, str, str]] = [
    # (frame, action named in the error, field, reason)
    ({}, None, "action", "missing"),
    ({"action": None}, None, "action", "missing"),
    ({"md5": MD5}, None, "action", "missing"),
    ({"action": 7}, None, "action", "must be a string, got int"),
    ({"action": True}, None, "action", "must be a string, got bool"),
    ({"action": ["queue"]}, None, "action", "must be a string, got list"),
    ({"action": {"queue": 1}}, None, "action", "must be a string, got dict"),
    ({"action": ""}, "", "action", "unknown action ''"),
    ({"action": "publish"}, "publish", "action", "unknown action 'publish'"),
    ({"action": "commonOnly"}, "commonOnly", "action", "unknown action 'commonOnly'"),
    ({"action": "QUEUE", "md5": MD5}, "QUEUE", "action", "unknown action 'QUEUE'"),
    ({"action": "queue "}, "queue ", "action", "unknown action 'queue '"),
    ({"action": "auth", "token": "t"}, "auth", "action", "unknown action 'auth'"),
    ({"action": "expiring"}, "expiring", "action", "unknown action 'expiring'"),
    # pub/sub
    ({"action": "subscribe"}, "subscribe", "pattern", "missing"),
    ({"action": "unsubscribe"}, "unsubscribe", "pattern", "missing"),
    (
        {"action": "subscribe", "pattern": None},
        "subscribe",
        "pattern",
        "must be a string, got NoneType",
    ),
    (
        {"action": "subscribe", "pattern": ["a"]},
        "subscribe",
        "pattern",
        "must be a string, got list",
    ),
    (
        {"action": "unsubscribe", "pattern": "s" * 4097},
        "unsubscribe",
        "pattern",
        "longer than 4096 characters",
    ),
    # queue: count
    (
        {"action": "queue", "md5": MD5, "count": True},
        "queue",
        "count",
        "must be an integer, got True",
    ),
    (
        {"action": "queue", "md5": MD5, "count": False},
        "queue",
        "count",
        "must be an integer, got False",
    ),
    (
        {"action": "queue", "md5": MD5, "count": 2.0},
        "queue",
        "count",
        "must be an integer, got 2.0",
    ),
    (
        {"action": "queue", "md5": MD5, "count": "2"},
        "queue",
        "count",
        "must be an integer, got '2'",
    ),
    (
        {"action": "queue", "md5": MD5, "count": None},
        "queue",
        "count",
        "must be an integer, got None",
    ),
    (
        {"action": "queue", "md5": MD5, "count": [2]},
        "queue",
        "count",
        "must be an integer, got [2]",
    ),
    ({"action": "queue", "md5": MD5, "count": 0}, "queue", "count", "must be 1..1024, got 0"),
    ({"action": "queue", "md5": MD5, "count": -1}, "queue", "count", "must be 1..1024, got -1"),
    ({"action": "queue", "md5": MD5, "count": 1025}, "queue", "count", "must be 1..1024, got 1025"),
    (
        {"action": "queue", "md5": MD5, "count": 2**64},
        "queue",
        "count",
        f"must be 1..1024, got {2**64}",
    ),
    # Beyond Python's int-to-text limit (4,300 digits): still a clear error, not a ValueError.
    (
        {"action": "queue", "md5": MD5, "count": 10**5000},
        "queue",
        "count",
        "must be 1..1024, got a 16610-bit number",
    ),
    # queue: md5
    ({"action": "queue"}, "queue", "md5", "missing"),
    ({"action": "queue", "count": 2}, "queue", "md5", "missing"),
    ({"action": "queue", "md5": None}, "queue", "md5", "must be a string, got NoneType"),
    ({"action": "queue", "md5": 12345}, "queue", "md5", "must be a string, got int"),
    ({"action": "queue", "md5": MD5 + "0"}, "queue", "md5", "longer than 32 characters"),
    ({"action": "queue", "md5": "xyz"}, "queue", "md5", "must be 32 hex digits, got 'xyz'"),
    ({"action": "queue", "md5": ""}, "queue", "md5", "must be 32 hex digits, got ''"),
    (
        {"action": "queue", "md5": MD5[:31]},
        "queue",
        "md5",
        f"must be 32 hex digits, got {MD5[:31]!r}",
    ),
    (
        {"action": "queue", "md5": "zz" * 16},
        "queue",
        "md5",
        f"must be 32 hex digits, got {'zz' * 16!r}",
    ),
    # fullmatch: a trailing newline or space does not sneak through
    (
        {"action": "queue", "md5": MD5[:31] + "\n"},
        "queue",
        "md5",
        f"must be 32 hex digits, got {MD5[:31] + chr(10)!r}",
    ),
    (
        {"action": "queue", "md5": " " + MD5[:31]},
        "queue",
        "md5",
        f"must be 32 hex digits, got {' ' + MD5[:31]!r}",
    ),
    # digits of other scripts are not hex digits
    (
        {"action": "queue", "md5": "٣" * 32},
        "queue",
        "md5",
        f"must be 32 hex digits, got {'٣' * 32!r}",
    ),
    # open
    ({"action": "open"}, "open", "uid", "missing"),
    ({"action": "open", "uid": 5}, "open", "uid", "must be a string, got int"),
    ({"action": "open", "uid": UID + "a"}, "open", "uid", "longer than 32 characters"),
    ({"action": "open", "uid": "left"}, "open", "uid", "must be 32 hex digits, got 'left'"),
    # name: the name is checked first, then the uid
    ({"action": "name", "uid": UID}, "name", "name", "missing"),
    (
        {"action": "name", "uid": UID, "name": None},
        "name",
        "name",
        "must be a string, got NoneType",
    ),
    ({"action": "name", "uid": UID, "name": 3}, "name", "name", "must be a string, got int"),
    (
        {"action": "name", "uid": UID, "name": "x" * 101},
        "name",
        "name",
        "longer than 100 characters",
    ),
    (
        {"action": "name", "uid": UID, "name": "two\nlines"},
        "name",
        "name",
        "one line of text, no tabs",
    ),
    ({"action": "name", "uid": UID, "name": "a\r"}, "name", "name", "one line of text, no tabs"),
    ({"action": "name", "uid": UID, "name": "a\tb"}, "name", "name", "one line of text, no tabs"),
    ({"action": "name", "uid": UID, "name": "\x00"}, "name", "name", "one line of text, no tabs"),
    ({"action": "name", "uid": UID, "name": "a\x1f"}, "name", "name", "one line of text, no tabs"),
    ({"action": "name", "name": "left"}, "name", "uid", "missing"),
    ({"action": "name", "uid": 1, "name": "left"}, "name", "uid", "must be a string, got int"),
    (
        {"action": "name", "uid": "left", "name": "left"},
        "name",
        "uid",
        "must be 32 hex digits, got 'left'",
    ),
    # cancel
    ({"action": "cancel"}, "cancel", "uid", "missing"),
    ({"action": "cancel", "uid": None}, "cancel", "uid", "must be a string, got NoneType"),
    (
        {"action": "cancel", "uid": "abab…ab"},
        "cancel",
        "uid",
        "must be 32 hex digits, got 'abab…ab'",
    ),
    # common_only: the uid is checked first, then `on`, which must be a real boolean
    ({"action": "common_only", "on": True}, "common_only", "uid", "missing"),
    (
        {"action": "common_only", "uid": "x", "on": True},
        "common_only",
        "uid",
        "must be 32 hex digits, got 'x'",
    ),
    ({"action": "common_only", "uid": UID}, "common_only", "on", "missing"),
    (
        {"action": "common_only", "uid": UID, "on": None},
        "common_only",
        "on",
        "must be true or false, got None",
    ),
    (
        {"action": "common_only", "uid": UID, "on": 1},
        "common_only",
        "on",
        "must be true or false, got 1",
    ),
    (
        {"action": "common_only", "uid": UID, "on": 0},
        "common_only",
        "on",
        "must be true or false, got 0",
    ),
    (
        {"action": "common_only", "uid": UID, "on": "true"},
        "common_only",
        "on",
        "must be true or false, got 'true'",
    ),
    # reorder: the md5 is checked first, then the position
    ({"action": "reorder", "position": 0}, "reorder", "md5", "missing"),
    ({"action": "reorder", "md5": 5, "position": 0}, "reorder", "md5", "must be a string, got int"),
    (
        {"action": "reorder", "md5": "xyz", "position": 0},
        "reorder",
        "md5",
        "must be 32 hex digits, got 'xyz'",
    ),
    ({"action": "reorder", "md5": MD5}, "reorder", "position", "missing"),
    (
        {"action": "reorder", "md5": MD5, "position": None},
        "reorder",
        "position",
        "must be an integer, got None",
    ),
    (
        {"action": "reorder", "md5": MD5, "position": False},
        "reorder",
        "position",
        "must be an integer, got False",
    ),
    (
        {"action": "reorder", "md5": MD5, "position": 1.0},
        "reorder",
        "position",
        "must be an integer, got 1.0",
    ),
    (
        {"action": "reorder", "md5": MD5, "position": "0"},
        "reorder",
        "position",
        "must be an integer, got '0'",
    ),
    (
        {"action": "reorder", "md5": MD5, "position": -(10**5000)},
        "reorder",
        "position",
        "must be 0..1023, got a 16610-bit number",
    ),
    (
        {"action": "reorder", "md5": MD5, "position": -1},
        "reorder",
        "position",
        "must be 0..1023, got -1",
    ),
    (
        {"action": "reorder", "md5": MD5, "position": 1024},
        "reorder",
        "position",
        "must be 0..1023, got 1024",
    ),
    # history: a span by name, a since of whole non-negative seconds
    (
        {"action": "history", "span": "day"},
        "history",
        "span",
        "must be one of minute, hour, got 'day'",
    ),
    ({"action": "history", "span": 60}, "history", "span", "must be one of minute, hour, got 60"),
    (
        {"action": "history", "since": -1},
        "history",
        "since",
        "must be 0..253402300799, got -1",
    ),
    ({"action": "history", "since": 1.5}, "history", "since", "must be an integer, got 1.5"),
]


@pytest.mark.parametrize(
    ("frame", "action", "field", "reason"),
    BAD,
    ids=[f"{i}-{f}" for i, (_, _, f, _) in enumerate(BAD)],
)
def test_bad_frames_name_the_field(
    frame: dict[str, Any], action: str | None, field: str, reason: str
) -> None:
    before = copy.deepcopy(frame)
    with pytest.raises(CommandError) as info:
        parse_command(frame)
    err = info.value
    assert isinstance(err, ValueError)  # callers that catch ValueError still catch it
    assert err.action == action
    assert err.field == field
    assert err.reason == reason
    assert str(err) == f"{field}: {reason}"
    # The reply names the action it answers and starts its error with the field.
    assert err.reply() == {"action": action, "status": False, "error": f"{field}: {reason}"}
    assert frame == before  # nothing lost: the frame is as it was


def test_every_action_has_a_validation_case_unless_it_takes_no_fields() -> None:
    covered = {a for _, a, f, _ in BAD if f != "action"}
    assert covered == set(cm.ACTIONS) - {"snapshot", "qclear"}
    # The fieldless ones ignore what else the frame carries.
    assert parse_command({"action": "snapshot", "md5": 7}) == Snapshot()
    assert parse_command({"action": "qclear", "count": 0}) == ClearQueue()


# -- replies and pushed frames


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, {"action": "queue", "status": True}),
        ({"error": "md5: missing"}, {"action": "queue", "status": True, "error": "md5: missing"}),
        ({"result": {"n": 1}}, {"action": "queue", "status": True, "result": {"n": 1}}),
        (
            {"error": "e", "result": [1]},
            {"action": "queue", "status": True, "error": "e", "result": [1]},
        ),
        # empty results still travel: an empty queue is an answer, not a missing one
        ({"result": []}, {"action": "queue", "status": True, "result": []}),
        ({"result": {}}, {"action": "queue", "status": True, "result": {}}),
        ({"result": 0}, {"action": "queue", "status": True, "result": 0}),
        ({"result": False}, {"action": "queue", "status": True, "result": False}),
        ({"error": ""}, {"action": "queue", "status": True, "error": ""}),
        ({"error": None, "result": None}, {"action": "queue", "status": True}),
    ],
)
def test_reply_has_exactly_the_documented_keys(
    kwargs: dict[str, Any], expected: dict[str, Any]
) -> None:
    out = cm.reply("queue", True, **kwargs)
    assert out == expected
    assert list(out) == list(expected)  # action, status, then error, then result
    assert json.loads(json.dumps(out)) == out


def test_reply_to_a_frame_without_a_readable_action() -> None:
    assert cm.reply(None, False, error="action: missing") == {
        "action": None,
        "status": False,
        "error": "action: missing",
    }
    assert json.dumps(parse_error({}).reply()) == (
        '{"action": null, "status": false, "error": "action: missing"}'
    )


def parse_error(frame: dict[str, Any]) -> CommandError:
    with pytest.raises(CommandError) as info:
        parse_command(frame)
    return info.value


def test_pushed_frames() -> None:
    assert cm.expiring(1800000600.0) == {"action": "expiring", "expires_at": 1800000600.0}
    assert cm.closing(1013, "session master lost") == {
        "action": "closing",
        "code": 1013,
        "reason": "session master lost",
    }
    assert cm.PUSHES == ("expiring", "closing")
    # A push can never be mistaken for a reply or a command.
    assert not set(cm.PUSHES) & set(cm.ACTIONS)
    assert "status" not in cm.expiring(0.0)
    assert "status" not in cm.closing(1001, "")


# -- the document


def _expand(example: str) -> str:
    """A doc example made literal: `cdcd…cd` is 32 hex digits, `"token":…` any token, and an
    example wrapped over two lines of the table's text is one line."""
    example = re.sub(r'"([0-9a-f]{2})\1*…\1"', lambda m: '"' + m.group(1) * 16 + '"', example)
    return example.replace(":…", ':"…"').replace("\n", " ")


def test_the_action_tables_match_the_module() -> None:
    assert re.findall(r"^\| `(\w+)` \|", COMMANDS_TABLE, flags=re.MULTILINE) == list(cm.ACTIONS)
    assert re.findall(r"^\| `(\w+)` \|", PUSHED_PART, flags=re.MULTILINE) == list(cm.PUSHES)
    # The documented limits are the enforced ones.
    assert f"`count` (1..{cm.MAX_QUEUE_COUNT}, default 1)" in COMMANDS_TABLE
    assert f"`name` (≤ {cm.MAX_NAME_LENGTH} chars, one line)" in COMMANDS_TABLE
    assert f"`position` (0..{cm.MAX_QUEUE_POSITION - 1})" in COMMANDS_TABLE


def test_the_reply_examples_are_what_the_module_builds() -> None:
    block = SECTION.split("```json\n", 1)[1].split("```", 1)[0]
    examples = [json.loads(line) for line in block.splitlines()]
    ok, refused, snapshot = examples
    assert cm.reply("queue", True) == ok
    # The documented error is exactly the reply to that malformed frame.
    assert parse_error({"action": "queue", "md5": "xyz"}).reply() == refused
    assert cm.reply("snapshot", True, result=snapshot["result"]) == snapshot
    assert set(snapshot["result"]) == {"session", "queue", "burners", "kiosks", "totals"}
    for example in examples:
        assert list(example) == list(cm.reply(**example))


def test_every_inline_example_parses() -> None:
    frames = [json.loads(_expand(s)) for s in re.findall(r"`(\{[^`]*\})`", SECTION)]
    commands: list[cm.Command] = []
    pushes: list[dict[str, Any]] = []
    replies: list[dict[str, Any]] = []
    for frame in frames:
        action = frame["action"]
        if "status" in frame:
            assert frame == cm.reply(**frame)
            assert list(frame) == list(cm.reply(**frame))
            replies.append(frame)
        elif action in cm.PUSHES:
            pushes.append(frame)
        elif action == "auth":
            # The (re-)auth frame belongs to the relay; it must read the token it carries.
            assert relay.parse_auth(json.dumps(frame)) == frame["token"]
        else:
            commands.append(parse_command(frame))
    assert [c.action for c in commands] == list(cm.ACTIONS)
    # The examples use real values once written out.
    assert commands[cm.ACTIONS.index("queue")] == QueueImage("cd" * 16, 2)
    assert commands[cm.ACTIONS.index("name")] == NameBurner("ab" * 16, "left box")
    assert commands[cm.ACTIONS.index("common_only")] == CommonOnly("ab" * 16, True)
    assert commands[cm.ACTIONS.index("reorder")] == Reorder("cd" * 16, 0)
    assert pushes == [cm.expiring(1800000600.0), cm.closing(1013, "session master lost")]
    assert cm.reply("auth", True) in replies  # the answer to a re-auth on an open socket
    assert all(r["status"] or r["error"] for r in replies)


# -- properties

hex_mixed = st.text(alphabet="0123456789abcdefABCDEF", min_size=32, max_size=32)
one_line = st.text(
    alphabet=st.characters(min_codepoint=0x20, codec="utf-8"),  # no surrogates: JSON text
    max_size=cm.MAX_NAME_LENGTH,
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=100, deadline=None)
@given(md5=hex_mixed, count=st.integers(min_value=1, max_value=cm.MAX_QUEUE_COUNT))
def test_any_valid_queue_frame_parses(md5: str, count: int) -> None:
    assert parse_command({"action": "queue", "md5": md5, "count": count}) == QueueImage(
        md5.lower(), count
    )


@settings(max_examples=100, deadline=None)
@given(uid=hex_mixed, name=one_line)
def test_any_one_line_name_parses(uid: str, name: str) -> None:
    assert parse_command({"action": "name", "uid": uid, "name": name}) == NameBurner(
        uid.lower(), name
    )


@settings(max_examples=100, deadline=None)
@given(
    name=one_line.filter(lambda s: len(s) < cm.MAX_NAME_LENGTH),
    control=st.characters(max_codepoint=0x1F),
    at=st.integers(min_value=0, max_value=cm.MAX_NAME_LENGTH),
)
def test_a_control_character_anywhere_in_a_name_is_refused(
    name: str, control: str, at: int
) -> None:
    at = min(at, len(name))
    bad = name[:at] + control + name[at:]
    err = parse_error({"action": "name", "uid": UID, "name": bad})
    assert (err.field, err.reason) == ("name", "one line of text, no tabs")


@settings(max_examples=150, deadline=None)
@given(
    action=st.one_of(st.sampled_from(cm.ACTIONS), json_values),
    fields=st.dictionaries(
        st.sampled_from(["pattern", "md5", "count", "uid", "name", "on", "position", "extra"]),
        json_values,
        max_size=4,
    ),
)
def test_any_decoded_frame_gives_a_command_or_a_field_named_error(
    action: Any, fields: dict[str, Any]
) -> None:
    frame = {"action": action, **fields}
    before = copy.deepcopy(frame)
    outcome = _outcome(frame)
    if isinstance(outcome, CommandError):
        reply = outcome.reply()
        assert reply["status"] is False
        assert reply["error"].startswith(f"{outcome.field}: ")
        assert outcome.field in {"action", *fields} | {
            "md5",
            "uid",
            "name",
            "pattern",
            "on",
            "position",
        }
        assert json.loads(json.dumps(reply)) == reply  # the reply can always be sent
    else:
        assert outcome.action == action
    assert frame == before


def _outcome(frame: dict[str, Any]) -> cm.Command | CommandError:
    try:
        return parse_command(frame)
    except CommandError as err:
        return err
