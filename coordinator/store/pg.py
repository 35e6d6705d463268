"""The store on PostgreSQL: a bounded pool of psycopg 3 connections behind the same ``fn(conn)``.

Store operations are written once, in SQL both engines run (`coordinator.store.sql`); here a
PostgreSQL connection is given their shape: ``?`` placeholders become psycopg's ``%s``, and rows
answer by index and by name. Values are bound on the server, so a statement a connection has run
a few times is prepared there (parsed and planned once): that cut the database server's CPU time
per request of the REST mix by a third (bench/bench_store.py prints it). The one thing the SQL
must not do is leave a parameter's type for PostgreSQL to guess (a bare ``? IS NULL``).

A write takes the transaction-scoped advisory write lock first, so writes run one at a time
across every process and host sharing the database, exactly as on SQLite's single writer: an
operation that reads then writes sees what it would alone (SERIALIZABLE was tried: under 50
concurrent clients creating sessions it retried without end). The few hot writes whose callers
name a ``lock`` key (signing in, adding a take, creating, joining or leaving a session) take the
write lock shared plus their key exclusively: they run alongside each other, one at a time per
key, and never beside an ordinary write. Reads run concurrently, each in one REPEATABLE READ
snapshot (or, for a read of one statement, in autocommit).

A database that cannot be reached is a `DatabaseUnavailable` (HTTP 503), raised within the pool's
timeout instead of waiting; a connection found dead when a transaction begins is replaced at once,
so a restarted server is used again on the next request.
"""

from __future__ import annotations

import contextlib
import functools
import random
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from psycopg.rows import RowMaker

from coordinator.store.errors import Unavailable
from coordinator.store.pg_schema import BASELINE, BASELINE_VERSION

T = TypeVar("T")

MIGRATION_LOCK = 0x6275726E  # "burn": serializes migrations of processes starting together
WRITE_LOCK = 0x6275726F  # held by every write transaction until it ends: the single writer
# A statement in psycopg's own form (``%s`` placeholders) and its parameters.
Statement = tuple[str, tuple[Any, ...]]
READ_BEGIN: tuple[Statement, ...] = (("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", ()),)
WRITE_BEGIN: tuple[Statement, ...] = (
    ("BEGIN ISOLATION LEVEL READ COMMITTED", ()),
    (f"SELECT pg_advisory_xact_lock({WRITE_LOCK})", ()),
)
KEYED_LOCKS = 0x6275  # first half of the two-part advisory locks of keyed writes


def keyed_begin(key: str) -> tuple[Statement, ...]:
    """The opening of a keyed write: the write lock shared, then ``key``'s own lock, in one
    statement whose text is the same for every key (so the server plans it once)."""
    part = zlib.crc32(key.encode("utf-8")) - 2**31  # a signed 32-bit int, as PostgreSQL wants
    return (
        ("BEGIN ISOLATION LEVEL READ COMMITTED", ()),
        # Taken left to right: the shared write lock first, as every keyed write does.
        (
            f"SELECT pg_advisory_xact_lock_shared({WRITE_LOCK}), "
            f"pg_advisory_xact_lock({KEYED_LOCKS}, %s::int4)",
            (part,),
        ),
    )


WRITE_RETRIES = 5


class DatabaseUnavailable(Unavailable):
    """The PostgreSQL server cannot be reached (down, restarting, network gone)."""


class DatabaseRefused(RuntimeError):
    """The database cannot be used at start: wrong URL or password, or no such database."""


class PgRow:
    """One result row: by index, by column name, iterable like a tuple (as ``sqlite3.Row``)."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: Sequence[Any]) -> None:
        self._index = index
        self._values = values

    def __getitem__(self, key: int | str, /) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        return tuple(self._values) == (tuple(other) if isinstance(other, PgRow) else other)

    __hash__ = None  # type: ignore[assignment]  # rows are compared, never kept in sets

    def __repr__(self) -> str:
        return f"PgRow({tuple(self._values)!r})"


# Column names -> their index, one dict per shape of result (the store's statements make few).
_INDEXES: dict[tuple[bytes | None, ...], dict[str, int]] = {}


def _pg_row(cursor: Any) -> RowMaker[PgRow]:
    # From the result's own field names: `cursor.description` builds a Column object per
    # column on every statement, which was a tenth of the coordinator's time in psycopg.
    res = cursor.pgresult
    names = tuple(res.fname(i) for i in range(res.nfields)) if res is not None else ()
    index = _INDEXES.get(names)
    if index is None:
        index = {(n or b"").decode(): i for i, n in enumerate(names)}
        if len(_INDEXES) < 4096:  # bounded: ad hoc statements cannot grow it without end
            _INDEXES[names] = index
    return lambda values: PgRow(index, values)


def _rows(cur: psycopg.Cursor[PgRow]) -> list[PgRow]:
    """The rows of a statement's result: none for one that returns no columns."""
    res = cur.pgresult
    return cur.fetchall() if res is not None and res.nfields else []


