"""Heartbeats and the reassignment of a silent master's sessions, on both engines."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pgserver import PostgresServer

from coordinator.balancer.auth import AuthRefused, Grant
from coordinator.balancer.host import MasterHost
from coordinator.master import Master, PlacedElsewhere
from coordinator.master.db import MasterDB
from coordinator.master.room import BurnerRecord, HistoryTick, KioskRecord, QueueSnapshot
from coordinator.store import Store
from coordinator.store.failover import heartbeat, reassign_silent
from coordinator.store.sql import Conn
from wire.relay import CloseCode

NOW = 1_800_000_000.0


@pytest.fixture
def target(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Path | str:
    if engine == "sqlite":
        return tmp_path / "c.db"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


def _world(conn: Conn) -> None:
    """Masters a (silent), b and c (alive), d (added by hand, never heartbeats); three live
    sessions on a, one on b, one on d."""
    conn.execute("INSERT INTO shows (id, name, asset_root, meta, tags, created_at) "
                 "VALUES (1, 's', '/', '{}', '[]', 0)")  # fmt: skip
    conn.execute("INSERT INTO episodes (id, show_id, name, created_at) VALUES (1, 1, 'e', 0)")
    for i, name in enumerate("abcd", start=1):
        conn.execute(
            "INSERT INTO masters (id, name, url, capacity, created_at) VALUES (?, ?, ?, 10, 0)",
            (i, name, f"http://{name}:1"),
        )
    for i, master in enumerate((1, 1, 1, 2, 4), start=1):
        conn.execute(
            "INSERT INTO sessions (id, name, show_id, episode_id, master_id, state, created_at, "
            "seq) VALUES (?, 'x', 1, 1, ?, 'live', 0, ?)",
            (f"s{i}", master, i),
        )


async def test_silent_masters_sessions_move_to_the_least_loaded_live_ones(
    target: Path | str,
) -> None:
    store = Store(target)
    await store.open()
    try:
        await store.write(_world)
        await store.write(lambda c: heartbeat(c, NOW - 30, "http://a:1"))
        for url in ("http://b:1", "http://c:1"):
            await store.write(lambda c, u=url: heartbeat(c, NOW, u))
        # Two masters check at once: each session moves once.
        results = await asyncio.gather(
            store.write(lambda c: reassign_silent(c, NOW, 10.0)),
            store.write(lambda c: reassign_silent(c, NOW, 10.0)),
        )
        moved = [m for result in results for m in result]
        assert sorted(sid for sid, _ in moved) == ["s1", "s2", "s3"]
        placed = await store.read(
            lambda c: dict(c.execute("SELECT id, master_id FROM sessions ORDER BY id").fetchall())
        )
        # Each goes to the live master with the fewest live sessions (c, then b on the tie, then
        # c); d, which never heartbeats, is neither reaped nor given any.
        assert placed == {"s1": 3, "s2": 2, "s3": 3, "s4": 2, "s5": 4}
        audits = await store.read(
            lambda c: c.execute(
                "SELECT count(*) FROM audit WHERE action = 'session.failover'"
            ).fetchone()[0]
        )
        assert audits == 3
        # Nothing is left to move; and with every master silent there is nowhere to move to.
        assert await store.write(lambda c: reassign_silent(c, NOW, 10.0)) == []
        assert await store.write(lambda c: reassign_silent(c, NOW + 60, 10.0)) == []
    finally:
        await store.close()


async def test_a_master_state_written_by_one_master_is_read_by_another(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """On PostgreSQL the masters' tables are shared: what master A wrote (queue, a burner's
    statistics and counted job ids, history) is what master B loads for the session."""
    store = Store(postgres_server.new_database())
    await store.open()
    a, b = MasterDB(tmp_path / "a", store), MasterDB(tmp_path / "b", store)
    await a.open()
    await b.open()
    try:
        uid = "f" * 32
        a.submit(
            [
                QueueSnapshot("s1", (("ab" * 16, 3),)),
                BurnerRecord("s1", uid, name="left", burned=2, failed=1, jobs=("j1", "j2", "j3")),
                HistoryTick("s1", uid, None, NOW, True),
                KioskRecord("s1", 7, name="hall", burners=(uid,), cache_used=5, cache_max=9),
            ]
        )
        await a.flush()
        queue, burners, kiosks = await b.load("s1")
        assert [(k.id, k.name, k.burners, k.cache_used) for k in kiosks] == [(7, "hall", (uid,), 5)]
        assert queue == [("ab" * 16, 3)]
        assert [(r.name, r.burned, r.failed, r.jobs) for r in burners] == [
            ("left", 2, 1, ("j1", "j2", "j3"))
        ]
        history = await b.history("s1", 60, 0)
        assert [(h["burned"], h["failed"]) for h in history] == [(1, 0)]
        assert not (tmp_path / "b" / "master.db").exists()  # nothing of it on the host
    finally:
        await a.close()
        await b.close()
        await store.close()


async def test_a_watcher_judges_others_only_after_a_whole_silence_of_its_own_heartbeats(
    target: Path | str,
) -> None:
    """Right after a start (or a database outage, when nobody could heartbeat) a master does
    not take the others for dead; once its own heartbeats went through for the whole silence,
    it moves what a silent master held and announces it."""
    from coordinator.master.failover import FailoverWatcher

    store = Store(target)
    await store.open()
    try:
        await store.write(_world)
        await store.write(lambda c: heartbeat(c, NOW - 30, "http://a:1"))
        published: list[object] = []

        async def publish(event: object) -> None:
            published.append(event)

        ticks = [0.0]
        watcher = FailoverWatcher(
            store, "http://c:1", lambda: NOW, publish, silence=10.0, monotonic=lambda: ticks[0]
        )
        assert await watcher.check_once() == []  # just started: a's silence is not judged yet
        ticks[0] = 10.0
        moved = await watcher.check_once()
        assert sorted(sid for sid, _ in moved) == ["s1", "s2", "s3"]
        assert all(url == "http://c:1" for _, url in moved)  # b never heartbeat here: not live
        assert [e["session"] for e in published] == [sid for sid, _ in moved]  # type: ignore[index]
    finally:
        await store.close()


class _NoClients:
    """A balancer's side of the relay; nothing reaches a client the master does not seat."""

    def to_client(self, room: str, conn_id: str, text: str) -> None:
        raise AssertionError(text)

    def broadcast(self, room: str, text: str) -> None:
        raise AssertionError(text)

    def close_client(self, room: str, conn_id: str, code: CloseCode, reason: str) -> None:
        raise AssertionError(reason)


