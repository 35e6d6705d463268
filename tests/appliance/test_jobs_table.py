"""`burnstand-agent jobs` prints a table people can read, and `--json` for programs (issue 24)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from appliance.journal import JobState, JournalDB

REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 5, 4, 10, 0, 0).astimezone().timestamp()  # local 10:00:00


def journal_with_three_jobs(path: Path) -> None:
    db = JournalDB(path)
    db.create("a" * 32, "u1", "/dev/sdb", "/srv/images/debian-13.iso", None, None)
    db.transition("a" * 32, JobState.WRITING)
    db.transition("a" * 32, JobState.PASSED)
    db.create(
        "b" * 32, "u2", "stdio:/tmp/disc", "https://example.org/x/live.img.xz?t=1", None, None
    )
    db.transition("b" * 32, JobState.WRITING)
    db.transition("b" * 32, JobState.FAILED, "media-too-small", "the stick holds 4.0 MB")
    db.create("c" * 32, "u3", "/dev/sdc", "/srv/images/big.img", None, None)
    db.transition("c" * 32, JobState.WRITING)
    db.close()
    # Known times, so the durations are what a person would read off a clock.
    with sqlite3.connect(path) as conn:
        for job, start, end in (("a", START, START + 125), ("b", START + 200, START + 209)):
            conn.execute(
                "UPDATE jobs SET created_at = ?, updated_at = ? WHERE id = ?",
                (start, end, job * 32),
            )
        conn.execute("UPDATE jobs SET created_at = ? WHERE id = ?", (START + 300, "c" * 32))


def jobs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", "jobs", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_jobs_prints_a_table_with_start_image_target_result_and_duration(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal_with_three_jobs(path)
    run = jobs("--journal", str(path))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["ID", "STARTED", "IMAGE", "TARGET", "RESULT", "DURATION"]
    assert [line.split() for line in lines[1:4]] == [
        ["aaaaaaaa", "2026-05-04", "10:00:00", "debian-13.iso", "/dev/sdb", "passed", "2m05s"],
        [
            *("bbbbbbbb", "2026-05-04", "10:03:20", "live.img.xz", "stdio:/tmp/disc"),
            *("failed", "(media-too-small)", "9s"),
        ],
        # Still writing (its owner, this test's JournalDB, is gone: it reads as interrupted).
        [
            "cccccccc",
            "2026-05-04",
            "10:05:00",
            "big.img",
            "/dev/sdc",
            "failed",
            "(interrupted)",
            "-",
        ],
    ]
    # Columns line up: every row starts its target where the header's TARGET starts.
    column = lines[0].index("TARGET")
    assert [line[column:].split()[0] for line in lines[1:4]] == [
        "/dev/sdb",
        "stdio:/tmp/disc",
        "/dev/sdc",
    ]
    # Each failure's message once, under its short id, after the table.
    assert lines[4:] == [
        "bbbbbbbb: the stick holds 4.0 MB",
        "cccccccc: the burn stopped mid-way: power loss or crash",
    ]


def test_jobs_json_carries_the_same_columns_in_full(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal_with_three_jobs(path)
    run = jobs("--journal", str(path), "--json")
    assert run.returncode == 0, run.stderr
    first, second, third = (json.loads(line) for line in run.stdout.splitlines())
    assert first["id"] == "a" * 32
    assert datetime.fromisoformat(first["started"]).timestamp() == START
    assert (first["image"], first["target"], first["state"]) == (
        "/srv/images/debian-13.iso",
        "/dev/sdb",
        "passed",
    )
    assert (first["duration"], second["duration"], third["duration"]) == (125.0, 9.0, None)
    assert (second["reason"], second["message"]) == ("media-too-small", "the stick holds 4.0 MB")
