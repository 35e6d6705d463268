"""The appliance's job journal: one SQLite file that survives power cuts.

Every burn job's state change is written (WAL, synchronous=FULL) before the change happens,
so after a crash or a pulled plug the agent knows which targets were mid-write — it marks them
failed on the next open, never good — and which results it has not yet reported upstream. All
SQLite work runs on one dedicated thread with its own connection, never on the event loop.

Several processes may share one journal (the agent, a CLI burn, `jobs`), so every job records
its owner: the writer that created it, which holds an advisory lock (flock on a file beside the
journal) for as long as it is open. Recovery fails only jobs whose owner's lock is free — the
owner crashed or lost power — and a read-only open never recovers: it shows such jobs as
interrupted without writing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import fcntl
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

INTERRUPTED = "interrupted"
INTERRUPTED_MESSAGE = "the burn stopped mid-way: power loss or crash"


class JobState(enum.StrEnum):
    QUEUED = "queued"
    WRITING = "writing"
    VERIFYING = "verifying"
    PASSED = "passed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL = frozenset({JobState.PASSED, JobState.FAILED, JobState.CANCELLED})
_ALLOWED: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.WRITING, JobState.FAILED, JobState.CANCELLED}),
    JobState.WRITING: frozenset(
        {JobState.VERIFYING, JobState.PASSED, JobState.FAILED, JobState.CANCELLED}
    ),
    JobState.VERIFYING: frozenset({JobState.PASSED, JobState.FAILED, JobState.CANCELLED}),
}


class JournalError(Exception):
    """Misuse of the journal: unknown job, duplicate id, or a transition that cannot happen."""


@dataclasses.dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    drive_uid: str
    target: str
    image_path: str
    image_sha256: str | None
    image_md5: str | None
    state: JobState
    reason: str | None
    message: str | None
    created_at: float
    updated_at: float
    reported_upstream: bool

    def as_json(self) -> dict[str, object]:
        """The job as `burnstand-agent jobs --json` and the control socket's `jobs` show it."""
        return {
            "id": self.id,
            "target": self.target,
            "uid": self.drive_uid,
            "image": self.image_path,
            "sha256": self.image_sha256,
            "md5": self.image_md5,
            "state": str(self.state),
            "reason": self.reason,
            "message": self.message,
            "reported_upstream": self.reported_upstream,
            "started": _iso(self.created_at),
            # Seconds from start to end; None while the job runs, and for an interrupted job
            # (nobody saw it end: its end is when recovery found it).
            "duration": (
                round(self.updated_at - self.created_at, 3)
                if self.state in FINAL and self.reason != INTERRUPTED
                else None
            ),
        }


def _iso(epoch: float) -> str:
    """A journal time as ISO 8601 in UTC, to the second."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    drive_uid TEXT NOT NULL,
    target TEXT NOT NULL,
    image_path TEXT NOT NULL,
    image_sha256 TEXT,
    image_md5 TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    message TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    reported_upstream INTEGER NOT NULL DEFAULT 0,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS transitions (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    state TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_unreported ON jobs(reported_upstream, state);
"""
_COLUMNS = (
    "id, drive_uid, target, image_path, image_sha256, image_md5, state, reason, message,"
    " created_at, updated_at, reported_upstream"
)


def _record(row: tuple[object, ...]) -> JobRecord:
    return JobRecord(
        id=str(row[0]),
        drive_uid=str(row[1]),
        target=str(row[2]),
        image_path=str(row[3]),
        image_sha256=None if row[4] is None else str(row[4]),
        image_md5=None if row[5] is None else str(row[5]),
        state=JobState(str(row[6])),
        reason=None if row[7] is None else str(row[7]),
        message=None if row[8] is None else str(row[8]),
        created_at=float(row[9]),  # type: ignore[arg-type]
        updated_at=float(row[10]),  # type: ignore[arg-type]
        reported_upstream=bool(row[11]),
    )


def owners_dir(path: Path) -> Path:
    """Where the writers of the journal at `path` keep their owner locks."""
    return path.with_name(path.name + ".owners")


class OwnerLock:
    """The advisory lock that says "the writer `owner` is alive": an exclusive flock on
    `<journal>.owners/<owner>`, held from open to close. The file is locked under a temporary
    name and then renamed, so nobody ever sees an owner file that is not locked yet."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.owner = uuid.uuid4().hex
        self.path = directory / self.owner
        tmp = directory / f".{self.owner}.new"
        self._fd: int | None = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(self._fd, f"{os.getpid()}\n".encode())
            os.rename(tmp, self.path)
        except BaseException:
            self.release()
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def release(self) -> None:
        """Give the lock up without removing the file, as a crash would."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        self.release()


