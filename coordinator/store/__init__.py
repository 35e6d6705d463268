"""The coordinator's system of record: one SQLite file, one writer thread, reads off the loop.

Every change is a plain function ``fn(conn) -> result`` handed to ``Store.write``; it runs on the
single writer thread inside one ``BEGIN IMMEDIATE`` transaction (committed when ``fn`` returns,
rolled back when it raises, so an error never leaves anything half-written) and is awaited through
a future. Reads run the same way on a small pool of reader threads, each with its own connection,
inside a read transaction so a multi-query read sees one snapshot. The file is in WAL mode with
foreign keys on, so readers never wait for the writer.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from coordinator.store.migrations import migrate
from coordinator.store.private import private_file

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
    """Async front of the SQLite file: ``await store.write(fn)`` and ``await store.read(fn)``."""

    def __init__(self, path: Path, *, read_threads: int = 4) -> None:
        self.path = path
        self._read_threads = read_threads
        self._writer: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._writer_conn: sqlite3.Connection | None = None
        self._reader_local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()

    async def open(self) -> None:
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

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the writer thread in one transaction and return its result."""
        if self._writer is None:
            raise StoreClosed("store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self._run_write, fn)

    def _run_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
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

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on a reader thread against one consistent snapshot."""
        if self._readers is None:
            raise StoreClosed("store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn)

    def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
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
