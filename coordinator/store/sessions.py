"""The session-master pool and live sessions: placement, membership, suspend and resume.

A session is placed on the least-loaded master of the pool (fewest live sessions, below its
capacity); with none, creating or resuming fails with 503. A session whose last member leaves is
suspended, not deleted: it keeps its scope and can be resumed, when it is placed again.
"""

from __future__ import annotations

import secrets

from coordinator.store.errors import Conflict, NotFound, Unavailable
from coordinator.store.records import Page, Principal, Record, audit, insert, iso, one, paged
from coordinator.store.sql import Conn, Cursor, Row, is_check_violation

EMBEDDED_MASTER_NAME = "local"

# --- pool -----------------------------------------------------------------------------------

_POOL_SQL = """
SELECT m.*, (SELECT count(*) FROM sessions s WHERE s.master_id = m.id AND s.state = 'live')
       AS live_sessions
FROM masters m
"""


def _master(row: Row) -> Record:
    return {
        "id": row["id"],
        "name": row["name"],
        "url": row["url"],
        "capacity": row["capacity"],
        "embedded": bool(row["embedded"]),
        "live_sessions": row["live_sessions"],
        "created_at": iso(row["created_at"]),
    }


def list_pool(conn: Conn, page: Page) -> Record:
    return paged(conn, _POOL_SQL + " ORDER BY m.id", (), page, _master)


def add_master(
    conn: Conn, now: float, actor: str, body: Record, *, embedded: bool = False
) -> Record:
    if conn.execute("SELECT 1 FROM masters WHERE url = ?", (body["url"],)).fetchone():
        raise Conflict(
            f"a session master with url {body['url']!r} is already in the pool", field="url"
        )
    m_id = insert(
        conn,
        "masters",
        {
            "name": body["name"],
            "url": body["url"],
            "capacity": body.get("capacity", 100),
            "embedded": int(embedded),
            "created_at": now,
        },
        what=f"session master named {body['name']!r}",
    )
    audit(conn, now, actor, "pool.add", f"master:{m_id}", {"url": body["url"]})
    return _master(one(conn, _POOL_SQL + " WHERE m.id = ?", (m_id,), "master vanished"))


def remove_master(conn: Conn, now: float, actor: str, m_id: int) -> None:
    row = one(
        conn, _POOL_SQL + " WHERE m.id = ?", (m_id,), f"session master {m_id} not in the pool"
    )
    if row["live_sessions"]:
        raise Conflict(
            f"session master {m_id} hosts {row['live_sessions']} live session(s); "
            "suspend them first"
        )
    conn.execute("DELETE FROM masters WHERE id = ?", (m_id,))
    audit(conn, now, actor, "pool.remove", f"master:{m_id}", {"url": row["url"]})


def ensure_local_master(conn: Conn, now: float, url: str, capacity: int) -> bool:
    """Embedded default: with an empty pool, this process becomes the pool's only master.

    A restart on another address moves the embedded master there instead of adding a second one.
    """
    embedded = conn.execute("SELECT id, url FROM masters WHERE embedded = 1").fetchone()
    if embedded is not None:
        if embedded["url"] != url:
            conn.execute("UPDATE masters SET url = ? WHERE id = ?", (url, embedded["id"]))
            audit(
                conn,
                now,
                "coordinator:startup",
                "pool.move",
                f"master:{embedded['id']}",
                {"url": url},
            )
        return False
    if conn.execute("SELECT 1 FROM masters").fetchone():
        return False
    add_master(
        conn,
        now,
        "coordinator:startup",
        {"name": EMBEDDED_MASTER_NAME, "url": url, "capacity": capacity},
        embedded=True,
    )
    return True


def _ask_place(conn: Conn) -> Cursor:
    """The placement query, sent with whatever is read next (see `_place`)."""
    return conn.execute(
        f"SELECT * FROM ({_POOL_SQL}) AS pool "  # noqa: S608  # our constant
        "WHERE live_sessions < capacity ORDER BY live_sessions, id LIMIT 1"
    )