def owner_alive(directory: Path, owner: str | None) -> bool:
    """Whether the writer `owner` still holds its lock (a job without owner predates owners)."""
    if not owner:
        return False
    try:
        fd = os.open(directory / owner, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops a shared lock we got
    return False


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _unusable(path: Path, exc: BaseException) -> JournalError:
    """One line saying why `path` cannot be the job journal, for the user to fix."""
    if isinstance(exc, IsADirectoryError) or path.is_dir():
        return JournalError(f"{path} is a directory, not a job journal file")
    if _read_only_fs(path):
        return JournalError(
            f"{path} cannot be used as the job journal: Read-only file system at {path.parent}"
        )
    if isinstance(exc, OSError) and exc.strerror:
        return JournalError(f"{path} cannot be used as the job journal ({exc.strerror})")
    return JournalError(f"{path} is not a usable job journal ({exc})")


class JournalDB:
    """The synchronous core; use it from one thread only (the `Journal` wrapper does).

    `read_only` opens an existing journal for looking only: no schema change, no recovery, no
    owner lock, and jobs whose owner is gone read as interrupted."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self.owners = owners_dir(path)
        self.owner_lock: OwnerLock | None = None
        self.recovered: list[str] = []
        if path.is_dir():
            raise _unusable(path, IsADirectoryError())
        if read_only and not path.exists():
            raise JournalError(f"there is no job journal at {path}")
        try:
            if read_only:
                uri = f"{path.resolve().as_uri()}?mode=ro"
                self.conn = sqlite3.connect(
                    uri, uri=True, isolation_level=None, check_same_thread=False
                )
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise _unusable(path, exc) from exc
        try:
            if not read_only:
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=FULL")
                self.conn.execute("PRAGMA foreign_keys=ON")
                self.conn.executescript(_SCHEMA)
                self._migrate()
            columns = {str(r[1]) for r in self.conn.execute("PRAGMA table_info(jobs)")}
            if "id" not in columns:
                raise sqlite3.DatabaseError("it has no jobs table")
            self._owner_column = "owner" if "owner" in columns else "NULL"
            if not read_only:
                self.owner_lock = OwnerLock(self.owners)
                self.recovered = self._recover()
        except (OSError, sqlite3.Error) as exc:
            self.close()
            raise _unusable(path, exc) from exc

    @property
    def owner(self) -> str | None:
        return None if self.owner_lock is None else self.owner_lock.owner

    def _migrate(self) -> None:
        columns = {str(r[1]) for r in self.conn.execute("PRAGMA table_info(jobs)")}
        if "owner" not in columns:
            self.conn.execute("ALTER TABLE jobs ADD COLUMN owner TEXT")

    def _orphaned(self) -> list[str]:
        """Jobs the journal last saw writing or verifying whose owner is gone."""
        rows = self.conn.execute(
            f"SELECT id, {self._owner_column} FROM jobs WHERE state IN (?, ?)",  # noqa: S608
            (JobState.WRITING, JobState.VERIFYING),
        ).fetchall()
        return [
            str(job_id)
            for job_id, owner in rows
            if owner != self.owner and not owner_alive(self.owners, owner)
        ]

    def _recover(self) -> list[str]:
        """A job whose owner died writing or verifying never finished: its target may hold
        half an image, so it is failed — a power cut must never turn into a pass. A job whose
        owner still runs (another process burning right now) is left alone."""
        now = time.time()
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            ids = self._orphaned()
            for job_id in ids:
                self._set(job_id, JobState.FAILED, INTERRUPTED, INTERRUPTED_MESSAGE, now)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        self._sweep_owner_files()
        return ids

    def _sweep_owner_files(self) -> None:
        """Remove the lock files crashed writers left behind (their jobs are recovered now)."""
        with contextlib.suppress(OSError):
            for entry in self.owners.iterdir():
                if entry.name.startswith("."):
                    continue
                if entry.name != self.owner and not owner_alive(self.owners, entry.name):
                    with contextlib.suppress(OSError):
                        entry.unlink()

    def _set(
        self, job_id: str, state: JobState, reason: str | None, message: str | None, now: float
    ) -> None:
        self.conn.execute(
            "UPDATE jobs SET state=?, reason=?, message=?, updated_at=? WHERE id=?",
            (state, reason, message, now, job_id),
        )
        self.conn.execute(
            "INSERT INTO transitions(job_id, state, at) VALUES (?, ?, ?)", (job_id, state, now)
        )

    def create(
        self,
        job_id: str,
        drive_uid: str,
        target: str,
        image_path: str,
        image_sha256: str | None,
        image_md5: str | None,
    ) -> None:
        now = time.time()
        try:
            with self.conn:
                self.conn.execute(
                    f"INSERT INTO jobs({_COLUMNS}, owner)"  # noqa: S608
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,0,?)",
                    (
                        job_id,
                        drive_uid,
                        target,
                        image_path,
                        image_sha256,
                        image_md5,
                        JobState.QUEUED,
                        None,
                        None,
                        now,
                        now,
                        self.owner,
                    ),
                )
                self.conn.execute(
                    "INSERT INTO transitions(job_id, state, at) VALUES (?, ?, ?)",
                    (job_id, JobState.QUEUED, now),
                )
        except sqlite3.IntegrityError as exc:
            raise JournalError(f"job {job_id} already exists") from exc

    def transition(
        self, job_id: str, state: JobState, reason: str | None = None, message: str | None = None
    ) -> None:
        state = JobState(state)
        with self.conn:
            current = self.get(job_id)
            if current is None:
                raise JournalError(f"no job {job_id} in the journal")
            if state not in _ALLOWED.get(current.state, frozenset()):
                raise JournalError(f"job {job_id} cannot go from {current.state} to {state}")
            self._set(job_id, state, reason, message, time.time())

    def get(self, job_id: str) -> JobRecord | None:
        query = f"SELECT {_COLUMNS} FROM jobs WHERE id=?"  # noqa: S608
        row = self.conn.execute(query, (job_id,)).fetchone()
        return None if row is None else _record(row)

    def jobs(self) -> list[JobRecord]:
        """Every job, oldest first; a read-only view shows orphaned jobs as interrupted."""
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM jobs ORDER BY created_at, id"  # noqa: S608
        ).fetchall()
        records = [_record(r) for r in rows]
        orphans = set(self._orphaned()) if self.read_only else set()
        return [
            dataclasses.replace(
                r, state=JobState.FAILED, reason=INTERRUPTED, message=INTERRUPTED_MESSAGE
            )
            if r.id in orphans
            else r
            for r in records
        ]

    def history(self, job_id: str) -> list[JobState]:
        rows = self.conn.execute(
            "SELECT state FROM transitions WHERE job_id=? ORDER BY rowid", (job_id,)
        ).fetchall()
        return [JobState(str(r[0])) for r in rows]

    def unreported(self) -> list[JobRecord]:
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE reported_upstream=0"  # noqa: S608
            " AND state IN (?, ?, ?) ORDER BY updated_at, id",
            (JobState.PASSED, JobState.FAILED, JobState.CANCELLED),
        ).fetchall()
        return [_record(r) for r in rows]

    def mark_reported(self, job_ids: Iterable[str]) -> None:
        ids = list(job_ids)
        with self.conn:
            for job_id in ids:
                cur = self.conn.execute(
                    "UPDATE jobs SET reported_upstream=1 WHERE id=? AND state IN (?, ?, ?)",
                    (job_id, JobState.PASSED, JobState.FAILED, JobState.CANCELLED),
                )
                if cur.rowcount != 1:
                    raise JournalError(f"job {job_id} is unknown or not finished yet")

    def close(self) -> None:
        with contextlib.suppress(AttributeError):
            self.conn.close()
        if self.owner_lock is not None:
            self.owner_lock.close()


class Journal:
    """Async face of the journal: every call runs on the journal's own thread."""

    def __init__(self, db: JournalDB, executor: ThreadPoolExecutor) -> None:
        self._db = db
        self._executor = executor

    @property
    def recovered(self) -> list[str]:
        """Jobs found mid-write at open and marked failed ("interrupted")."""
        return list(self._db.recovered)

    @classmethod
    async def open(cls, path: Path, *, read_only: bool = False) -> Journal:
        """Open (and as a writer, create and recover) the journal at `path`; `read_only` only
        looks and never changes a thing, so it is safe beside a running burn."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        loop = asyncio.get_running_loop()
        try:
            db = await loop.run_in_executor(
                executor, lambda: JournalDB(Path(path), read_only=read_only)
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(db, executor)

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def create(
        self,
        job_id: str,
        drive_uid: str,
        target: str,
        image_path: str,
        image_sha256: str | None = None,
        image_md5: str | None = None,
    ) -> None:
        await self._call(
            lambda: self._db.create(job_id, drive_uid, target, image_path, image_sha256, image_md5)
        )

    async def transition(
        self, job_id: str, state: JobState, reason: str | None = None, message: str | None = None
    ) -> None:
        await self._call(lambda: self._db.transition(job_id, state, reason, message))

    async def get(self, job_id: str) -> JobRecord | None:
        return await self._call(lambda: self._db.get(job_id))

    async def jobs(self) -> list[JobRecord]:
        return await self._call(self._db.jobs)

    async def history(self, job_id: str) -> list[JobState]:
        return await self._call(lambda: self._db.history(job_id))

    async def unreported(self) -> list[JobRecord]:
        return await self._call(self._db.unreported)

    async def mark_reported(self, job_ids: Iterable[str]) -> None:
        ids = list(job_ids)
        await self._call(lambda: self._db.mark_reported(ids))

    async def close(self) -> None:
        await self._call(self._db.close)
        self._executor.shutdown(wait=True)
