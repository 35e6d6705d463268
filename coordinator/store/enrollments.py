"""Kiosk enrollment: a new appliance asks to join a show with its one-time code; an admin decides.

The kiosk makes its own code on first boot (eight characters, shown as ``ABCD-2345`` on its screen)
and presents it with a name and a show; the coordinator keeps one row per code, ever, so a code
that was accepted or rejected is spent. The kiosk polls with a random poll token of which only the
hash is stored. A request belongs to its first asker: asking again with the same code is only
the same request when the same poll token comes with it; anyone else gets a conflict, counted on
the request so the admin sees that a second client knows the code. A confirmation phrase derived
from the first asker's poll token is kept to show beside the request, to match against the
kiosk's screen. Accepting creates the appliance; its credential is made when the kiosk's next
poll picks it up, so no usable credential is ever written to the database. Every change is
audited.
"""

from __future__ import annotations

import hmac
import re

from coordinator.store.errors import Conflict, Invalid, NotFound
from coordinator.store.people import create_appliance, issue_appliance_credential
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
from coordinator.store.sql import Conn, Row
from wire.enrollment import confirmation_phrase

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


def _resolve_show(conn: Conn, show: int | str) -> int:
    if isinstance(show, int):
        row = conn.execute("SELECT id FROM shows WHERE id = ?", (show,)).fetchone()
    else:
        row = conn.execute(
            "SELECT id FROM shows WHERE name = ? COLLATE NOCASE", (show.strip(),)
        ).fetchone()
    if row is None:
        raise NotFound(f"show {show!r} not found", field="show")
    return int(row["id"])


class EnrollmentTaken(Conflict):
    """Someone else asked first with this code (raised after the conflict is recorded)."""


def _view(row: Row) -> Record:
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
        "phrase": row["phrase"],
        "conflicts": row["conflicts"],
        "conflict_source": row["conflict_source"],
        "conflict_at": iso(row["conflict_at"]),
    }


