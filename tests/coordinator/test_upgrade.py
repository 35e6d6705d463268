"""docs/upgrade.md's coordinator path on a real file: a database of the previous release (schema
version SCHEMA_VERSION - 1, with its data) is migrated in place when the new coordinator opens
it, keeps every row, and the backup taken before (SQLite's online backup, as the guide says)
still opens with the schema it had, which is what a roll-back restores."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from coordinator.store import Store
from coordinator.store.migrations import MIGRATIONS, SCHEMA_VERSION
from coordinator.store.people import create_admin


def _previous_release(path: Path) -> None:
    """A file as the previous release left it: every migration but the last, and an admin."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA foreign_keys = OFF")
        for version, step in enumerate(MIGRATIONS[:-1]):
            conn.execute("BEGIN")
            step(conn)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN")
        create_admin(conn, 1.0, "test", "Ada", "ada@example.org")
        conn.execute("COMMIT")
    finally:
        conn.close()


def _version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


async def test_previous_release_database_is_migrated_and_its_backup_rolls_back(
    tmp_path: Path,
) -> None:
    db = tmp_path / "coordinator.db"
    _previous_release(db)
    assert _version(db) == SCHEMA_VERSION - 1
    # Back up first, the way the guide does (an online backup, consistent while serving).
    backup = tmp_path / "coordinator-before-upgrade.db"
    with sqlite3.connect(db) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)

    store = Store(db, read_threads=1)
    await store.open()
    try:
        admins = await store.read(
            lambda c: [r["email"] for r in c.execute("SELECT email FROM admins").fetchall()]
        )
        tables = await store.read(
            lambda c: {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        )
    finally:
        await store.close()
    assert admins == ["ada@example.org"]
    assert "enrollments" in tables  # what the last migration adds
    assert _version(db) == SCHEMA_VERSION
    # Rolling back is restoring the backup: it still has the previous release's schema and data.
    assert _version(backup) == SCHEMA_VERSION - 1
    with sqlite3.connect(backup) as conn:
        assert conn.execute("SELECT email FROM admins").fetchall() == [("ada@example.org",)]
