"""Kiosk enrollment: a new appliance asks to join a show with its one-time code; an admin decides.

The kiosk makes its own code on first boot (eight characters, shown as ``ABCD-2345`` on its screen)
and presents it with a name and a show; the coordinator keeps one row per code, ever, so a code
that was accepted or rejected is spent. The kiosk polls with a random poll token of which only the
hash is stored. Accepting creates the appliance and its credential; that credential is the one
secret kept in plaintext here, and only until the kiosk's next poll picks it up (then the column
is cleared), because the kiosk has no other way to learn it. Every change is audited.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from coordinator.errors import Conflict, Invalid, NotFound
from coordinator.store.people import create_appliance
from coordinator.store.records import (
    Page,
    Record,
    audit,
    insert,
    iso,
    new_token,
    one,
    paged,
    token_hash,
)

# The alphabet of image-build/files/burnstand-enrollment-code: no 0/O or 1/I look-alikes.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_CODE = re.compile(rf"^[{CODE_ALPHABET}]{{8}}$")


def normalize_code(text: str) -> str:
    """``abcd-2345`` and ``ABCD 2345`` are the code ``ABCD2345``; anything else is refused."""
    code = re.sub(r"[\s-]", "", text).upper()
    if not _CODE.match(code):
        raise Invalid(
            "field 'code' must be the kiosk's enrollment code: 8 letters and digits like ABCD-2345",
            field="code",
        )
    return code


def shown(code: str) -> str:
    """The code as the kiosk's screen shows it."""
    return f"{code[:4]}-{code[4:]}"


def _resolve_show(conn: sqlite3.Connection, show: int | str) -> int:
    if isinstance(show, int):
        row = conn.execute("SELECT id FROM shows WHERE id = ?", (show,)).fetchone()
    else:
        row = conn.execute(
            "SELECT id FROM shows WHERE name = ? COLLATE NOCASE", (show.strip(),)
        ).fetchone()
    if row is None:
        raise NotFound(f"show {show!r} not found", field="show")
    return int(row["id"])


def _view(row: sqlite3.Row) -> Record:
    return {
        "id": row["id"],
        "code": shown(row["code"]),
        "show_id": row["show_id"],
        "name": row["name"],
        "state": row["state"],
        "source": row["source"],
        "attempts": row["attempts"],
        "created_at": iso(row["created_at"]),
        "renewed_at": iso(row["renewed_at"]),
        "decided_at": iso(row["decided_at"]),
        "appliance_id": row["appliance_id"],
    }


def request(
    conn: sqlite3.Connection, now: float, code: str, name: str, show: int | str, source: str
) -> tuple[Record, bool]:
    """Seed-less flow "kiosk asks to enroll": a pending request and its poll token.

    Returns the request (with ``poll_token``) and whether it is new. The same code again while
    it is pending is the same request: name and show are updated to the latest ask and a fresh
    poll token replaces the old one, so a restarted kiosk needs nothing but its code.
    """
    code = normalize_code(code)
    show_id = _resolve_show(conn, show)
    poll_token = new_token()
    row = conn.execute("SELECT * FROM enrollments WHERE code = ?", (code,)).fetchone()
    created = row is None
    if row is None:
        e_id = insert(
            conn,
            "enrollments",
            {
                "code": code,
                "show_id": show_id,
                "name": name,
                "state": "pending",
                "poll_hash": token_hash(poll_token),
                "source": source,
                "created_at": now,
                "renewed_at": now,
            },
            what=f"enrollment code {shown(code)}",
        )
        audit(
            conn,
            now,
            f"kiosk@{source}",
            "enrollment.request",
            f"enrollment:{e_id}",
            {"code": shown(code), "show_id": show_id, "name": name},
        )
    else:
        e_id = row["id"]
        if row["state"] != "pending":
            raise Conflict(
                f"enrollment code {shown(code)} was already used ({row['state']} at "
                f"{iso(row['decided_at'])}); the kiosk needs a new code",
                field="code",
            )
        conn.execute(
            "UPDATE enrollments SET show_id = ?, name = ?, poll_hash = ?, source = ?, "
            "attempts = attempts + 1, renewed_at = ? WHERE id = ?",
            (show_id, name, token_hash(poll_token), source, now, e_id),
        )
        audit(
            conn,
            now,
            f"kiosk@{source}",
            "enrollment.renew",
            f"enrollment:{e_id}",
            {"code": shown(code), "show_id": show_id, "name": name},
        )
    fresh = one(conn, "SELECT * FROM enrollments WHERE id = ?", (e_id,), "enrollment vanished")
    return {**_view(fresh), "status": "pending", "poll_token": poll_token}, created