async def test_a_master_on_the_shared_database_loads_only_the_rooms_placed_on_it(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """Every transport (links, the balancers' relay, the burn listener) loads rooms through
    `Master.load`: master b runs its own session, is refused another master's (naming it), and
    takes that one once the database moves it to b, as a failover does."""
    store = Store(postgres_server.new_database())
    await store.open()
    master = Master(tmp_path / "b", shared=store, url="http://b:1")
    await master.open()
    try:
        await store.write(_world)
        assert (await master.load("S4")).session_id == "s4"
        with pytest.raises(PlacedElsewhere, match="http://a:1") as refused:
            await master.load("s1")
        assert refused.value.owner == "http://a:1"
        assert master.room("s1") is None  # no second room beside a's
        # A balancer that routed a browser here on a placement read before the session moved:
        # the browser is closed with "try again" (1013) and reconnects to the session's master.
        seat = MasterHost(master, store, lambda: NOW).attach(_NoClients(), "stale balancer")
        grant = Grant("s1", 1, "contributor", 1, True, None, "http://b:1")
        with pytest.raises(AuthRefused) as closed:
            await seat.join("s1", "browser-1", "token", grant)
        assert closed.value.code is CloseCode.TRY_AGAIN_LATER
        assert master.room("s1") is None
        await store.write(lambda c: c.execute("UPDATE sessions SET master_id = 2 WHERE id = 's1'"))
        assert (await master.load("s1")).session_id == "s1"
    finally:
        await master.close()
        await store.close()