def _place(conn: Conn, asked: Cursor | None = None) -> Row:
    """The least-loaded master with room; ``asked`` is `_ask_place`'s answer, if sent."""
    row: Row | None = (asked if asked is not None else _ask_place(conn)).fetchone()
    if row is None:
        (count,) = conn.execute("SELECT count(*) FROM masters").fetchone()
        if count == 0:
            raise Unavailable(
                "no session master available: the pool is empty "
                "(an admin adds one with POST /api/v1/pool)"
            )
        raise Unavailable(f"no session master available: all {count} are at capacity")
    return row


# --- sessions -------------------------------------------------------------------------------

# Its one parameter is the caller's credential id, for ``member`` (is the caller in it?): a
# page of sessions is one query, not one more per session.
_SESSION_SQL = """
SELECT s.*, m.name AS master_name, m.url AS master_url,
       (SELECT count(*) FROM memberships ms WHERE ms.session_id = s.id) AS members,
       EXISTS (SELECT 1 FROM memberships me
               WHERE me.session_id = s.id AND me.credential_id = ?) AS member
FROM sessions s LEFT JOIN masters m ON m.id = s.master_id
"""


def _changed(row: Row | Record, **changes: object) -> Record:
    """``row`` as a record with ``changes``: what a write knows it did, without reading it back."""
    return {**{key: row[key] for key in row.keys()}, **changes}  # noqa: SIM118  # a Row iterates values


def _session(row: Row | Record) -> Record:
    out: Record = {
        "id": row["id"],
        "name": row["name"],
        "show_id": row["show_id"],
        "episode_id": row["episode_id"],
        "sequence_id": row["sequence_id"],
        "shot_id": row["shot_id"],
        "take_id": row["take_id"],
        "state": row["state"],
        "master": (
            {"id": row["master_id"], "name": row["master_name"], "url": row["master_url"]}
            if row["master_id"] is not None
            else None
        ),
        "members": row["members"],
        "created_at": iso(row["created_at"]),
        "suspended_at": iso(row["suspended_at"]),
        "member": bool(row["member"]),
    }
    return out


def _ask_session_row(conn: Conn, principal: Principal, session_id: str) -> Cursor:
    # Room ids are case-insensitive; other shows' sessions do not exist for this credential.
    # An admin (no show) oversees every show's sessions.
    if principal.show_id is None:
        return conn.execute(
            _SESSION_SQL + " WHERE s.id = ?", (principal.credential_id, session_id.lower())
        )
    return conn.execute(
        _SESSION_SQL + " WHERE s.id = ? AND s.show_id = ?",
        (principal.credential_id, session_id.lower(), principal.show_id),
    )


def _session_row(
    conn: Conn, principal: Principal, session_id: str, asked: Cursor | None = None
) -> Row:
    """The session as ``principal`` sees it (404 if it cannot); ``asked`` is
    `_ask_session_row`'s answer, if that was sent already."""
    row: Row | None = (
        asked if asked is not None else _ask_session_row(conn, principal, session_id)
    ).fetchone()
    if row is None:
        where = "" if principal.show_id is None else f" in show {principal.show_id}"
        raise NotFound(f"session {session_id!r} not found{where}")
    return row


def list_sessions(conn: Conn, principal: Principal, page: Page) -> Record:
    if principal.show_id is None:  # an admin: every show's sessions
        return paged(
            conn,
            _SESSION_SQL + " ORDER BY s.created_at, s.id",
            (principal.credential_id,),
            page,
            _session,
        )
    return paged(
        conn,
        _SESSION_SQL + " WHERE s.show_id = ? ORDER BY s.created_at, s.id",
        (principal.credential_id, principal.show_id),
        page,
        _session,
    )


def get_session(conn: Conn, principal: Principal, session_id: str) -> Record:
    return _session(_session_row(conn, principal, session_id))