class StoreConnection(psycopg.Connection[PgRow]):
    """A pooled connection that keeps its cursors: making a psycopg cursor (and its adapters'
    map) for every statement cost more than running it through a kept one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spare_cursors: list[psycopg.Cursor[PgRow]] = []

    def cursors(self, n: int) -> list[psycopg.Cursor[PgRow]]:
        """``n`` cursors of this connection, made the first time they are needed."""
        spare = self.spare_cursors
        while len(spare) < n:
            spare.append(self.cursor())
        return spare[:n]


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """``?`` placeholders to ``%s`` and a literal ``%`` to ``%%``, outside quoted text."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        if ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


class Result:
    """The result of one statement, read from the server only when somebody asks for it.

    Until then the statement waits in its connection's batch and travels to the server with
    the next statement whose result is read, or with the COMMIT (see `PgConn`)."""

    __slots__ = ("_conn", "_pos", "_rowcount", "_rows")

    def __init__(self, conn: PgConn) -> None:
        self._conn = conn
        self._rows: list[PgRow] | None = None
        self._rowcount = -1
        self._pos = 0

    def _settle(self, rowcount: int, rows: list[PgRow]) -> None:
        self._rowcount, self._rows = rowcount, rows

    def _ready(self) -> list[PgRow]:
        if self._rows is None:
            self._conn.flush()
        assert self._rows is not None  # noqa: S101  # flush settles every waiting result
        return self._rows

    @property
    def rowcount(self) -> int:
        self._ready()
        return self._rowcount

    def fetchone(self) -> PgRow | None:
        rows = self._ready()
        if self._pos >= len(rows):
            return None
        self._pos += 1
        return rows[self._pos - 1]

    def fetchall(self) -> list[PgRow]:
        rows = self._ready()
        rest, self._pos = rows[self._pos :], len(rows)
        return rest

    def __iter__(self) -> Iterator[PgRow]:
        return iter(self.fetchall())


