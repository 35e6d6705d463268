"""The Master over a real SQLite file: restart keeps queue, names and statistics; routing works."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path

import pytest

from coordinator.master import (
    CredentialExpiring,
    ImageInfo,
    Master,
    MemberKind,
    Payload,
    SessionClosed,
    UnknownSession,
)
from wire import burnproto as bp

IMG = "ab" * 16
UNLISTED = "cd" * 16
UID1, UID2 = "1" * 32, "2" * 32


class Inbox:
    def __init__(self) -> None:
        self.items: list[Payload] = []

    def __call__(self, payload: Payload) -> None:
        self.items.append(payload)

    def take(self) -> list[Payload]:
        items, self.items = self.items, []
        return items


async def catalog(md5: str) -> ImageInfo | None:
    if md5 == IMG:
        return ImageInfo(
            IMG, "ubuntu-26.04-desktop-amd64.iso", 6_114_656_256, "Desktop\r\n\r\namd64"
        )
    return None


async def open_master(data: Path, **kwargs: object) -> Master:
    master = Master(data, catalog=catalog, **kwargs)  # type: ignore[arg-type]
    await master.open()
    return master


def status(kind: bp.StatusKind) -> bp.Status:
    return bp.Status(bp.StatusValue(kind))


async def booth_with_three_queued(data: Path) -> Master:
    """A master on `data` whose session "booth" has UID1's burner (b1, idle, able to burn IMG)
    and a command box (c1) that queued three discs of IMG."""
    master = await open_master(data)
    await master.load("booth")
    master.join("booth", "b1", MemberKind.BURNER, Inbox(), uid=UID1)
    master.join("booth", "c1", MemberKind.COMMAND, Inbox())
    await master.handle("booth", "b1", bp.Cap((bp.Capability.BURNBDR,), (IMG,)))
    await master.handle("booth", "b1", status(bp.StatusKind.IDLE))
    await master.handle("booth", "c1", bp.Queue(IMG, 3))
    return master


async def test_restart_keeps_queue_names_stats_and_burns_in_flight(tmp_path: Path) -> None:
    data = tmp_path / "data"
    master = await open_master(data)
    await master.load("Booth")
    burner, cmd = Inbox(), Inbox()
    master.join("booth", "b1", MemberKind.BURNER, burner, uid=UID1)
    master.join("BOOTH", "c1", MemberKind.COMMAND, cmd)
    await master.handle("booth", "b1", bp.Cap((bp.Capability.BURNBDR,), (IMG,)))
    await master.handle("booth", "b1", status(bp.StatusKind.IDLE))
    await master.handle("booth", "c1", bp.Queue(IMG, 4))
    await master.handle("booth", "c1", bp.Name(UID1, "Left drive"))
    for kind in (bp.StatusKind.MD5PASS, bp.StatusKind.AVAIL, bp.StatusKind.MD5FAIL):
        await master.handle("booth", "b1", status(kind))
    await master.handle("booth", "b1", status(bp.StatusKind.AVAIL))
    # Burning the third disc (the failed one is retried); two more are waiting.
    assert [p for p in burner.take() if isinstance(p, bp.Burn)] == [bp.Burn(IMG)] * 3
    assert master.room("booth").queue == ((IMG, 2),)  # type: ignore[union-attr]
    await master.close()

    again = await open_master(data)
    room = await again.load("BOOTH")
    # The burn in flight never reported: it is back in the queue, first.
    assert room.queue == ((IMG, 3),)
    assert room.burners[UID1].name == "Left drive"
    assert room.stats()[UID1] == {
        "burned": 1,
        "failed": 1,
        "cancelled": 0,
        "recent_failures": 1,
        "mean_speed": room.stats()[UID1]["mean_speed"],
    }
    assert room.stats()[UID1]["mean_speed"] is not None
    # The box is remembered: the queue accepts its image before it reconnects.
    cmd2 = Inbox()
    again.join("booth", "c2", MemberKind.COMMAND, cmd2)
    await again.handle("booth", "c2", bp.QReport())
    assert cmd2.take()[-1] == bp.QList((IMG, IMG, IMG))
    await again.close()

    with closing(sqlite3.connect(data / "master.db")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_whatis_answers_from_the_catalog(tmp_path: Path) -> None:
    master = await open_master(tmp_path)
    await master.load("s")
    inbox = Inbox()
    master.join("s", "d", MemberKind.DISPLAY, inbox)
    inbox.take()
    await master.handle("s", "d", bp.WhatIs(IMG.upper()))
    await master.handle("s", "d", bp.WhatIs(UNLISTED))
    info, error = inbox.take()
    assert info == bp.Info(
        IMG, "ubuntu-26.04-desktop-amd64.iso", 6_114_656_256, "Desktop\r\n\r\namd64"
    )
    assert isinstance(error, bp.Error)
    assert error.code == "UNKNOWN_IMAGE"
    await master.close()


async def test_changes_are_published_on_session_channels(tmp_path: Path) -> None:
    seen: list[tuple[str, Mapping[str, object]]] = []
    master = await open_master(tmp_path, on_change=lambda ch, data: seen.append((ch, data)))
    await master.load("Fest")
    master.join("fest", "b", MemberKind.BURNER, Inbox(), uid=UID2)
    await master.handle("fest", "b", bp.Cap((bp.Capability.BURNBDR,), (IMG,)))
    await master.handle("fest", "b", status(bp.StatusKind.IDLE))
    master.join("fest", "c", MemberKind.COMMAND, Inbox())
    await master.handle("fest", "c", bp.Queue(IMG))
    await master.handle("fest", "b", bp.Status(bp.StatusValue.progress(30)))
    channels = [ch for ch, _ in seen]
    assert "session.fest.members" in channels
    assert "session.fest.queue" in channels
    progress = [d for ch, d in seen if ch == f"session.fest.burner.{UID2}.status"][-1]
    assert (progress["status"], progress["job"]) == ("30%", IMG)
    await master.close()


async def test_expiry_notice_reaches_members_of_the_credential_in_every_room(
    tmp_path: Path,
) -> None:
    master = await open_master(tmp_path)
    a, b, other = Inbox(), Inbox(), Inbox()
    for session in ("one", "two"):
        await master.load(session)
    master.join("one", "k", MemberKind.BURNER, a, uid=UID1, credential_id="cred-7")
    master.join("two", "web", MemberKind.BROWSER, b, credential_id="cred-7")
    master.join("two", "web2", MemberKind.BROWSER, other, credential_id="cred-8")
    for inbox in (a, b, other):
        inbox.take()
    assert master.notify_expiry("cred-7", 1_900_000_000.0) == 2
    assert a.take() == [CredentialExpiring("cred-7", 1_900_000_000.0)]
    assert b.take() == [CredentialExpiring("cred-7", 1_900_000_000.0)]
    assert other.take() == []
    await master.close()


async def test_unload_tells_members_and_load_brings_the_queue_back(tmp_path: Path) -> None:
    master = await open_master(tmp_path)
    await master.load("s")
    cmd = Inbox()
    master.join("s", "b", MemberKind.BURNER, Inbox(), uid=UID1)
    await master.handle("s", "b", bp.Cap((bp.Capability.BURNBDR,), (IMG,)))
    master.join("s", "c", MemberKind.COMMAND, cmd)
    await master.handle("s", "c", bp.Queue(IMG, 2))
    await master.unload("S")
    assert cmd.take()[-1] == SessionClosed("s", "unloaded")
    assert master.room("s") is None
    with pytest.raises(UnknownSession):
        master.join("s", "late", MemberKind.DISPLAY, Inbox())
    room = await master.load("s")
    assert room.queue == ((IMG, 2),)
    await master.close()


async def test_a_newer_schema_is_refused_not_damaged(tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / "master.db")) as conn:
        conn.execute("PRAGMA user_version = 99")
    master = Master(tmp_path)
    with pytest.raises(RuntimeError, match="schema version 99"):
        await master.open()
    await master.close()


async def test_a_counted_result_is_known_after_a_crash(tmp_path: Path) -> None:
    # The job id is written in the same transaction as the statistics it changed: after the
    # master dies (no clean close, so nothing but what was written survives), a replayed result
    # is recognised and the disc is not counted twice.
    data = tmp_path / "data"
    master = await open_master(data)
    await master.load("booth")
    master.join("booth", "b1", MemberKind.BURNER, Inbox(), uid=UID1)
    await master.handle("booth", "b1", bp.Cap((bp.Capability.BURNBDR,), (IMG,)))
    await master.handle("booth", "b1", bp.Status(bp.StatusValue.progress(40)))
    await master.handle("booth", "b1", status(bp.StatusKind.MD5PASS), job="job-1")
    assert master.counted("booth", UID1, "job-1")
    assert not master.counted("booth", UID1, "job-2")
    await master.db.flush()  # what the writer thread had committed when the process died
    with closing(sqlite3.connect(data / "master.db")) as conn:
        burned, jobs = conn.execute(
            "SELECT burned, jobs FROM burners WHERE uid = ?", (UID1,)
        ).fetchone()
    assert (burned, jobs) == (1, '["job-1"]')
    await master.close()

    again = await open_master(data)
    room = await again.load("booth")
    assert room.burners[UID1].stats.burned == 1
    assert again.counted("BOOTH", UID1, "job-1")
    assert not again.counted("booth", UID2, "job-1")
    await again.close()


async def test_history_counts_per_minute_and_hour_per_burner_and_kiosk_across_restart(
    tmp_path: Path,
) -> None:
    now = [1_800_000_030.0]  # 30 s into a minute, 30 s into an hour
    master = await open_master(tmp_path, wall=lambda: now[0])
    await master.load("booth")
    burner = Inbox()
    await master.kiosk_hello(
        "booth", 4, name="Hall C kiosk", version="1", burners=(UID1,), images=(IMG,)
    )
    master.join("booth", "b1", MemberKind.BURNER, burner, uid=UID1)
    master.join("booth", "b2", MemberKind.BURNER, Inbox(), uid=UID2)  # a TCP burner, no kiosk
    master.join("booth", "c1", MemberKind.COMMAND, Inbox())
    await master.handle("booth", "b1", bp.Cap((bp.Capability.BURNBDR,), (IMG,)))
    await master.handle("booth", "c1", bp.Name(UID1, "Left drive"))
    await master.handle("booth", "c1", bp.Queue(IMG, 5))
    for kind, minutes in ((bp.StatusKind.MD5PASS, 0), (bp.StatusKind.MD5FAIL, 1)):
        await master.handle("booth", "b1", status(bp.StatusKind.AVAIL))
        now[0] += 60 * minutes
        await master.handle("booth", "b1", status(kind))
    await master.handle("booth", "b1", status(bp.StatusKind.AVAIL))
    await master.handle("booth", "b1", status(bp.StatusKind.MD5PASS))
    minute = await master.history("booth", 60)
    assert minute["totals"] == {"burned": 2, "failed": 1}
    start = 1_800_000_000
    assert [
        (r["start"], r["kind"], r["id"], r["name"], r["burned"], r["failed"])
        for r in minute["rows"]
    ] == [
        (start, "burner", UID1, "Left drive", 1, 0),
        (start, "kiosk", 4, "Hall C kiosk", 1, 0),
        (start + 60, "burner", UID1, "Left drive", 1, 1),
        (start + 60, "kiosk", 4, "Hall C kiosk", 1, 1),
    ]
    # `since` leaves out buckets that ended before it; an hour holds all three.
    later = await master.history("booth", 60, since=start + 60)
    assert {r["start"] for r in later["rows"]} == {start + 60}
    await master.close()

    again = await open_master(tmp_path)
    hour = await again.history("BOOTH", 3600)
    assert hour["totals"] is None  # not loaded: the rows alone
    assert [(r["kind"], r["burned"], r["failed"]) for r in hour["rows"]] == [
        ("burner", 2, 1),
        ("kiosk", 2, 1),
    ]
    assert {r["start"] for r in hour["rows"]} == {1_800_000_000 - 1_800_000_000 % 3600}
    await again.close()


async def test_a_burn_that_outlived_its_master_is_taken_back_out_of_the_queue(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    master = await booth_with_three_queued(data)
    await master.handle("booth", "b1", bp.Status(bp.StatusValue.progress(20)))
    assert master.room("booth").queue == ((IMG, 2),)  # type: ignore[union-attr]
    await master.close()  # the master is gone; the kiosk keeps burning

    again = await open_master(data)
    room = await again.load("booth")
    assert room.queue == ((IMG, 3),)  # its burn may be lost: the disc is still made
    burner = Inbox()
    again.join("booth", "b2", MemberKind.BURNER, burner, uid=UID1)
    await again.handle("booth", "b2", bp.Cap((bp.Capability.BURNBDR,), (IMG,)))
    # ... but it was not: it is still burning that disc, which is not made twice.
    await again.handle("booth", "b2", bp.Status(bp.StatusValue.progress(70)))
    assert room.queue == ((IMG, 2),)
    await again.handle("booth", "b2", status(bp.StatusKind.MD5PASS))
    assert room.stats()[UID1]["burned"] == 1
    assert room.queue == ((IMG, 2),)
    assert [p for p in burner.take() if isinstance(p, bp.Burn)] == []
    await again.close()


async def test_a_burn_lost_with_its_master_stays_in_the_queue(tmp_path: Path) -> None:
    data = tmp_path / "data"
    master = await booth_with_three_queued(data)
    await master.close()

    again = await open_master(data)
    room = await again.load("booth")
    again.join("booth", "b2", MemberKind.BURNER, Inbox(), uid=UID1)
    await again.handle("booth", "b2", bp.Cap((bp.Capability.BURNBDR,), (IMG,)))
    # It comes back with a fresh blank, not burning: the requeued disc is its next burn.
    await again.handle("booth", "b2", status(bp.StatusKind.TRAYOPEN))
    await again.handle("booth", "b2", bp.Status(bp.StatusValue.progress(5)))
    assert room.queue == ((IMG, 3),)
    await again.close()
