"""Master writes the shared database could not take yet, kept in order until it is back.

A master on PostgreSQL keeps running while the database is away (a restart, a network cut):
burns finish and their results are counted in the room. The writes that record them (the
burners' statistics, the history's per-minute and per-hour increments, queues, kiosks) wait
here, in memory and bounded, and go to the database oldest first once it answers again.

Each batch is one transaction, so a batch that failed left nothing behind, except when the
connection was lost while its COMMIT was under way: then the database may hold it after all.
Statistics are written as absolute values and are harmless to write twice, but the history's
increments are not; a batch written again therefore first compares each burner's statistics in
the database with its own, and where they already match (the batch did commit) leaves that
burner's increments out. Every result is counted once.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from coordinator.master.room import BurnerRecord, HistoryTick, Write
from coordinator.store.errors import StoreError
from coordinator.store.sql import Conn

log = logging.getLogger(__name__)

MAX_WRITES = 100_000  # about 20 MB; a master burning for days alone would get here

Apply = Callable[[list[Write], bool], None]
"""Writes one batch in one transaction; True when the batch was tried before."""


class Backlog:
    """Batches not yet written, oldest first. Used from the master database's one thread."""

    def __init__(self, apply: Apply, limit: int = MAX_WRITES) -> None:
        self._apply = apply
        self._limit = limit
        self._batches: deque[tuple[list[Write], bool]] = deque()  # (writes, tried before)
        self._size = 0
        self.dropped = 0  # writes given up because the backlog was full

    def __len__(self) -> int:
        return self._size

    def write(self, writes: list[Write]) -> None:
        """Write ``writes`` after what waits; keep them if the database is away."""
        self._batches.append((writes, False))
        self._size += len(writes)
        while self._size > self._limit and len(self._batches) > 1:
            oldest, _ = self._batches.popleft()
            self._size -= len(oldest)
            self.dropped += len(oldest)
            log.error("master database away too long, oldest writes dropped",
                      extra={"count": len(oldest), "limit": self._limit})  # fmt: skip
        if len(self._batches) == 1:  # nothing was waiting: try now
            self.drain()

    def drain(self) -> bool:
        """Write what waits, oldest first; False if the database is still away."""
        kept = any(tried for _, tried in self._batches)
        written = 0
        while self._batches:
            writes, tried = self._batches[0]
            try:
                self._apply(writes, tried)
            except StoreError as exc:
                if not tried:
                    log.warning("master database away, writes kept",
                                extra={"waiting": self._size, "error": exc.detail})  # fmt: skip
                self._batches[0] = (writes, True)
                return False
            except BaseException:
                self._batches.popleft()  # a write the database refuses: never retried
                self._size -= len(writes)
                raise
            self._batches.popleft()
            self._size -= len(writes)
            written += len(writes)
        if kept:
            log.info("master database back, kept writes written", extra={"count": written})
        return True


def uncounted(conn: Conn, writes: list[Write]) -> list[Write]:
    """``writes`` without the history increments of burners whose statistics in the database
    already equal the batch's own (a batch written again after its COMMIT went through)."""
    final = {(w.session_id, w.uid): w for w in writes if isinstance(w, BurnerRecord)}
    asked = {
        key: conn.execute(
            "SELECT burned, failed, cancelled FROM burners WHERE session_id = ? AND uid = ?", key
        )
        for key in final
    }
    done = set()
    for key, cursor in asked.items():
        row = cursor.fetchone()
        record = final[key]
        if row is not None and (row[0], row[1], row[2]) == (
            record.burned,
            record.failed,
            record.cancelled,
        ):
            done.add(key)
    return [w for w in writes if not (isinstance(w, HistoryTick) and (w.session_id, w.uid) in done)]