def _check_scope(conn: Conn, show_id: int, body: Record) -> dict[str, int | None]:
    """Each scope level must exist in the show and sit under the level above it."""
    scope: dict[str, int | None] = {
        "episode_id": body["episode_id"],
        "sequence_id": body.get("sequence_id"),
        "shot_id": body.get("shot_id"),
        "take_id": body.get("take_id"),
    }
    levels = [
        ("episode_id", "episodes", None),
        ("sequence_id", "sequences", "episode_id"),
        ("shot_id", "shots", "sequence_id"),
        ("take_id", "takes", "shot_id"),
    ]
    # Every level's query is sent before any answer is read: one round trip for all of them.
    asked: list[tuple[str, str | None, Cursor | None]] = []  # None: given without parent
    parent_missing: str | None = None
    for key, table, parent in levels:
        if scope[key] is None:
            parent_missing = parent_missing or key
            continue
        if parent_missing is not None:
            asked.append((key, parent_missing, None))
            break
        sql = f"SELECT * FROM {table} WHERE id = ? AND show_id = ?"  # noqa: S608  # our names
        asked.append((key, parent, conn.execute(sql, (scope[key], show_id))))
    for key, parent, cursor in asked:
        if cursor is None:
            raise NotFound(f"{key} given without {parent}", field=parent)
        row = cursor.fetchone()
        if row is None:
            raise NotFound(f"{key} {scope[key]} not found in show {show_id}", field=key)
        if parent is not None and row[parent] != scope[parent]:
            raise NotFound(f"{key} {scope[key]} is not under {parent} {scope[parent]}", field=key)
    return scope


def create_session(
    conn: Conn, now: float, principal: Principal, body: Record, session_id: str | None = None
) -> Record:
    """Seed flow "contributor creates a session": place it and seat the creator.

    Placement takes no turn of its own: the least-loaded master is picked from a snapshot, and
    the master's capacity is checked again where the session row is written (see `_claim`), so
    creations on one master take turns only for the statements of their last round trip.
    A master that filled up in between refuses the row; `is_placement_refused` tells that
    refusal apart and the caller tries again."""
    assert principal.show_id is not None  # noqa: S101  # roles allowed here are show-scoped
    asked = _ask_place(conn)  # travels with the scope's queries
    scope = _check_scope(conn, principal.show_id, body)
    master = _place(conn, asked)
    session_id = session_id or secrets.token_hex(8)
    values: Record = {
        "id": session_id,
        "name": body["name"],
        "show_id": principal.show_id,
        **scope,
        "created_by": principal.credential_id,
        "created_at": now,
    }
    _claim(conn, master["id"])
    # seq, the creation order, is numbered by the database (migration 9).
    conn.execute(
        f"INSERT INTO sessions ({', '.join(values)}, state, master_id) "  # noqa: S608  # our column names
        f"VALUES ({', '.join('?' for _ in values)}, 'live', {_WITH_ROOM})",
        (*values.values(), master["id"], master["id"], master["id"]),
    )
    conn.execute(
        "INSERT INTO memberships (session_id, credential_id, joined_at) VALUES (?, ?, ?)",
        (session_id, principal.credential_id, now),
    )
    audit(
        conn,
        now,
        principal.actor,
        "session.create",
        f"session:{session_id}",
        {"master_id": master["id"], **scope},
    )
    return _session(
        {
            **values,
            "state": "live",
            "master_id": master["id"],
            "master_name": master["name"],
            "master_url": master["url"],
            "members": 1,
            "member": True,
            "suspended_at": None,
        }
    )


# The master's id (bound twice more) if it still has room, else NULL: a live session without a
# master breaks the sessions table's CHECK, so the whole write is refused and undone.
_WITH_ROOM = (
    "CASE WHEN (SELECT count(*) FROM sessions WHERE master_id = ? AND state = 'live') "
    "< (SELECT capacity FROM masters WHERE id = ?) THEN ? END"
)


def _claim(conn: Conn, master_id: int) -> None:
    """Take the master's row lock (PostgreSQL) until the transaction ends.

    Placements on one master then take turns, and each one's next statement (a new snapshot,
    at READ COMMITTED) counts every session the one before it placed there. It is an UPDATE,
    not ``SELECT ... FOR UPDATE``, because SQLite (whose writes run one at a time anyway) has
    no FOR UPDATE."""
    conn.execute("UPDATE masters SET capacity = capacity WHERE id = ?", (master_id,))


def is_placement_refused(exc: BaseException) -> bool:
    """``exc`` is `create_session` finding its master full when it wrote the session."""
    return is_check_violation(exc)