class PgConn:
    """A psycopg connection shaped like the ``sqlite3`` one the store operations expect.

    Statements are batched: ``execute`` only queues a statement, and the queue goes to the
    server in one round trip (psycopg's pipeline mode) when a result of it is read, or
    together with the COMMIT. The BEGIN of a transaction travels in
    front of its first statement. So a write that ends with statements whose results it never
    reads (the audit row, a membership) pays one round trip for them and the COMMIT together.
    The cost: an error of a statement whose result is not read is raised where the batch is
    sent, so a caller that catches a statement's error reads its result first (``rowcount``)."""

    def __init__(self, conn: StoreConnection) -> None:
        self.raw = conn
        self._begin: tuple[Statement, ...] = ()
        self._open = False  # a transaction was begun on the server
        self._waiting: list[tuple[str, tuple[Any, ...], Result]] = []
        self._batching = False  # only inside `begin` ... `end`; a bare connection sends at once
        self._close_on_flush = False
        self.statements = 0  # statements sent to the server

    def begin(self, statements: tuple[Statement, ...], *, one_trip: bool = False) -> None:
        """Open a transaction with ``statements`` before the next statement; () = autocommit.
        ``one_trip``: the transaction ends with the first batch sent (its COMMIT travels with
        it), for a read that asks every statement before it reads an answer."""
        self._begin = statements
        self._batching = True
        self._close_on_flush = one_trip
        self.statements = 0

    def _opening(self) -> tuple[Statement, ...]:
        opening, self._begin = self._begin, ()
        self._open = self._open or bool(opening)
        return opening

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Result:
        result = Result(self)
        self._waiting.append((translate(sql.strip().rstrip(";")), tuple(parameters), result))
        if not self._batching:
            self.flush()
        return result

    def flush(self, *after: str) -> None:
        """Send the waiting statements (then ``after``, without parameters) in one round trip."""
        waiting, self._waiting = self._waiting, []
        opening = self._opening()
        if not (opening or waiting or after):
            return
        closing = self._close_on_flush and self._open and not after
        if closing:
            after, self._close_on_flush = ("COMMIT",), False
        raw = self.raw
        sent: list[Statement] = [
            *opening,
            *((sql, params) for sql, params, _ in waiting),
            *((text, ()) for text in after),
        ]
        # One cursor per statement: in a pipeline each keeps its own statement's result.
        curs = raw.cursors(len(sent))
        if len(sent) == 1:
            curs[0].execute(*sent[0])
        else:
            with raw.pipeline():
                for cur, (text, params) in zip(curs, sent, strict=True):
                    cur.execute(text, params)
        # Counted once the server answered: a batch lost with its connection did nothing.
        self.statements += len(waiting)
        if closing:
            self._open = False
        mine = curs[len(opening) : len(opening) + len(waiting)]
        for cur, (_, _, result) in zip(mine, waiting, strict=True):
            result._settle(cur.rowcount, _rows(cur))

    def executemany(self, sql: str, parameters: Any, /) -> psycopg.Cursor[PgRow]:
        self.flush()
        cur = self.raw.cursor()
        cur.executemany(translate(sql), [tuple(p) for p in parameters])
        self.statements += 1
        return cur

    def end(self, commit: bool) -> None:
        """COMMIT (with the statements still waiting) or ROLLBACK what was begun; nothing is
        sent when no statement ran. A batch that fails at its COMMIT is rolled back."""
        if commit and self._waiting:
            in_transaction = self._open or bool(self._begin)
            try:
                self.flush(*(("COMMIT",) if in_transaction else ()))
            except BaseException:
                self._rollback()
                raise
            self._open = False
            return
        self._waiting.clear()
        self._begin = ()
        if self._open:
            self._open = False
            self.raw.cursors(1)[0].execute("COMMIT" if commit else "ROLLBACK")

    def _rollback(self) -> None:
        self._waiting.clear()
        self._begin = ()
        self._open = False
        if not self.raw.broken and self.raw.info.transaction_status != TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.OperationalError):
                self.raw.execute("ROLLBACK")


def _connect_kwargs(timeout: float) -> dict[str, Any]:
    return {
        "autocommit": True,  # transactions are begun and ended by hand, as on SQLite
        "row_factory": _pg_row,
        "connect_timeout": max(1, round(timeout)),
        # A server that vanished without closing the socket is noticed within seconds.
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 2,
    }