def request(
    conn: Conn,
    now: float,
    code: str,
    name: str,
    show: int | str,
    source: str,
    poll_token: str | None = None,
) -> tuple[Record | EnrollmentTaken, bool]:
    """Seed-less flow "kiosk asks to enroll": a pending request and its poll token.

    Returns the request (with ``poll_token``) and whether it is new. Asking again while it is
    pending, with the poll token of the first answer, is the same request (a restarted kiosk);
    without it, the ask is recorded as a conflict on the request and answered with
    ``EnrollmentTaken`` (a ``Conflict`` the caller raises after this transaction commits, so
    the record stays): the first asker keeps the request, its show and its name.
    """
    code = normalize_code(code)
    show_id = _resolve_show(conn, show)
    row = conn.execute("SELECT * FROM enrollments WHERE code = ?", (code,)).fetchone()
    if row is not None:
        return _ask_again(conn, now, row, source, poll_token), False
    poll_token = new_token()
    e_id = insert(
        conn,
        "enrollments",
        {
            "code": code,
            "show_id": show_id,
            "name": name,
            "state": "pending",
            "poll_hash": token_hash(poll_token),
            "phrase": confirmation_phrase(poll_token),
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
    fresh = one(conn, "SELECT * FROM enrollments WHERE id = ?", (e_id,), "enrollment vanished")
    return {**_view(fresh), "status": "pending", "poll_token": poll_token}, True


def _ask_again(
    conn: Conn, now: float, row: Row, source: str, poll_token: str | None
) -> Record | EnrollmentTaken:
    code, e_id = row["code"], row["id"]
    if row["state"] != "pending":
        raise Conflict(
            f"enrollment code {shown(code)} was already used ({row['state']} at "
            f"{iso(row['decided_at'])}); the kiosk needs a new code",
            field="code",
        )
    if poll_token is not None and hmac.compare_digest(row["poll_hash"], token_hash(poll_token)):
        conn.execute(
            "UPDATE enrollments SET attempts = attempts + 1, renewed_at = ? WHERE id = ?",
            (now, e_id),
        )
        fresh = one(conn, "SELECT * FROM enrollments WHERE id = ?", (e_id,), "enrollment vanished")
        return {**_view(fresh), "status": "pending", "poll_token": poll_token}
    conn.execute(
        "UPDATE enrollments SET conflicts = conflicts + 1, conflict_source = ?, conflict_at = ? "
        "WHERE id = ?",
        (source, now, e_id),
    )
    audit(
        conn,
        now,
        f"kiosk@{source}",
        "enrollment.conflict",
        f"enrollment:{e_id}",
        {"code": shown(code)},
    )
    return EnrollmentTaken(
        f"enrollment code {shown(code)} was already asked for by another client; if this is "
        "the kiosk showing the code, a show admin should reject the other request and give "
        "the kiosk a new code",
        field="code",
    )


def poll(conn: Conn, now: float, poll_token: str) -> Record:
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
    if row["picked_up_at"] is not None:
        raise Conflict(
            f"the credential of enrollment {shown(row['code'])} was already handed out at "
            f"{iso(row['picked_up_at'])}; remove the appliance and enroll again with a new code"
        )
    if row["appliance_id"] is None:
        raise Conflict(
            f"the appliance of enrollment {shown(row['code'])} was removed before the kiosk "
            "picked up its credential; enroll again with a new code"
        )
    # Made now, handed over in this answer, and only its hash kept.
    credential = issue_appliance_credential(conn, now, row["appliance_id"], row["show_id"])
    conn.execute("UPDATE enrollments SET picked_up_at = ? WHERE id = ?", (now, row["id"]))
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
        "credential": credential,
        "appliance_id": row["appliance_id"],
        "show_id": row["show_id"],
    }


def list_pending(conn: Conn, show_id: int, page: Page) -> Record:
    one(conn, "SELECT id FROM shows WHERE id = ?", (show_id,), f"show {show_id} not found")
    return paged(
        conn,
        "SELECT * FROM enrollments WHERE show_id = ? AND state = 'pending' ORDER BY id",
        (show_id,),
        page,
        _view,
    )


def _pending_row(conn: Conn, show_id: int, e_id: int) -> Row:
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


def _free_name(conn: Conn, show_id: int, wanted: str, code: str) -> str:
    # Kiosks flashed from one image share a default name; the code tells them apart.
    taken = conn.execute(
        "SELECT 1 FROM appliances WHERE show_id = ? AND name = ?", (show_id, wanted)
    ).fetchone()
    return wanted if taken is None else f"{wanted} {shown(code)}"


def accept(
    conn: Conn,
    now: float,
    actor: str,
    show_id: int,
    e_id: int,
    name: str | None = None,
) -> Record:
    """Create the appliance; its credential is made when the kiosk's next poll picks it up."""
    row = _pending_row(conn, show_id, e_id)
    wanted = name if name is not None else _free_name(conn, show_id, row["name"], row["code"])
    appliance = create_appliance(conn, now, actor, show_id, wanted, credential=False)
    conn.execute(
        "UPDATE enrollments SET state = 'accepted', decided_at = ?, decided_by = ?, "
        "appliance_id = ? WHERE id = ?",
        (now, actor, appliance["id"], e_id),
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


def reject(conn: Conn, now: float, actor: str, show_id: int, e_id: int) -> Record:
    row = _pending_row(conn, show_id, e_id)
    conn.execute(
        "UPDATE enrollments SET state = 'rejected', decided_at = ?, decided_by = ? WHERE id = ?",
        (now, actor, e_id),
    )
    audit(conn, now, actor, "enrollment.reject", f"enrollment:{e_id}", {"code": shown(row["code"])})
    fresh = one(conn, "SELECT * FROM enrollments WHERE id = ?", (e_id,), "enrollment vanished")
    return _view(fresh)
