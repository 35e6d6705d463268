"""A master's writes while PostgreSQL is away: kept, written once it is back, counted once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from pgserver import PostgresServer

from coordinator.master.backlog import uncounted
from coordinator.master.db import MasterDB
from coordinator.master.room import BurnerRecord, HistoryTick, Write
from coordinator.store import Store

NOW = 1_800_000_000.0
UID = "e" * 32
DEADLINE = 60.0


def _result(burned: int, failed: int, at: float) -> list[Write]:
    """What a master writes when a burner's result is counted: its statistics and the tick."""
    return [
        BurnerRecord("s1", UID, name="b", burned=burned, failed=failed),
        HistoryTick("s1", UID, 3, at, passed=failed == 0),
    ]


async def _counts(db: MasterDB) -> tuple[int, int, int, int]:
    """The burner's statistics and the sums of its per-minute history, as a reload sees them."""
    _, burners, _ = await db.load("s1")
    history = await db.history("s1", 60, 0)
    rows = [h for h in history if h["kind"] == "burner"]
    burned = sum(int(str(h["burned"])) for h in rows)
    failed = sum(int(str(h["failed"])) for h in rows)
    return burners[0].burned, burners[0].failed, burned, failed


async def test_results_counted_while_postgres_is_down_are_written_when_it_is_back(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    store = Store(own_postgres.new_database(), pool_timeout=1.0)
    await store.open()
    db = MasterDB(tmp_path / "m", store)
    await db.open()
    try:
        db.submit(_result(1, 0, NOW))
        await db.flush()
        assert await _counts(db) == (1, 0, 1, 0)

        await asyncio.to_thread(own_postgres.stop)
        db.submit(_result(2, 0, NOW + 60))  # a pass, then a failure, in two later minutes
        db.submit(_result(2, 1, NOW + 120))
        await db.flush()
        assert db.waiting == 4  # kept, not dropped

        await asyncio.to_thread(own_postgres.start)
        deadline = time.monotonic() + DEADLINE
        for _ in range(int(DEADLINE * 10)):  # bounded: until the kept writes are written
            if not db.waiting or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)  # poll interval between bounded checks
        assert db.waiting == 0
        # Each result once: in the statistics and in the history, minute by minute.
        assert await _counts(db) == (2, 1, 2, 1)
        history = await db.history("s1", 60, 0)
        assert [
            (h["start"], h["burned"], h["failed"]) for h in history if h["kind"] == "kiosk"
        ] == [
            (int(NOW // 60) * 60, 1, 0),
            (int((NOW + 60) // 60) * 60, 1, 0),
            (int((NOW + 120) // 60) * 60, 0, 1),
        ]
    finally:
        await db.close()
        await store.close()


@pytest.mark.parametrize("committed", [True, False])
async def test_a_batch_written_again_counts_its_results_once(
    postgres_server: PostgresServer, tmp_path: Path, committed: bool
) -> None:
    """A batch whose COMMIT was under way when the connection was lost may be in the database:
    written again, its history increments are left out if (and only if) it is."""
    store = Store(postgres_server.new_database())
    await store.open()
    db = MasterDB(tmp_path / "m", store)
    await db.open()
    try:
        db.submit(_result(1, 0, NOW))
        batch = _result(2, 0, NOW + 60)
        if committed:
            db.submit(batch)
        await db.flush()
        again = await store.read(lambda c: uncounted(c, batch))
        assert again == (batch[:1] if committed else batch)
    finally:
        await db.close()
        await store.close()