def connect(url: str, timeout: float = 5.0) -> PgConn:
    """One connection outside any pool (migrations, tools, tests), in autocommit."""
    return PgConn(StoreConnection.connect(url, **_connect_kwargs(timeout)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _refusal(url: str, exc: psycopg.Error) -> DatabaseRefused:
    return DatabaseRefused(f"cannot use the database {redact(url)}: {_first_line(exc)}")


def redact(url: str) -> str:
    """The URL with any password replaced, for logs and error messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(unparsable URL)"
    host = info.get("host", "localhost")
    port = info.get("port", "5432")
    return f"postgresql://{info.get('user', '')}@{host}:{port}/{info.get('dbname', '')}"


def schema_version(conn: PgConn) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return 0 if row is None else int(row[0])


def migrate(conn: PgConn, migrations: Sequence[Callable[[Any], None]], check: Any) -> int:
    """Bring the database up to ``len(migrations)``; returns the version it had before."""
    conn.execute("BEGIN")
    try:
        # Two processes starting on an empty database at once: one migrates, the other waits.
        conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
        before = version = schema_version(conn)
        check(version)
        if version == 0:
            conn.raw.execute(BASELINE)  # plain DDL, no parameters: sent as one script
            version = BASELINE_VERSION
        for step in migrations[version:]:
            step(conn)
        if before == 0:
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (len(migrations),))
        else:
            conn.execute("UPDATE schema_version SET version = ?", (len(migrations),))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return before


_RETRYABLE = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)


class PgEngine:
    """Runs store operations on pooled connections; every method blocks (call it off the loop)."""

    def __init__(self, url: str, *, size: int, timeout: float) -> None:
        self.url = url
        self.size = size
        self.timeout = timeout
        self._pool: psycopg_pool.ConnectionPool[StoreConnection] | None = None

    def open(self, migrations: Sequence[Callable[[Any], None]], check: Any) -> None:
        # The first connection is made by hand: a wrong URL or password is reported at once,
        # in the server's words, instead of the pool retrying in the background.
        try:
            conn = connect(self.url, self.timeout)
        except psycopg.Error as exc:
            raise _refusal(self.url, exc) from exc
        try:
            migrate(conn, migrations, check)
        finally:
            conn.raw.close()
        pool: psycopg_pool.ConnectionPool[StoreConnection] = psycopg_pool.ConnectionPool(
            self.url,
            connection_class=StoreConnection,
            min_size=1,
            max_size=self.size,
            timeout=self.timeout,
            kwargs=_connect_kwargs(self.timeout),
            open=False,
            name="burnstand",
            # A pool that could not reconnect for this long keeps serving; each request then
            # tries on its own, bounded by ``timeout``.
            reconnect_timeout=max(self.timeout, 5.0),
        )
        pool.open(wait=False)
        self._pool = pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close(timeout=self.timeout)
            self._pool = None

    def run(
        self,
        fn: Callable[[PgConn], T],
        *,
        write: bool,
        snapshot: bool = True,
        lock: str | None = None,
        one_trip: bool = False,
    ) -> T:
        """Run ``fn`` in a write transaction (keyed by ``lock``, or alone), a read snapshot,
        or (a read of one statement, ``snapshot=False``) in autocommit: one round trip. A read
        with ``one_trip`` asks all its statements before reading an answer: they, its BEGIN and
        its COMMIT travel together (statements asked after that run in autocommit)."""
        if write:
            begin = WRITE_BEGIN if lock is None else keyed_begin(lock)
        else:
            begin = READ_BEGIN if snapshot else ()
        for attempt in range(WRITE_RETRIES):
            try:
                return self._once(fn, begin, one_trip=one_trip and not write)
            except _RETRYABLE:
                if attempt == WRITE_RETRIES - 1:
                    raise
                # A deadlock with a tool holding row locks outside the store: run again.
                time.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 5)))  # noqa: S311
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(
        self, fn: Callable[[PgConn], T], begin: tuple[Statement, ...], *, one_trip: bool = False
    ) -> T:
        pool = self._pool
        if pool is None:
            raise DatabaseUnavailable("the store is not open")
        # A connection the server dropped (a restart) fails on its first statement, before
        # anything was done: it is thrown away and the call runs again on the next one, at
        # most one more time than the pool holds connections.
        for _ in range(self.size + 1):
            try:
                with pool.connection(timeout=self.timeout) as raw:
                    conn = PgConn(raw)
                    conn.begin(begin, one_trip=one_trip)
                    try:
                        result = fn(conn)
                    except BaseException as exc:
                        if raw.broken and conn.statements == 0:
                            continue  # the connection was dead before any work: next one
                        if not raw.broken:
                            with contextlib.suppress(psycopg.OperationalError):
                                conn.end(commit=False)
                        if isinstance(exc, psycopg.OperationalError) and not isinstance(
                            exc, _RETRYABLE
                        ):
                            raise DatabaseUnavailable(
                                f"the database connection was lost: {_first_line(exc)}"
                            ) from exc
                        raise
                    try:
                        conn.end(commit=True)
                    except _RETRYABLE:
                        raise
                    except psycopg.OperationalError as exc:
                        if raw.broken and conn.statements == 0:
                            continue  # its statements all waited for the COMMIT: none ran
                        raise DatabaseUnavailable(
                            f"the database connection was lost at commit: {_first_line(exc)}"
                        ) from exc
                    return result
            except psycopg_pool.PoolTimeout as exc:
                raise DatabaseUnavailable(
                    f"the database does not answer (no connection within {self.timeout:g} s)"
                ) from exc
        raise DatabaseUnavailable("the database does not answer (every connection was lost)")