def join_session(conn: Conn, now: float, principal: Principal, session_id: str) -> Record:
    """Seed flow "contributor joins a session": a membership on the session's master."""
    row = _session_row(conn, principal, session_id)
    if row["state"] != "live":
        raise Conflict(
            f"session {row['id']} is suspended; resume it first "
            f"(POST /api/v1/sessions/{row['id']}/resume)"
        )
    insert(
        conn,
        "memberships",
        {"session_id": row["id"], "credential_id": principal.credential_id, "joined_at": now},
        what=f"membership of this credential in session {row['id']}",
        key="session_id",
    )
    audit(conn, now, principal.actor, "session.join", f"session:{row['id']}")
    return _session(_changed(row, members=row["members"] + 1, member=True))


def leave_session(conn: Conn, now: float, principal: Principal, session_id: str) -> Record:
    """Seed flow "contributor formally leaves": the last one out suspends the session."""
    # The session is read (as it was), left and perhaps suspended in one round trip on
    # PostgreSQL; a session of another show or one not joined raises, which undoes the rest.
    sid = session_id.lower()
    asked_row = _ask_session_row(conn, principal, sid)
    asked_gone = conn.execute(
        "DELETE FROM memberships WHERE session_id = ? AND credential_id = ?",
        (sid, principal.credential_id),
    )
    asked_suspended = _ask_suspend_empty(conn, now, sid)
    row = _session_row(conn, principal, session_id, asked_row)
    if not asked_gone.rowcount:
        raise NotFound(f"this credential is not a member of session {row['id']}")
    suspended = asked_suspended.rowcount
    audit(
        conn,
        now,
        principal.actor,
        "session.leave",
        f"session:{row['id']}",
        {"suspended": bool(suspended)},
    )
    left = _changed(row, members=row["members"] - 1, member=False)
    return _session(_suspended(left, now) if suspended else left)


def _suspended(row: Row | Record, now: float) -> Record:
    """``row`` as `suspend_empty_sessions` leaves it."""
    return _changed(
        row,
        state="suspended",
        suspended_at=now,
        master_id=None,
        master_name=None,
        master_url=None,
        members=0,
    )


def _ask_suspend_empty(conn: Conn, now: float, session_id: str | None = None) -> Cursor:
    where = "state = 'live' AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.session_id = id)"
    params: tuple[object, ...] = (now,)
    if session_id is not None:
        where += " AND id = ?"
        params = (now, session_id)
    return conn.execute(
        f"UPDATE sessions SET state = 'suspended', suspended_at = ?, master_id = NULL "  # noqa: S608
        f"WHERE {where}",
        params,
    )


def suspend_empty_sessions(conn: Conn, now: float, session_id: str | None = None) -> int:
    """Suspend live sessions without members (one, or all); returns how many."""
    return _ask_suspend_empty(conn, now, session_id).rowcount


def suspend_session(conn: Conn, now: float, principal: Principal, session_id: str) -> Record:
    row = _session_row(conn, principal, session_id)
    if row["state"] != "live":
        raise Conflict(f"session {row['id']} is already suspended")
    conn.execute("DELETE FROM memberships WHERE session_id = ?", (row["id"],))
    suspend_empty_sessions(conn, now, row["id"])
    audit(
        conn,
        now,
        principal.actor,
        "session.suspend",
        f"session:{row['id']}",
        {"members_released": row["members"]},
    )
    return _session(_changed(_suspended(row, now), member=False))


def resume_session(conn: Conn, now: float, principal: Principal, session_id: str) -> Record:
    """Place a suspended session on a master again and seat the one who resumed it."""
    row = _session_row(conn, principal, session_id)
    if row["state"] == "live":
        raise Conflict(f"session {row['id']} is already live")
    master = _place(conn)
    conn.execute(
        "UPDATE sessions SET state = 'live', master_id = ?, suspended_at = NULL WHERE id = ?",
        (master["id"], row["id"]),
    )
    # Whoever resumes a session is in it: a live session with nobody in it could never be
    # suspended again by a last leave.
    conn.execute(
        "INSERT INTO memberships (session_id, credential_id, joined_at) VALUES (?, ?, ?)",
        (row["id"], principal.credential_id, now),
    )
    audit(
        conn,
        now,
        principal.actor,
        "session.resume",
        f"session:{row['id']}",
        {"master_id": master["id"]},
    )
    return _session(
        _changed(
            row,
            state="live",
            suspended_at=None,
            master_id=master["id"],
            master_name=master["name"],
            master_url=master["url"],
            members=row["members"] + 1,
            member=True,
        )
    )
