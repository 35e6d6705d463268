"""The store on both engines: one schema, one migration path, the same refusals.

SQLite is the embedded default, PostgreSQL the engine of a deployment across hosts; every store
operation is the same function on both, so what differs is only how each starts and fails.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from pgserver import PostgresServer, loopback_port

from coordinator import cli
from coordinator.store import Store, pg
from coordinator.store.errors import Conflict
from coordinator.store.migrations import MIGRATIONS, SCHEMA_VERSION, SchemaTooNew
from coordinator.store.people import create_admin
from coordinator.store.records import audit
from coordinator.store.sql import INTEGRITY_ERRORS, Conn


@pytest.fixture
def target(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Path | str:
    """A fresh, empty database of the engine under test."""
    if engine == "sqlite":
        return tmp_path / "c.db"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


async def test_fresh_database_is_migrated_and_enforces_foreign_keys(target: Path | str) -> None:
    store = Store(target)
    await store.open()
    try:
        with pytest.raises(INTEGRITY_ERRORS):
            await store.write(
                lambda c: c.execute(
                    "INSERT INTO episodes (show_id, name, created_at) VALUES (99, 'x', 0)"
                )
            )
        token = await store.write(lambda c: create_admin(c, 1.0, "t", "Ada", "ada@e.org"))
        assert token
        # Emails are unique whatever their case, on both engines (COLLATE NOCASE).
        with pytest.raises(Conflict, match="already exists"):
            await store.write(lambda c: create_admin(c, 1.0, "t", "Ada", "ADA@E.ORG"))
    finally:
        await store.close()


async def test_several_stores_opening_one_empty_database_migrate_once(
    target: Path | str,
) -> None:
    stores = [Store(target) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        await stores[0].write(lambda c: create_admin(c, 1.0, "t", "A", "a@e.org"))
        count = await stores[3].read(lambda c: c.execute("SELECT count(*) FROM admins").fetchone())
        assert count[0] == 1
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_failed_write_leaves_nothing_behind(target: Path | str) -> None:
    store = Store(target)
    await store.open()
    try:

        def half_then_fail(conn: Conn) -> None:
            audit(conn, 1.0, "t", "half", "x")
            raise Conflict("stop here")

        with pytest.raises(Conflict):
            await store.write(half_then_fail)
        count = await store.read(lambda c: c.execute("SELECT count(*) FROM audit").fetchone()[0])
        assert count == 0
    finally:
        await store.close()


async def test_newer_schema_is_refused(target: Path | str) -> None:
    store = Store(target)
    await store.open()
    if isinstance(target, str):
        await store.write(
            lambda c: c.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
        )
    await store.close()
    if isinstance(target, Path):
        with sqlite3.connect(target) as db:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    again = Store(target)
    with pytest.raises(SchemaTooNew, match="newer than this coordinator"):
        await again.open()
    await again.close()


async def test_concurrent_read_then_write_operations_run_as_if_alone(target: Path | str) -> None:
    """Read-then-write operations racing each other all land, each seeing every earlier one
    (one writer at a time: SQLite's writer thread, PostgreSQL's advisory write lock)."""
    store = Store(target)
    await store.open()
    try:
        await store.write(lambda c: create_admin(c, 1.0, "t", "A", "a@e.org"))

        def bump(conn: Conn) -> None:
            (n,) = conn.execute("SELECT count(*) FROM audit WHERE action = 'bump'").fetchone()
            audit(conn, 1.0, "t", "bump", f"n:{n}")

        await asyncio.gather(*(store.write(bump) for _ in range(30)))
        targets = await store.read(
            lambda c: [r[0] for r in c.execute("SELECT target FROM audit WHERE action = 'bump'")]
        )
        # Each write saw every earlier one: the counts are 0..29, none repeated.
        assert sorted(targets, key=lambda t: int(t[2:])) == [f"n:{i}" for i in range(30)]
    finally:
        await store.close()


def _sqlite_columns() -> dict[str, list[str]]:
    db = sqlite3.connect(":memory:", isolation_level=None)
    from coordinator.store.migrations import migrate

    migrate(db)
    tables = [
        r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
    ]
    return {t: sorted(r[1] for r in db.execute(f"PRAGMA table_info({t})")) for t in tables}


async def test_postgres_schema_has_the_same_tables_and_columns_as_sqlite(
    postgres_server: PostgresServer,
) -> None:
    store = Store(postgres_server.new_database())
    await store.open()
    try:
        rows = await store.read(
            lambda c: c.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name <> 'schema_version'"
            ).fetchall()
        )
        version = await store.read(
            lambda c: c.execute("SELECT version FROM schema_version").fetchone()[0]
        )
    finally:
        await store.close()
    columns: dict[str, list[str]] = {}
    for table, column in rows:
        columns.setdefault(table, []).append(column)
    expected = _sqlite_columns()
    assert {t: sorted(c) for t, c in columns.items()} == expected
    assert version == SCHEMA_VERSION == len(MIGRATIONS)


async def test_wrong_password_unreachable_server_and_missing_database_are_one_clear_line(
    postgres_server: PostgresServer,
) -> None:
    cases = {
        postgres_server.url(password="not-the-password"): "password authentication failed",
        postgres_server.url("no_such_db"): 'database "no_such_db" does not exist',
        f"postgresql://postgres:x@127.0.0.1:{_closed_port()}/postgres": "Connection refused",
    }
    for url, reason in cases.items():
        store = Store(url, pool_timeout=2)
        with pytest.raises(pg.DatabaseRefused) as caught:
            await store.open()
        await store.close()
        message = str(caught.value)
        assert reason in message
        assert "\n" not in message
        assert "not-the-password" not in message  # a password never reaches a log line


def _closed_port() -> int:
    return loopback_port()


def _serve(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run `serve` in-process until it fails to start; returns (exit status, stderr)."""
    import contextlib
    import io
    import os

    err = io.StringIO()
    old = os.environ.copy()
    os.environ.pop("BURNSTAND_DATABASE", None)
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stderr(err):
            status = cli.main(
                ["serve", "--data", str(tmp_path / "d"), "--port", str(_closed_port()), *extra]
            )
    finally:
        os.environ.clear()
        os.environ.update(old)
    return status, err.getvalue()


