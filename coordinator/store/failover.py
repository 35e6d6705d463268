"""Masters' heartbeats and the reassignment of a silent master's live sessions.

A session master writes ``masters.heartbeat_at`` every few seconds. A master that has been
silent for longer than the allowed silence (its host died, say) has its live sessions moved to
the least-loaded master that is still heartbeating; only masters that ever heartbeat take part,
so a pool entry added by hand is never reaped. Every master runs the check, and one wins: the
reassignment is an ordinary write, and writes run one at a time (SQLite's writer thread,
PostgreSQL's advisory write lock), so the second finds nothing left to move.
"""

from __future__ import annotations

from coordinator.store.records import audit
from coordinator.store.sql import Conn


def heartbeat(conn: Conn, now: float, url: str) -> bool:
    """Record that the master at ``url`` is alive; False if the pool no longer lists it."""
    return (
        conn.execute("UPDATE masters SET heartbeat_at = ? WHERE url = ?", (now, url)).rowcount > 0
    )


def reassign_silent(conn: Conn, now: float, silence: float) -> list[tuple[str, str]]:
    """Move the live sessions of masters silent for over ``silence`` seconds to live masters
    with room; returns (session id, new master URL) for each session moved."""
    cutoff = now - silence
    orphans = conn.execute(
        "SELECT s.id, s.master_id FROM sessions s JOIN masters m ON m.id = s.master_id "
        "WHERE s.state = 'live' AND m.heartbeat_at IS NOT NULL AND m.heartbeat_at < ? "
        "ORDER BY s.seq",
        (cutoff,),
    ).fetchall()
    moved: list[tuple[str, str]] = []
    for session_id, old_master in orphans:
        target = conn.execute(
            "SELECT m.id, m.url FROM masters m WHERE m.heartbeat_at >= ? AND m.capacity > "
            "(SELECT count(*) FROM sessions s WHERE s.master_id = m.id AND s.state = 'live') "
            "ORDER BY (SELECT count(*) FROM sessions s WHERE s.master_id = m.id "
            "AND s.state = 'live'), m.id LIMIT 1",
            (cutoff,),
        ).fetchone()
        if target is None:
            break  # no live master has room: the rest wait for the next check
        conn.execute("UPDATE sessions SET master_id = ? WHERE id = ?", (target[0], session_id))
        audit(
            conn,
            now,
            "coordinator:failover",
            "session.failover",
            f"session:{session_id}",
            {"from_master": old_master, "to_master": target[0]},
        )
        moved.append((str(session_id), str(target[1])))
    return moved
