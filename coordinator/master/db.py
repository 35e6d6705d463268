"""The session master's own SQLite file (`DIR/master.db`), or its tables in the shared PostgreSQL
database: burn queues, burner names and statistics.

The master keeps what must survive a restart here, apart from the rendezvous store: each room's
queue (as runs of md5 and count), each burner's friendly name, capabilities, images held,
statistics (cancelled burns included), its "common images only" mark and the job it was
burning, and each kiosk's name, version, link state and since when, burners and cached images
(so "offline since" outlives a restart), and the history of counted results: burned and failed
per minute and per hour, per burner and per kiosk, written in the transaction that changes the
statistics, so the dashboard's chart and totals agree after a reload. The file is in WAL mode,
its schema is a list of plain migration functions numbered by `PRAGMA user_version`, and every
statement runs on one
dedicated thread with its own connection, so the event loop never waits on the disk. Writes
are queued in order and can be awaited together with `flush`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from coordinator.master.backlog import Backlog, uncounted
from coordinator.master.room import BurnerRecord, HistoryTick, KioskRecord, QueueSnapshot, Write
from coordinator.store import Store
from coordinator.store.private import private_file
from coordinator.store.sql import Conn
from wire.clientmsg import Span

log = logging.getLogger(__name__)

T = TypeVar("T")
FILENAME = "master.db"


def _v1(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE queue (
            session_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            md5 TEXT NOT NULL CHECK (length(md5) = 32),
            count INTEGER NOT NULL CHECK (count > 0),
            PRIMARY KEY (session_id, position)
        )"""
    )
    conn.execute(
        """CREATE TABLE burners (
            session_id TEXT NOT NULL,
            uid TEXT NOT NULL CHECK (length(uid) = 32),
            name TEXT NOT NULL DEFAULT '',
            capabilities TEXT NOT NULL DEFAULT '[]',
            images TEXT NOT NULL DEFAULT '[]',
            burned INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            recent_failures INTEGER NOT NULL DEFAULT 0,
            speed_total REAL NOT NULL DEFAULT 0,
            speed_samples INTEGER NOT NULL DEFAULT 0,
            job TEXT,
            PRIMARY KEY (session_id, uid)
        )"""
    )


def _v2(conn: sqlite3.Connection) -> None:
    # Cancelled burns are counted apart from failures; "common images only" is an operator's mark.
    conn.execute("ALTER TABLE burners ADD COLUMN cancelled INTEGER NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE burners ADD COLUMN common_only INTEGER NOT NULL DEFAULT 0")


def _v3(conn: sqlite3.Connection) -> None:
    # Kiosks (appliances) of a session, for grouping burners and showing link state and cache.
    conn.execute(
        """CREATE TABLE kiosks (
            session_id TEXT NOT NULL,
            id INTEGER NOT NULL CHECK (id >= 0),
            name TEXT NOT NULL DEFAULT '',
            version TEXT NOT NULL DEFAULT '',
            link TEXT NOT NULL DEFAULT 'offline',
            since REAL,
            burners TEXT NOT NULL DEFAULT '[]',
            images TEXT NOT NULL DEFAULT '[]',
            cache_used INTEGER,
            cache_max INTEGER,
            PRIMARY KEY (session_id, id)
        )"""
    )


def _v4(conn: sqlite3.Connection) -> None:
    # Ids of the results counted per burner, written with the statistics they changed.
    conn.execute("ALTER TABLE burners ADD COLUMN jobs TEXT NOT NULL DEFAULT '[]'")


def _v5(conn: sqlite3.Connection) -> None:
    # Counted results per bucket: `span` is its width in seconds, `start` a multiple of it.
    conn.execute(
        """CREATE TABLE history (
            session_id TEXT NOT NULL,
            span INTEGER NOT NULL CHECK (span IN (60, 3600)),
            start INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('burner', 'kiosk')),
            key TEXT NOT NULL,
            burned INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (session_id, span, start, kind, key)
        )"""
    )


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1, _v2, _v3, _v4, _v5)
# Bucket widths the history keeps, in seconds.
SPANS = tuple(int(span) for span in Span)


