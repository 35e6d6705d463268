"""Browser command frames, sans-I/O: typed commands, field-named errors, reply shapes."""

from __future__ import annotations

from typing import Any

import pytest

from wire import clientmsg as cm

UID = "ab" * 16
MD5 = "CD" * 16


def test_commands_parse_to_typed_values() -> None:
    assert cm.parse_command({"action": "queue", "md5": MD5}) == cm.QueueImage(MD5.lower(), 1)
    assert cm.parse_command({"action": "queue", "md5": MD5, "count": 5}).count == 5  # type: ignore[union-attr]
    assert cm.parse_command({"action": "qclear"}) == cm.ClearQueue()
    assert cm.parse_command({"action": "snapshot"}) == cm.Snapshot()
    assert cm.parse_command({"action": "open", "uid": UID}) == cm.OpenTray(UID)
    assert cm.parse_command({"action": "name", "uid": UID, "name": "left"}) == cm.NameBurner(
        UID, "left"
    )
    sub = cm.parse_command({"action": "subscribe", "pattern": "session.a.*"})
    assert sub == cm.PubSubCommand(cm.Action.SUBSCRIBE, "session.a.*")


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({}, "action"),
        ({"action": 7}, "action"),
        ({"action": "shuffle"}, "action"),
        ({"action": "queue"}, "md5"),
        ({"action": "queue", "md5": "zz" * 16}, "md5"),
        ({"action": "queue", "md5": MD5, "count": True}, "count"),
        ({"action": "queue", "md5": MD5, "count": 1025}, "count"),
        ({"action": "open", "uid": 5}, "uid"),
        ({"action": "name", "uid": UID}, "name"),
        ({"action": "name", "uid": UID, "name": "two\nlines"}, "name"),
        ({"action": "name", "uid": UID, "name": "x" * 101}, "name"),
        ({"action": "subscribe"}, "pattern"),
    ],
)
def test_bad_frames_name_the_field(frame: dict[str, Any], field: str) -> None:
    with pytest.raises(cm.CommandError) as info:
        cm.parse_command(frame)
    assert info.value.field == field
    reply = info.value.reply()
    assert reply["status"] is False
    assert reply["error"].startswith(f"{field}: ")
    assert reply["action"] == (
        frame.get("action") if isinstance(frame.get("action"), str) else None
    )


def test_reply_and_push_shapes() -> None:
    assert cm.reply("qclear", True) == {"action": "qclear", "status": True}
    assert cm.reply("snapshot", True, result={"q": []}) == {
        "action": "snapshot",
        "status": True,
        "result": {"q": []},
    }
    assert cm.expiring(12.5) == {"action": "expiring", "expires_at": 12.5}
    assert cm.closing(1013, "x") == {"action": "closing", "code": 1013, "reason": "x"}
    assert set(cm.ACTIONS) == {a.value for a in cm.Action}