def test_serve_refuses_a_bad_database_with_one_line_and_a_failure_exit(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url_file = tmp_path / "url"
    url_file.write_text(postgres_server.url(password="wrong-secret"))
    status, err = _serve(tmp_path, "--database-file", str(url_file))
    assert status != 0
    lines = [line for line in err.splitlines() if "error" in line]
    assert lines == [lines[0]]
    assert "password authentication failed" in lines[0]
    assert "wrong-secret" not in err

    # A password on the command line is refused before anything is tried.
    status, err = _serve(tmp_path, "--database", postgres_server.url())
    assert status != 0
    assert "--database holds a password" in err
    assert postgres_server.password not in err

    status, err = _serve(tmp_path, env={"BURNSTAND_DATABASE": "mysql://x@y/z"})
    assert status != 0
    assert "must be a postgresql:// URL" in err

    status, err = _serve(tmp_path, "--database-pool", "0")
    assert status != 0
    assert "--database-pool must be 1 to 1000, not 0" in err


async def test_serve_refuses_a_database_of_a_newer_schema(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.new_database()
    store = Store(url)
    await store.open()
    await store.write(
        lambda c: c.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 5,))
    )
    await store.close()
    status, err = await asyncio.to_thread(_serve, tmp_path, env={"BURNSTAND_DATABASE": url})
    assert status != 0
    assert f"database schema version {SCHEMA_VERSION + 5} is newer" in err
    assert postgres_server.password not in err


def test_placeholders_inside_quoted_text_are_left_alone() -> None:
    assert pg.translate("SELECT '?', \"a?\" FROM t WHERE x = ? AND y LIKE '5%'") == (
        "SELECT '?', \"a?\" FROM t WHERE x = %s AND y LIKE '5%%'"
    )


async def test_keyed_writes_of_different_keys_run_alongside_and_unkeyed_ones_alone(
    postgres_server: PostgresServer,
) -> None:
    """On PostgreSQL a write keyed "a" that is still open does not hold up one keyed "b", but
    does hold up an unkeyed write (which runs alone, as every write on SQLite does)."""
    import threading

    store = Store(postgres_server.new_database())
    await store.open()
    try:
        a_holds = threading.Event()
        b_done = threading.Event()
        a_may_end = threading.Event()

        def a(conn: Conn) -> bool:
            audit(conn, 1.0, "t", "a", "x")
            conn.execute("SELECT 1").fetchone()  # a result read: the locks are taken
            a_holds.set()
            return b_done.wait(timeout=30) and a_may_end.wait(timeout=30)

        def b(conn: Conn) -> None:
            audit(conn, 1.0, "t", "b", "x")

        first = asyncio.ensure_future(store.write(a, lock="a"))
        assert await asyncio.to_thread(a_holds.wait, 30)
        await store.write(b, lock="b")  # finishes while "a" is still open
        b_done.set()
        alone = asyncio.ensure_future(store.write(b))
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        for _ in range(600):  # bounded: until PostgreSQL shows the unkeyed write waiting
            if (await store.read(lambda c: c.execute(waiting).fetchone()[0], single=True)) >= 1:
                break
            await asyncio.sleep(0.05)  # poll interval between bounded checks
        else:
            raise AssertionError("the unkeyed write never waited for the lock")
        assert not alone.done()  # it waits for "a" to end
        a_may_end.set()
        assert await first is True
        await alone
        count = await store.read(lambda c: c.execute("SELECT count(*) FROM audit").fetchone()[0])
        assert count == 3
    finally:
        await store.close()


async def test_postgres_database_of_the_previous_release_is_migrated_in_place(
    postgres_server: PostgresServer,
) -> None:
    """A PostgreSQL database as the previous schema left it (one step short), with a session
    in it: opening it applies the missing step and keeps every row."""
    from coordinator.store.migrations import check_version

    url = postgres_server.new_database()
    conn = pg.connect(url)
    try:
        pg.migrate(conn, MIGRATIONS[:-1], check_version)
        conn.execute("INSERT INTO shows (name, asset_root, meta, tags, created_at) "
                     "VALUES ('s', '/', '{}', '[]', 0)")  # fmt: skip
        conn.execute("INSERT INTO episodes (show_id, name, created_at) VALUES (1, 'e', 0)")
        conn.execute("INSERT INTO masters (name, url, capacity, created_at) "
                     "VALUES ('m', 'http://m:1', 5, 0)")  # fmt: skip
        conn.execute("INSERT INTO sessions (id, name, show_id, episode_id, master_id, state, "
                     "created_at) VALUES ('abc', 'x', 1, 1, 1, 'live', 0)")  # fmt: skip
        before = conn.execute("SELECT version FROM schema_version").fetchone()[0]
    finally:
        conn.raw.close()
    assert before == SCHEMA_VERSION - 1
    store = Store(url)
    await store.open()
    try:
        version = await store.read(
            lambda c: c.execute("SELECT version FROM schema_version").fetchone()[0]
        )
        sessions = await store.read(
            lambda c: [tuple(r) for r in c.execute("SELECT id, state FROM sessions")]
        )
    finally:
        await store.close()
    assert version == SCHEMA_VERSION
    assert sessions == [("abc", "live")]