def _count(conn: Conn, tick: HistoryTick) -> None:
    keys = [("burner", tick.uid)]
    if tick.kiosk_id is not None:
        keys.append(("kiosk", str(tick.kiosk_id)))
    burned, failed = (1, 0) if tick.passed else (0, 1)
    conn.executemany(
        """INSERT INTO history (session_id, span, start, kind, key, burned, failed)
        VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (session_id, span, start, kind, key)
        DO UPDATE SET burned = history.burned + excluded.burned,
            failed = history.failed + excluded.failed""",
        [
            (tick.session_id, span, int(tick.at // span) * span, kind, key, burned, failed)
            for span in SPANS
            for kind, key in keys
        ],
    )


def _history(conn: Conn, session_id: str, span: int, since: int) -> list[dict[str, object]]:
    """The buckets of `span` seconds that end after `since`, oldest first, with the names a
    person reads (the burner's friendly name, the kiosk's name) beside the ids."""
    rows = conn.execute(
        """SELECT h.start, h.kind, h.key, COALESCE(b.name, k.name, ''), h.burned, h.failed
        FROM history h
        LEFT JOIN burners b
            ON h.kind = 'burner' AND b.session_id = h.session_id AND b.uid = h.key
        LEFT JOIN kiosks k
            ON h.kind = 'kiosk' AND k.session_id = h.session_id AND CAST(k.id AS TEXT) = h.key
        WHERE h.session_id = ? AND h.span = ? AND h.start + h.span > ?
        ORDER BY h.start, h.kind, h.key""",
        (session_id, span, since),
    )
    return [
        {
            "start": int(start),
            "kind": kind,
            "id": int(key) if kind == "kiosk" else key,
            "name": name,
            "burned": int(burned),
            "failed": int(failed),
        }
        for start, kind, key, name, burned, failed in rows
    ]


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to the newest version, one transaction per step."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"{FILENAME} has schema version {version}; this master knows up to {len(MIGRATIONS)}"
        )
    for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            step(conn)
            conn.execute(f"PRAGMA user_version = {number}")


def _apply(conn: sqlite3.Connection, writes: list[Write]) -> None:
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        _apply_writes(conn, writes)


def _apply_writes(conn: Conn, writes: list[Write]) -> None:
    """The statements of ``writes``, in one transaction the caller holds (either engine)."""
    for write in writes:
        if isinstance(write, QueueSnapshot):
            conn.execute("DELETE FROM queue WHERE session_id = ?", (write.session_id,))
            conn.executemany(
                "INSERT INTO queue (session_id, position, md5, count) VALUES (?, ?, ?, ?)",
                [(write.session_id, i, md5, n) for i, (md5, n) in enumerate(write.runs)],
            )
        elif isinstance(write, HistoryTick):
            _count(conn, write)
        elif isinstance(write, KioskRecord):
            conn.execute(
                """INSERT INTO kiosks (session_id, id, name, version, link, since,
                burners, images, cache_used, cache_max)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (session_id, id) DO UPDATE SET name = excluded.name,
                version = excluded.version, link = excluded.link, since = excluded.since,
                burners = excluded.burners, images = excluded.images,
                cache_used = excluded.cache_used, cache_max = excluded.cache_max""",
                (
                    write.session_id,
                    write.id,
                    write.name,
                    write.version,
                    write.link,
                    write.since,
                    json.dumps(list(write.burners)),
                    json.dumps(list(write.images)),
                    write.cache_used,
                    write.cache_max,
                ),
            )
        else:
            conn.execute(
                """INSERT INTO burners (session_id, uid, name, capabilities,
                images, burned, failed, recent_failures, speed_total, speed_samples, job,
                cancelled, common_only, jobs)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (session_id, uid) DO UPDATE SET name = excluded.name,
                capabilities = excluded.capabilities, images = excluded.images,
                burned = excluded.burned, failed = excluded.failed,
                recent_failures = excluded.recent_failures,
                speed_total = excluded.speed_total, speed_samples = excluded.speed_samples,
                job = excluded.job, cancelled = excluded.cancelled,
                common_only = excluded.common_only, jobs = excluded.jobs""",
                (
                    write.session_id,
                    write.uid,
                    write.name,
                    json.dumps(list(write.capabilities)),
                    json.dumps(list(write.images)),
                    write.burned,
                    write.failed,
                    write.recent_failures,
                    write.speed_total,
                    write.speed_samples,
                    write.job,
                    write.cancelled,
                    int(write.common_only),
                    json.dumps(list(write.jobs)),
                ),
            )


def _load_room(
    conn: Conn, session_id: str
) -> tuple[list[tuple[str, int]], list[BurnerRecord], list[KioskRecord]]:
    """A session's queue, burners and kiosks. The three reads are all asked before any answer
    is read, so on PostgreSQL they travel in one round trip with their snapshot."""
    queue_rows = conn.execute(
        "SELECT md5, count FROM queue WHERE session_id = ? ORDER BY position", (session_id,)
    )
    burner_rows = conn.execute(
        """SELECT uid, name, capabilities, images, burned, failed, recent_failures,
        speed_total, speed_samples, job, cancelled, common_only, jobs
        FROM burners WHERE session_id = ? ORDER BY uid""",
        (session_id,),
    )
    kiosk_rows = conn.execute(
        """SELECT id, name, version, link, since, burners, images, cache_used, cache_max
        FROM kiosks WHERE session_id = ? ORDER BY id""",
        (session_id,),
    )
    queue = [(str(row[0]), int(row[1])) for row in queue_rows.fetchall()]
    burners = [
        BurnerRecord(
            session_id=session_id,
            uid=row[0],
            name=row[1],
            capabilities=tuple(json.loads(row[2])),
            images=tuple(json.loads(row[3])),
            burned=row[4],
            failed=row[5],
            recent_failures=row[6],
            speed_total=row[7],
            speed_samples=row[8],
            job=row[9],
            cancelled=row[10],
            common_only=bool(row[11]),
            jobs=tuple(str(j) for j in json.loads(row[12])),
        )
        for row in burner_rows.fetchall()
    ]
    kiosks = [
        KioskRecord(
            session_id=session_id,
            id=int(row[0]),
            name=row[1],
            version=row[2],
            link=row[3],
            since=row[4],
            burners=tuple(json.loads(row[5])),
            images=tuple(json.loads(row[6])),
            cache_used=row[7],
            cache_max=row[8],
        )
        for row in kiosk_rows.fetchall()
    ]
    return queue, burners, kiosks


MASTER_LOCK = "master-state"
RETRY_SECONDS = 1.0  # how often writes kept while the database was away are tried again
SHARED_VERSION_TABLE = "master_schema_version"


def _pg_ddl(sql: str) -> str:
    """A migration's DDL in PostgreSQL's types: SQLite's INTEGER is 64-bit, its REAL double."""
    return re.sub(r"\bREAL\b", "DOUBLE PRECISION", re.sub(r"\bINTEGER\b", "BIGINT", sql))


class _DDL:
    """A connection that runs migration DDL in PostgreSQL's types."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: tuple[object, ...] = ()) -> object:
        return self.conn.execute(_pg_ddl(sql), parameters)


def _migrate_shared(conn: Conn) -> None:
    """The master tables in the shared PostgreSQL database, numbered like master.db's."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS {SHARED_VERSION_TABLE} (version BIGINT NOT NULL)")
    row = conn.execute(f"SELECT version FROM {SHARED_VERSION_TABLE}").fetchone()  # noqa: S608
    version = 0 if row is None else int(row[0])
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"the shared master tables have schema version {version}; this master knows up "
            f"to {len(MIGRATIONS)}"
        )
    for step in MIGRATIONS[version:]:
        step(_DDL(conn))  # type: ignore[arg-type]  # the steps only call execute
    if row is None:
        conn.execute(
            f"INSERT INTO {SHARED_VERSION_TABLE} (version) VALUES (?)",  # noqa: S608
            (len(MIGRATIONS),),
        )
    elif version < len(MIGRATIONS):
        conn.execute(f"UPDATE {SHARED_VERSION_TABLE} SET version = ?", (len(MIGRATIONS),))  # noqa: S608


