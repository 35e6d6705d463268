"""Shared building blocks of the store operations: who is acting, audit rows, tokens, paging.

A ``Principal`` is what a verified credential stands for; every write names one (or a CLI actor) so
the audit row written in the same transaction says who did what and when. Tokens are random and
only their SHA-256 is stored, so a leaked database file does not leak working credentials.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from coordinator.store.errors import Conflict, NotFound
from coordinator.store.sql import INTEGRITY_ERRORS, Conn, Row, is_unique_violation

Role = Literal["admin", "show_admin", "contributor", "appliance"]
ROLES: tuple[Role, ...] = ("admin", "show_admin", "contributor", "appliance")

Record = dict[str, Any]


@dataclass(frozen=True)
class Principal:
    """The holder of a valid credential."""

    credential_id: int
    role: Role
    person_id: int
    name: str
    show_id: int | None
    expires_at: float | None

    @property
    def actor(self) -> str:
        scope = f"@show:{self.show_id}" if self.show_id is not None else ""
        return f"{self.role}:{self.person_id}{scope}"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def audit(
    conn: Conn,
    now: float,
    actor: str,
    action: str,
    target: str,
    detail: Record | None = None,
) -> None:
    """Record one change; called inside the transaction that makes the change."""
    conn.execute(
        "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        (now, actor, action, target, json.dumps(detail or {}, sort_keys=True)),
    )


def loads(text: str) -> Any:
    return json.loads(text)


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def insert(conn: Conn, table: str, values: Record, *, what: str, key: str = "id") -> int:
    """Insert one row and return its ``key``; a UNIQUE violation becomes a 409 that names
    ``what`` was duplicated."""
    return cast(int, inserted(conn, table, values, what=what, returning=key)[0])


def inserted(conn: Conn, table: str, values: Record, *, what: str, returning: str = "*") -> Row:
    """Insert one row and return it as stored (defaults filled in): no second query to read
    it back. A UNIQUE violation becomes a 409 that names ``what`` was duplicated."""
    cols = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    try:
        row: Row = conn.execute(
            f"INSERT INTO {table} ({cols}) VALUES ({marks}) RETURNING {returning}",  # noqa: S608
            tuple(values.values()),
        ).fetchone()
    except INTEGRITY_ERRORS as exc:
        if is_unique_violation(exc):
            raise Conflict(f"{what} already exists") from exc
        raise
    return row


def one(conn: Conn, sql: str, params: tuple[Any, ...], missing: str) -> Row:
    row: Row | None = conn.execute(sql, params).fetchone()
    if row is None:
        raise NotFound(missing)
    return row


@dataclass(frozen=True)
class Page:
    limit: int = 50
    offset: int = 0


def paged(
    conn: Conn,
    sql: str,
    params: tuple[Any, ...],
    page: Page,
    render: Any,
) -> Record:
    """Run ``sql`` (no ORDER/LIMIT of its own beyond ORDER BY) for one page plus the total."""
    # The total counts the rows without their order: sorting them all only to count them was
    # most of a page's cost once a show had thousands of sessions.
    unordered = sql.rsplit(" ORDER BY ", 1)[0]
    # Both queries are sent before either answer is read: one round trip on PostgreSQL.
    counted = conn.execute(
        f"SELECT count(*) FROM ({unordered}) AS page_rows",  # noqa: S608  # built from ours
        params,
    )
    listed = conn.execute(f"{sql} LIMIT ? OFFSET ?", (*params, page.limit, page.offset))
    (total,) = counted.fetchone()
    rows = listed.fetchall()
    return {
        "items": [render(r) for r in rows],
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
    }
