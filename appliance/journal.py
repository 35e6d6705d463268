"""The appliance's job journal: one SQLite file that survives power cuts.

Every burn job's state change is written (WAL, synchronous=FULL) before the change happens,
so after a crash or a pulled plug the agent knows which targets were mid-write — it marks them
failed on the next open, never good — and which results it has not yet reported upstream. All
SQLite work runs on one dedicated thread with its own connection, never on the event loop.
"""

from __future__ import annotations

import asyncio
import enum
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

INTERRUPTED = "interrupted"
INTERRUPTED_MESSAGE = "interrupted: power loss or crash"


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


@dataclass(frozen=True, slots=True)
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
    reported_upstream INTEGER NOT NULL DEFAULT 0
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


class JournalDB:
    """The synchronous core; use it from one thread only (the `Journal` wrapper does)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.executescript(_SCHEMA)
            self.recovered = self._recover()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise JournalError(f"{path} is not a usable job journal ({exc})") from exc

    def _recover(self) -> list[str]:
        """A job the journal last saw writing or verifying never finished: its target may hold
        half an image, so it is failed — a power cut must never turn into a pass."""
        now = time.time()
        with self.conn:
            ids = [
                str(r[0])
                for r in self.conn.execute(
                    "SELECT id FROM jobs WHERE state IN (?, ?)",
                    (JobState.WRITING, JobState.VERIFYING),
                )
            ]
            for job_id in ids:
                self._set(job_id, JobState.FAILED, INTERRUPTED, INTERRUPTED_MESSAGE, now)
        return ids

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
                    f"INSERT INTO jobs({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,0)",  # noqa: S608
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
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM jobs ORDER BY created_at, id"  # noqa: S608
        ).fetchall()
        return [_record(r) for r in rows]

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
        self.conn.close()


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
    async def open(cls, path: Path) -> Journal:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        loop = asyncio.get_running_loop()
        try:
            db = await loop.run_in_executor(executor, JournalDB, Path(path))
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
