"""The coordinator's system of record: one SQLite file (or a PostgreSQL database), off the loop.

Every change is a plain function ``fn(conn) -> result`` handed to ``Store.write``; it runs on the
single writer thread inside one ``BEGIN IMMEDIATE`` transaction (committed when ``fn`` returns,
rolled back when it raises, so an error never leaves anything half-written) and is awaited through
a future. Reads run the same way on a small pool of reader threads, each with its own connection,
inside a read transaction so a multi-query read sees one snapshot. The file is in WAL mode with
foreign keys on, so readers never wait for the writer.

Given a ``postgresql://`` URL instead of a path, the same operations run on a bounded pool of
PostgreSQL connections (`coordinator.store.pg`), each call on a thread of its own pool, so the
roles of one deployment can run on several hosts against one database.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from coordinator.store import pg
from coordinator.store.gate import KeyedGate
from coordinator.store.migrations import MIGRATIONS, check_version, migrate
from coordinator.store.private import private_file
from coordinator.store.sql import Conn, is_postgres

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000


def connect(path: Path) -> sqlite3.Connection:
    """A connection configured the way every coordinator connection must be."""
    # check_same_thread is off only so close() can run from the thread that shuts the store
    # down; each connection is otherwise used by exactly one thread.
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL. Several processes opening one fresh file at once (the roles of a
    split coordinator) can each hold a shared lock while wanting the exclusive one the switch
    needs; SQLite then answers one of them SQLITE_BUSY at once, without waiting in the busy
    handler, so the switch is retried (bounded by the busy timeout) until the other is done."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    for attempt in range(1_000):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        else:
            return
        time.sleep(min(0.001 * 2**attempt, 0.05))  # back off while the other one finishes
    raise AssertionError("unreachable: the deadline ends the retries first")  # pragma: no cover


class StoreClosed(RuntimeError):
    """The store was used before ``open`` or after ``close``."""


class Store:
    """Async front of the database: ``await store.write(fn)`` and ``await store.read(fn)``.

    ``target`` is the SQLite file's path or a ``postgresql://`` URL; ``pool_size`` and
    ``pool_timeout`` bound the PostgreSQL connections and how long a call waits for one.
    ``data_dir`` holds what lives beside the database (default: the SQLite file's directory)."""

    def __init__(
        self,
        target: Path | str,
        *,
        read_threads: int = 4,
        pool_size: int = 10,
        pool_timeout: float = 3.0,
        data_dir: Path | None = None,
    ) -> None:
        self._pg: pg.PgEngine | None = None
        if is_postgres(target):
            self._pg = pg.PgEngine(str(target), size=pool_size, timeout=pool_timeout)
            target = Path("postgresql")  # no file: the name only shows in messages
        self.path = Path(target)
        # Where files that belong with the database live (the image store): beside the SQLite
        # file, or the process's data directory when the database is PostgreSQL.
        self.data_dir = data_dir if data_dir is not None else self.path.parent
        self._read_threads = read_threads
        self._writer: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._writer_conn: sqlite3.Connection | None = None
        self._reader_local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._gate = KeyedGate()

    @property
    def pg_engine(self) -> pg.PgEngine | None:
        """The PostgreSQL engine, for state kept beside the store's own (the masters')."""
        return self._pg

    @property
    def engine(self) -> str:
        return "postgresql" if self._pg is not None else "sqlite"

    async def open(self) -> None:
        if self._pg is not None:
            # One pool of threads for reads and writes: PostgreSQL runs them concurrently.
            self._writer = self._readers = ThreadPoolExecutor(
                max_workers=self._pg.size, thread_name_prefix="store-pg"
            )
            engine = self._pg
            await asyncio.get_running_loop().run_in_executor(
                self._writer, engine.open, MIGRATIONS, check_version
            )
            return
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._readers = ThreadPoolExecutor(
            max_workers=self._read_threads, thread_name_prefix="store-reader"
        )
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._open_writer)

    def _open_writer(self) -> None:
        private_file(self.path)
        conn = connect(self.path)
        _use_wal(conn)
        migrate(conn)
        self._writer_conn = conn

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        writer, readers = self._writer, self._readers
        self._writer = self._readers = None
        if self._pg is not None:
            if writer is not None:
                await loop.run_in_executor(writer, self._pg.close)
                await loop.run_in_executor(None, writer.shutdown, True)
            return
        if readers is not None:
            await loop.run_in_executor(None, readers.shutdown, True)
        if writer is not None:
            await loop.run_in_executor(writer, self._close_writer)
            await loop.run_in_executor(None, writer.shutdown, True)
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

    def _close_writer(self) -> None:
        if self._writer_conn is not None:
            self._writer_conn.close()
            self._writer_conn = None

    async def write(self, fn: Callable[[Conn], T], *, lock: str | None = None) -> T:
        """Run ``fn`` on the writer thread in one transaction and return its result.

        Writes run one at a time. On PostgreSQL a write that names a ``lock`` key may run
        alongside other keyed writes of different keys (never beside an unkeyed one): only
        for operations whose effects another keyed write cannot contradict."""
        if self._writer is None:
            raise StoreClosed("store is not open")
        loop = asyncio.get_running_loop()
        if self._pg is not None:
            run = functools.partial(self._pg.run, fn, write=True, lock=lock)
            # Unkeyed writes run one at a time everywhere, so they share one key here.
            async with self._gate.hold("" if lock is None else f"key:{lock}"):
                return await loop.run_in_executor(self._writer, run)
        return await loop.run_in_executor(self._writer, self._run_write, fn)

    def _run_write(self, fn: Callable[[Conn], T]) -> T:
        conn = self._writer_conn
        if conn is None:
            raise StoreClosed("store is not open")
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def read(
        self, fn: Callable[[Conn], T], *, single: bool = False, one_trip: bool = False
    ) -> T:
        """Run ``fn`` on a reader thread against one consistent snapshot. ``single`` says
        ``fn`` runs one statement, which needs no transaction around it (on PostgreSQL that
        saves a round trip: credential checks on every request are such reads). ``one_trip``
        says ``fn`` asks every statement before it reads an answer (a page and its total):
        on PostgreSQL the snapshot's BEGIN and COMMIT then travel with them."""
        if self._readers is None:
            raise StoreClosed("store is not open")
        loop = asyncio.get_running_loop()
        if self._pg is not None:
            run = functools.partial(
                self._pg.run, fn, write=False, snapshot=not single, one_trip=one_trip
            )
            return await loop.run_in_executor(self._readers, run)
        return await loop.run_in_executor(self._readers, self._run_read, fn)

    async def ping(self) -> None:
        """Raise `coordinator.store.pg.DatabaseUnavailable` unless the database answers."""
        await self.read(lambda conn: conn.execute("SELECT 1").fetchone(), single=True)

    def _run_read(self, fn: Callable[[Conn], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._reader_local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            conn.execute("PRAGMA query_only = ON")
            self._reader_local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            conn.execute("ROLLBACK")