def poll(conn: sqlite3.Connection, now: float, poll_token: str) -> Record:
    """What the kiosk learns on a poll; the credential of an accepted request exactly once."""
    row = conn.execute(
        "SELECT * FROM enrollments WHERE poll_hash = ?", (token_hash(poll_token),)
    ).fetchone()
    if row is None:
        raise NotFound(
            "unknown poll token (never issued, or replaced by a newer enrollment with the same "
            "code); enroll again",
            field="poll_token",
        )
    out: Record = {"id": row["id"], "status": row["state"], "code": shown(row["code"])}
    if row["state"] != "accepted":
        return out
    if row["credential"] is None:
        raise Conflict(
            f"the credential of enrollment {shown(row['code'])} was already handed out at "
            f"{iso(row['picked_up_at'])}; remove the appliance and enroll again with a new code"
        )
    conn.execute(
        "UPDATE enrollments SET credential = NULL, picked_up_at = ? WHERE id = ?",
        (now, row["id"]),
    )
    audit(
        conn,
        now,
        f"enrollment:{row['id']}",
        "enrollment.pickup",
        f"enrollment:{row['id']}",
        {"appliance_id": row["appliance_id"]},
    )
    return {
        **out,
        "credential": row["credential"],
        "appliance_id": row["appliance_id"],
        "show_id": row["show_id"],
    }


def list_pending(conn: sqlite3.Connection, show_id: int, page: Page) -> Record:
    one(conn, "SELECT id FROM shows WHERE id = ?", (show_id,), f"show {show_id} not found")
    return paged(
        conn,
        "SELECT * FROM enrollments WHERE show_id = ? AND state = 'pending' ORDER BY id",
        (show_id,),
        page,
        _view,
    )


def _pending_row(conn: sqlite3.Connection, show_id: int, e_id: int) -> sqlite3.Row:
    row = one(
        conn,
        "SELECT * FROM enrollments WHERE id = ? AND show_id = ?",
        (e_id, show_id),
        f"enrollment {e_id} not found in show {show_id}",
    )
    if row["state"] != "pending":
        raise Conflict(
            f"enrollment {e_id} ({shown(row['code'])}) was already {row['state']} at "
            f"{iso(row['decided_at'])}"
        )
    return row


def _free_name(conn: sqlite3.Connection, show_id: int, wanted: str, code: str) -> str:
    # Kiosks flashed from one image share a default name; the code tells them apart.
    taken = conn.execute(
        "SELECT 1 FROM appliances WHERE show_id = ? AND name = ?", (show_id, wanted)
    ).fetchone()
    return wanted if taken is None else f"{wanted} {shown(code)}"


def accept(
    conn: sqlite3.Connection,
    now: float,
    actor: str,
    show_id: int,
    e_id: int,
    name: str | None = None,
) -> Record:
    """Create the appliance; its credential waits for the kiosk's next poll."""
    row = _pending_row(conn, show_id, e_id)
    wanted = name if name is not None else _free_name(conn, show_id, row["name"], row["code"])
    appliance: dict[str, Any] = create_appliance(conn, now, actor, show_id, wanted)
    conn.execute(
        "UPDATE enrollments SET state = 'accepted', decided_at = ?, decided_by = ?, "
        "appliance_id = ?, credential = ? WHERE id = ?",
        (now, actor, appliance["id"], appliance["credential"], e_id),
    )
    audit(
        conn,
        now,
        actor,
        "enrollment.accept",
        f"enrollment:{e_id}",
        {"appliance_id": appliance["id"], "code": shown(row["code"])},
    )
    fresh = one(conn, "SELECT * FROM enrollments WHERE id = ?", (e_id,), "enrollment vanished")
    return {**_view(fresh), "appliance": {k: appliance[k] for k in ("id", "show_id", "name")}}


def reject(conn: sqlite3.Connection, now: float, actor: str, show_id: int, e_id: int) -> Record:
    row = _pending_row(conn, show_id, e_id)
    conn.execute(
        "UPDATE enrollments SET state = 'rejected', decided_at = ?, decided_by = ? WHERE id = ?",
        (now, actor, e_id),
    )
    audit(conn, now, actor, "enrollment.reject", f"enrollment:{e_id}", {"code": shown(row["code"])})
    fresh = one(conn, "SELECT * FROM enrollments WHERE id = ?", (e_id,), "enrollment vanished")
    return _view(fresh)