class MasterDBClosed(RuntimeError):
    """The master's database was used before `open` or after `close`."""


class MasterDB:
    """`DIR/master.db` behind one worker thread: reads and writes run there, in order.

    Given the coordinator's store on PostgreSQL (``shared``), the same tables live in that
    database instead, so any master can rebuild a session's room from them: that is how a
    session of a master that went silent is resumed on another (`coordinator.master.failover`).
    """

    def __init__(self, data_dir: Path, shared: Store | None = None) -> None:
        self.path = data_dir / FILENAME
        self._pg = shared.pg_engine if shared is not None else None
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._backlog = Backlog(self._write)
        self._retry: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="master-db")
        await self._call(self._open)
        if self._pg is not None:
            self._retry = asyncio.create_task(self._retry_kept())

    async def _retry_kept(self) -> None:
        while True:
            await asyncio.sleep(RETRY_SECONDS)  # the period of the retries, not a wait for news
            if len(self._backlog):
                await self._call(self._backlog.drain)

    @property
    def waiting(self) -> int:
        """Writes kept while the database is away, not yet written."""
        return len(self._backlog)

    def _open(self) -> None:
        if self._pg is not None:
            self._pg.run(_migrate_shared, write=True)
            return
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE) so they are short.
        private_file(self.path)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA busy_timeout = 10000")
        migrate(conn)
        self._conn = conn

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise MasterDBClosed("the master database is not open")
        return self._conn

    def _read(self, fn: Callable[[Conn], T], *, one_trip: bool = False) -> T:
        if self._pg is not None:
            return self._pg.run(fn, write=False, one_trip=one_trip)
        return fn(self._connection())

    def _write(self, writes: list[Write], tried: bool) -> None:
        if self._pg is not None:
            # Sessions have one master each: master writes need not wait for other writes.
            self._pg.run(
                lambda conn: _apply_writes(conn, uncounted(conn, writes) if tried else writes),
                write=True,
                lock=MASTER_LOCK,
            )
        else:
            _apply(self._connection(), writes)

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise MasterDBClosed("the master database is not open")
        return await asyncio.wrap_future(self._executor.submit(fn))

    async def load(
        self, session_id: str
    ) -> tuple[list[tuple[str, int]], list[BurnerRecord], list[KioskRecord]]:
        """A session's kept queue, burners and kiosks, after every write submitted before."""
        return await self._call(
            lambda: self._read(lambda c: _load_room(c, session_id), one_trip=True)
        )

    async def history(self, session_id: str, span: int, since: int) -> list[dict[str, object]]:
        """History rows of a session (see `_history`); runs after every write submitted before."""
        return await self._call(lambda: self._read(lambda c: _history(c, session_id, span, since)))

    def submit(self, writes: list[Write]) -> None:
        """Queue writes without waiting; they run in order on the worker thread."""
        if not writes:
            return
        if self._executor is None:
            # Only a transport still tearing down after the master closed gets here.
            log.warning("master database closed, writes dropped", extra={"count": len(writes)})
            return
        future = self._executor.submit(self._backlog.write, writes)
        future.add_done_callback(_log_failure)

    async def flush(self) -> None:
        """Wait until every write submitted so far is on disk."""
        if self._executor is not None:
            await self._call(lambda: None)

    async def close(self) -> None:
        executor = self._executor
        if executor is None:
            return
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
            self._retry = None
        if len(self._backlog) and not await self._call(self._backlog.drain):
            log.error("master database away at close, kept writes lost",
                      extra={"count": len(self._backlog)})  # fmt: skip
        await self.flush()
        conn, self._conn = self._conn, None
        if conn is not None:  # PostgreSQL's pool belongs to the store, which closes it
            await asyncio.wrap_future(executor.submit(conn.close))
        self._executor = None
        await asyncio.to_thread(executor.shutdown, True)


def _log_failure(future: Future[None]) -> None:
    exc = future.exception()
    if exc is not None:
        log.error("master database write failed", extra={"error": repr(exc)})
