"""The job journal on a real SQLite file: states, crash recovery, upstream reporting."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from appliance.journal import (
    INTERRUPTED,
    INTERRUPTED_MESSAGE,
    JobState,
    Journal,
    JournalDB,
    JournalError,
)


async def test_job_life_and_history(tmp_path: Path):
    j = await Journal.open(tmp_path / "journal.db")
    try:
        await j.create("job1", "uid1", "/dev/loop3", "/img.iso", "ab" * 32, "cd" * 16)
        await j.transition("job1", JobState.WRITING)
        await j.transition("job1", JobState.VERIFYING)
        await j.transition("job1", JobState.PASSED)
        rec = await j.get("job1")
        assert rec is not None
        assert (rec.state, rec.drive_uid, rec.image_sha256) == (JobState.PASSED, "uid1", "ab" * 32)
        assert await j.history("job1") == [
            JobState.QUEUED,
            JobState.WRITING,
            JobState.VERIFYING,
            JobState.PASSED,
        ]
    finally:
        await j.close()


async def test_settings_survive_power_loss(tmp_path: Path):
    j = await Journal.open(tmp_path / "journal.db")
    await j.close()
    conn = sqlite3.connect(tmp_path / "journal.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    db = JournalDB(tmp_path / "journal.db")
    try:
        assert db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        db.close()


async def test_mid_write_jobs_are_failed_on_open(tmp_path: Path):
    path = tmp_path / "journal.db"
    db = JournalDB(path)
    for job_id, states in {
        "w": [JobState.WRITING],
        "v": [JobState.WRITING, JobState.VERIFYING],
        "p": [JobState.WRITING, JobState.VERIFYING, JobState.PASSED],
        "q": [],
    }.items():
        db.create(job_id, "u", "/dev/sdb", "/i.iso", None, None)
        for s in states:
            db.transition(job_id, s)
    db.conn.close()  # like a crash: no clean shutdown, the owner lock just goes away
    assert db.owner_lock is not None
    db.owner_lock.release()

    j = await Journal.open(path)
    try:
        assert sorted(j.recovered) == ["v", "w"]
        for job_id in ("w", "v"):
            rec = await j.get(job_id)
            assert rec is not None
            assert rec.state is JobState.FAILED
            assert (rec.reason, rec.message) == (INTERRUPTED, INTERRUPTED_MESSAGE)
        p = await j.get("p")
        assert p is not None
        assert p.state is JobState.PASSED
        unreported = {r.id for r in await j.unreported()}
        assert unreported == {"w", "v", "p"}  # q has not finished, nothing to report yet
        await j.mark_reported(["w", "p"])
        assert [r.id for r in await j.unreported()] == ["v"]
    finally:
        await j.close()
    j2 = await Journal.open(path)  # a second restart finds nothing new to recover
    try:
        assert j2.recovered == []
        assert [r.id for r in await j2.unreported()] == ["v"]
    finally:
        await j2.close()


async def test_misuse_is_a_clear_error(tmp_path: Path):
    j = await Journal.open(tmp_path / "journal.db")
    try:
        with pytest.raises(JournalError, match="no job"):
            await j.transition("nope", JobState.WRITING)
        await j.create("a", "u", "/dev/sdb", "/i.iso")
        with pytest.raises(JournalError, match="already exists"):
            await j.create("a", "u", "/dev/sdb", "/i.iso")
        with pytest.raises(JournalError, match="cannot go from queued to passed"):
            await j.transition("a", JobState.PASSED)
        with pytest.raises(JournalError, match="not finished"):
            await j.mark_reported(["a"])
        await j.transition("a", JobState.CANCELLED)
        with pytest.raises(JournalError, match="cannot go from cancelled"):
            await j.transition("a", JobState.WRITING)
        rec = await j.get("a")
        assert rec is not None
        assert rec.state is JobState.CANCELLED
    finally:
        await j.close()


async def test_not_a_journal_is_refused_and_kept(tmp_path: Path):
    bad = tmp_path / "journal.db"
    bad.write_bytes(b"garbage" * 1000)
    with pytest.raises(JournalError, match="not a usable job journal"):
        await Journal.open(bad)
    assert bad.read_bytes() == b"garbage" * 1000


async def test_jobs_of_a_live_owner_are_not_recovered(tmp_path: Path):
    path = tmp_path / "journal.db"
    live = await Journal.open(path)
    try:
        await live.create("mine", "u", "/dev/sdb", "/i.iso")
        await live.transition("mine", JobState.WRITING)
        # A second writer (another burn, the agent restarting beside a CLI burn) opens it.
        other = await Journal.open(path)
        try:
            assert other.recovered == []
            rec = await other.get("mine")
            assert rec is not None
            assert rec.state is JobState.WRITING
        finally:
            await other.close()
        # The owner carries on as if nothing happened.
        await live.transition("mine", JobState.VERIFYING)
        await live.transition("mine", JobState.PASSED)
    finally:
        await live.close()


async def test_read_only_open_never_recovers(tmp_path: Path):
    path = tmp_path / "journal.db"
    db = JournalDB(path)
    db.create("w", "u", "/dev/sdb", "/i.iso", None, None)
    db.transition("w", JobState.WRITING)
    db.close()  # a clean close with a job mid-write: its owner is gone
    before = path.read_bytes()
    ro = await Journal.open(path, read_only=True)
    try:
        assert ro.recovered == []
        [shown] = await ro.jobs()
        assert (shown.state, shown.reason) == (JobState.FAILED, INTERRUPTED)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await ro.transition("w", JobState.VERIFYING)
    finally:
        await ro.close()
    assert path.read_bytes() == before
    writer = await Journal.open(path)  # the next writer records what the reader only showed
    try:
        assert writer.recovered == ["w"]
    finally:
        await writer.close()


async def test_a_directory_is_not_a_journal(tmp_path: Path):
    with pytest.raises(JournalError, match="is a directory"):
        await Journal.open(tmp_path)
    with pytest.raises(JournalError, match="no job journal"):
        await Journal.open(tmp_path / "absent.db", read_only=True)
