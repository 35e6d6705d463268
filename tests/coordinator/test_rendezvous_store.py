"""The store on its own: migrations, the single writer, rollback on error, WAL and foreign keys."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

import coordinator.store as store_module
from coordinator.store import Store
from coordinator.store.errors import Conflict, Unauthorized
from coordinator.store.migrations import SCHEMA_VERSION, SchemaTooNew
from coordinator.store.people import create_admin
from coordinator.store.records import audit


async def test_fresh_file_is_migrated_in_wal_with_foreign_keys(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    await store.open()
    try:
        mode = await store.read(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
        fks = await store.read(lambda c: c.execute("PRAGMA foreign_keys").fetchone()[0])
        version = await store.read(lambda c: c.execute("PRAGMA user_version").fetchone()[0])
        assert (mode, fks, version) == ("wal", 1, SCHEMA_VERSION)
        with pytest.raises(sqlite3.IntegrityError):
            await store.write(
                lambda c: c.execute(
                    "INSERT INTO episodes (show_id, name, created_at) VALUES (99, 'x', 0)"
                )
            )
    finally:
        await store.close()


async def test_two_stores_opening_one_fresh_file_migrate_once(tmp_path: Path) -> None:
    stores = [Store(tmp_path / "c.db") for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        token = await stores[0].write(lambda c: create_admin(c, 1.0, "t", "A", "a@e.org"))
        assert token
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_opening_while_another_process_writes_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another role of a split coordinator holds a write transaction on the (not yet WAL) file.
    # Switching to WAL then fails at once with "database is locked" (SQLite skips its busy
    # handler, a deadlock guard); opening must wait for the other writer, not give up.
    path = tmp_path / "c.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE other_role (x)")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    backoffs: list[float] = []

    def other_commits_meanwhile(seconds: float) -> None:
        backoffs.append(seconds)
        if other.in_transaction:
            other.execute("COMMIT")

    monkeypatch.setattr(store_module.time, "sleep", other_commits_meanwhile)
    store = Store(path)
    try:
        await store.open()
        assert backoffs  # the first attempt met the lock and was retried
        mode = await store.read(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
        assert mode == "wal"
    finally:
        await store.close()
        other.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "c.db") as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = Store(tmp_path / "c.db")
    with pytest.raises(SchemaTooNew):
        await store.open()
    await store.close()


async def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    await store.open()
    try:

        def half_then_fail(conn: sqlite3.Connection) -> None:
            audit(conn, 1.0, "t", "half", "x")
            raise Conflict("stop here")

        with pytest.raises(Conflict):
            await store.write(half_then_fail)
        count = await store.read(lambda c: c.execute("SELECT count(*) FROM audit").fetchone()[0])
        assert count == 0
    finally:
        await store.close()


async def test_all_writes_run_on_one_thread_and_reads_elsewhere(tmp_path: Path) -> None:
    import threading

    store = Store(tmp_path / "c.db")
    await store.open()
    try:
        writers = await asyncio.gather(
            *(store.write(lambda c: threading.get_ident()) for _ in range(20))
        )
        reader = await store.read(lambda c: threading.get_ident())
        assert len(set(writers)) == 1
        assert threading.get_ident() not in {*writers, reader}
    finally:
        await store.close()


async def test_upgrade_splits_a_shared_contributor_into_one_membership_per_show(
    tmp_path: Path,
) -> None:
    """A version-2 file where one person sat in two shows: after the upgrade each show has its
    own row, the old secret still opens both, and a credential stays with its show's row."""
    from coordinator.store.credentials import enter_system
    from coordinator.store.migrations import MIGRATIONS
    from coordinator.store.records import token_hash

    path = tmp_path / "c.db"
    db = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:2]:
        step(db)
    db.executescript(
        """
        PRAGMA user_version = 2;
        INSERT INTO shows (id, name, asset_root, meta, tags, created_at)
            VALUES (1, 'a', '/a', '{}', '[]', 0), (2, 'b', '/b', '{}', '[]', 0);
        INSERT INTO contributors (id, name, email, tags, secret_hash, created_at)
            VALUES (7, 'Cleo', 'cleo@e.org', '[]', 'OLD', 0);
        INSERT INTO contributor_shows VALUES (7, 1), (7, 2);
        INSERT INTO credentials (token_hash, kind, contributor_id, show_id, created_at)
            VALUES ('h1', 'contributor', 7, 1, 0), ('h2', 'contributor', 7, 2, 0);
        """.replace("OLD", token_hash("old"))
    )
    db.close()
    store = Store(path)
    await store.open()
    try:
        rows = await store.read(
            lambda c: c.execute("SELECT id, show_id FROM contributors ORDER BY show_id").fetchall()
        )
        assert [tuple(r) for r in rows] == [(7, 1), (8, 2)]
        creds = await store.read(
            lambda c: c.execute(
                "SELECT c.show_id, p.show_id FROM credentials c "
                "JOIN contributors p ON p.id = c.contributor_id ORDER BY c.id"
            ).fetchall()
        )
        assert [tuple(r) for r in creds] == [(1, 1), (2, 2)]
        for show in (1, 2):
            out = await store.write(
                lambda c, s=show: enter_system(c, 1.0, "cleo@e.org", s, "old", 60)
            )
            assert out["show_id"] == show
    finally:
        await store.close()


async def test_upgrade_revokes_a_credential_an_older_version_left_in_plaintext(
    tmp_path: Path,
) -> None:
    """A version-4 file with an accepted enrollment whose credential waits in plaintext: the
    upgrade clears it and revokes it; the kiosk's pickup then gets a fresh one."""
    from coordinator.store.credentials import authenticate
    from coordinator.store.enrollments import poll
    from coordinator.store.migrations import MIGRATIONS
    from coordinator.store.records import token_hash

    path = tmp_path / "c.db"
    db = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:4]:
        step(db)
    db.executescript(
        """
        PRAGMA user_version = 4;
        INSERT INTO shows (id, name, asset_root, meta, tags, created_at)
            VALUES (1, 'a', '/a', '{}', '[]', 0);
        INSERT INTO appliances (id, show_id, name, created_at) VALUES (3, 1, 'k', 0);
        INSERT INTO credentials (token_hash, kind, appliance_id, show_id, created_at)
            VALUES ('OLDHASH', 'appliance', 3, 1, 0);
        INSERT INTO enrollments (code, show_id, name, state, poll_hash, created_at, renewed_at,
                                 decided_at, appliance_id, credential)
            VALUES ('ABCD2345', 1, 'k', 'accepted', 'POLLHASH', 0, 0, 1, 3, 'old-plaintext');
        """.replace("OLDHASH", token_hash("old-plaintext")).replace("POLLHASH", token_hash("p"))
    )
    db.close()
    store = Store(path)
    await store.open()
    try:
        stored = await store.read(
            lambda c: c.execute("SELECT credential FROM enrollments").fetchone()
        )
        assert stored[0] is None
        with pytest.raises(Unauthorized, match="revoked"):
            await store.read(lambda c: authenticate(c, "old-plaintext", 2.0))
        got = await store.write(lambda c: poll(c, 2.0, "p"))
        assert got["credential"] != "old-plaintext"
        me = await store.read(lambda c: authenticate(c, got["credential"], 2.0))
        assert (me.role, me.person_id) == ("appliance", 3)
    finally:
        await store.close()
