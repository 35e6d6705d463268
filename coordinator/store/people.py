"""People and appliances: admins, and show admins and contributors (one show membership each).

Show admins and contributors prove who they are with a secret of their membership in one show,
issued once when they are added (or when their secret is reset) and stored only as a hash;
"contributor enters system" trades that secret for a short-lived credential of that show.
Appliances are kiosks enrolled in one show.
"""

from __future__ import annotations

from typing import Any

from coordinator.store.credentials import revoke_issued
from coordinator.store.errors import Conflict
from coordinator.store.records import (
    Page,
    Record,
    audit,
    dumps,
    insert,
    iso,
    loads,
    new_token,
    one,
    paged,
    token_hash,
)
from coordinator.store.sessions import suspend_empty_sessions
from coordinator.store.sql import INTEGRITY_ERRORS, Conn, Row


def _person(row: Row) -> Record:
    out: Record = {"id": row["id"], "name": row["name"], "email": row["email"]}
    if "tags" in row.keys():  # noqa: SIM118  # Row has keys() but no __contains__ by key
        out["tags"] = loads(row["tags"])
    out["created_at"] = iso(row["created_at"])
    return out


def _require_show(conn: Conn, show_id: int) -> None:
    one(conn, "SELECT id FROM shows WHERE id = ?", (show_id,), f"show {show_id} not found")


# --- admins ---------------------------------------------------------------------------------


def create_admin(conn: Conn, now: float, actor: str, name: str, email: str) -> str:
    """Create an admin and return a new admin credential (admin credentials do not expire)."""
    admin_id = insert(
        conn,
        "admins",
        {"name": name, "email": email, "created_at": now},
        what=f"admin with email {email!r}",
    )
    token = new_token()
    insert(
        conn,
        "credentials",
        {"token_hash": token_hash(token), "kind": "admin", "admin_id": admin_id, "created_at": now},
        what="credential",
    )
    audit(conn, now, actor, "admin.create", f"admin:{admin_id}", {"email": email})
    return token


def list_admins(conn: Conn, page: Page) -> Record:
    return paged(conn, "SELECT * FROM admins ORDER BY id", (), page, _person)


def remove_admin(conn: Conn, now: float, actor: str, admin_id: int) -> None:
    """Remove an admin and every credential of theirs; the last admin cannot be removed."""
    one(conn, "SELECT id FROM admins WHERE id = ?", (admin_id,), f"admin {admin_id} not found")
    (count,) = conn.execute("SELECT COUNT(*) FROM admins").fetchone()
    if count <= 1:
        raise Conflict(
            "this is the last admin; create another one first "
            "(burnstand-coordinator admin create), so the coordinator keeps a way in"
        )
    conn.execute("DELETE FROM admins WHERE id = ?", (admin_id,))  # credentials cascade
    audit(conn, now, actor, "admin.remove", f"admin:{admin_id}")


# --- show admins ----------------------------------------------------------------------------


def list_show_admins(conn: Conn, show_id: int, page: Page) -> Record:
    _require_show(conn, show_id)
    return paged(
        conn,
        "SELECT * FROM show_admins WHERE show_id = ? ORDER BY id",
        (show_id,),
        page,
        lambda r: {**_person(r), "show_id": r["show_id"]},
    )


def _add_member(
    conn: Conn, table: str, now: float, show_id: int, body: Record, what: str
) -> tuple[int, str]:
    """Insert a membership of show `show_id` into `table` (show_admins or contributors) with a new
    secret, kept only as its hash; returns the row id and the secret, to be shown this once."""
    _require_show(conn, show_id)
    secret = new_token()
    member_id = insert(
        conn,
        table,
        {
            "show_id": show_id,
            "name": body["name"],
            "email": body["email"],
            "tags": dumps(body.get("tags", [])),
            "secret_hash": token_hash(secret),
            "created_at": now,
        },
        what=what,
    )
    return member_id, secret


def add_show_admin(conn: Conn, now: float, actor: str, show_id: int, body: Record) -> Record:
    sa_id, secret = _add_member(
        conn, "show_admins", now, show_id, body, f"show admin {body['email']!r} of show {show_id}"
    )
    audit(conn, now, actor, "show_admin.add", f"show_admin:{sa_id}", {"show_id": show_id})
    row = one(conn, "SELECT * FROM show_admins WHERE id = ?", (sa_id,), "show admin vanished")
    return {**_person(row), "show_id": show_id, "secret": secret}


def _show_admin_row(conn: Conn, show_id: int, sa_id: int) -> Row:
    return one(
        conn,
        "SELECT * FROM show_admins WHERE id = ? AND show_id = ?",
        (sa_id, show_id),
        f"show admin {sa_id} not found in show {show_id}",
    )


def edit_show_admin(
    conn: Conn, now: float, actor: str, show_id: int, sa_id: int, body: Record
) -> Record:
    _show_admin_row(conn, show_id, sa_id)
    out_secret = _apply_person_edit(
        conn, now, "show_admins", sa_id, body, f"show admin of show {show_id}"
    )
    audit(conn, now, actor, "show_admin.edit", f"show_admin:{sa_id}", _edit_detail(body))
    out = {**_person(_show_admin_row(conn, show_id, sa_id)), "show_id": show_id}
    if out_secret is not None:
        out["secret"] = out_secret
    return out


def remove_show_admin(conn: Conn, now: float, actor: str, show_id: int, sa_id: int) -> None:
    _show_admin_row(conn, show_id, sa_id)
    conn.execute("DELETE FROM show_admins WHERE id = ?", (sa_id,))  # credentials cascade
    audit(conn, now, actor, "show_admin.remove", f"show_admin:{sa_id}", {"show_id": show_id})


def _edit_detail(body: Record) -> Record:
    # The audit says which fields changed, never a secret.
    return {
        "fields": sorted(k for k in body if k != "reset_secret"),
        "reset_secret": bool(body.get("reset_secret")),
    }


_OWNER_COLUMN = {"show_admins": "show_admin_id", "contributors": "contributor_id"}


def _apply_person_edit(
    conn: Conn, now: float, table: str, row_id: int, body: Record, what: str
) -> str | None:
    sets: dict[str, Any] = {}
    for key in ("name", "email"):
        if key in body:
            sets[key] = body[key]
    if "tags" in body:
        sets["tags"] = dumps(body["tags"])
    secret: str | None = None
    if body.get("reset_secret"):
        secret = new_token()
        sets["secret_hash"] = token_hash(secret)
        # A reset is how a leaked secret is taken back: what was made from it dies with it.
        revoke_issued(conn, now, _OWNER_COLUMN[table], row_id, "secret reset")
    if sets:
        assignments = ", ".join(f"{k} = ?" for k in sets)
        try:
            # Reading the count sends the statement here, so its refusal is caught here.
            _ = conn.execute(
                f"UPDATE {table} SET {assignments} WHERE id = ?",  # noqa: S608  # names are ours
                (*sets.values(), row_id),
            ).rowcount
        except INTEGRITY_ERRORS as exc:
            raise Conflict(
                f"{what} with email {body.get('email')!r} already exists", field="email"
            ) from exc
    return secret


# --- contributors ---------------------------------------------------------------------------
#
# A contributor row is one membership: a person's name, email, tags and secret in one show. The
# same email in two shows is two rows with two secrets, so a show admin's add, edit, reset or
# remove never reaches what the person is in another show, and adding an email learns nothing
# about whether it exists elsewhere. ``shows`` in the output stays a list (of that one show) for
# the clients written against the older model.


def _contributor_in_show(conn: Conn, show_id: int, c_id: int) -> Row:
    return one(
        conn,
        "SELECT * FROM contributors WHERE id = ? AND show_id = ?",
        (c_id, show_id),
        f"contributor {c_id} not found in show {show_id}",
    )


def _contributor_out(row: Row) -> Record:
    return {**_person(row), "shows": [row["show_id"]]}


def list_contributors(conn: Conn, show_id: int, page: Page) -> Record:
    _require_show(conn, show_id)
    return paged(
        conn,
        "SELECT * FROM contributors WHERE show_id = ? ORDER BY id",
        (show_id,),
        page,
        _contributor_out,
    )


def add_contributor(conn: Conn, now: float, actor: str, show_id: int, body: Record) -> Record:
    """Add a contributor to a show with a new secret of that membership, shown this once."""
    c_id, secret = _add_member(
        conn, "contributors", now, show_id, body, f"contributor {body['email']!r} in show {show_id}"
    )
    audit(conn, now, actor, "contributor.add", f"contributor:{c_id}", {"show_id": show_id})
    return {**_contributor_out(_contributor_in_show(conn, show_id, c_id)), "secret": secret}


def edit_contributor(
    conn: Conn, now: float, actor: str, show_id: int, c_id: int, body: Record
) -> Record:
    _contributor_in_show(conn, show_id, c_id)
    secret = _apply_person_edit(
        conn, now, "contributors", c_id, body, f"contributor in show {show_id}"
    )
    audit(conn, now, actor, "contributor.edit", f"contributor:{c_id}", _edit_detail(body))
    out = _contributor_out(_contributor_in_show(conn, show_id, c_id))
    if secret is not None:
        out["secret"] = secret
    return out


def remove_contributor(conn: Conn, now: float, actor: str, show_id: int, c_id: int) -> None:
    """Take a contributor off one show; their credentials for it die, and so do their seats."""
    _contributor_in_show(conn, show_id, c_id)
    conn.execute("DELETE FROM contributors WHERE id = ?", (c_id,))  # credentials cascade
    suspend_empty_sessions(conn, now)
    audit(conn, now, actor, "contributor.remove", f"contributor:{c_id}", {"show_id": show_id})


# --- appliances -----------------------------------------------------------------------------


def create_appliance(
    conn: Conn,
    now: float,
    actor: str,
    show_id: int,
    name: str,
    *,
    credential: bool = True,
) -> Record:
    """Enroll a kiosk in a show; returns the appliance and (unless ``credential`` is False, as
    for an enrollment whose kiosk picks it up later) its credential (no expiry)."""
    _require_show(conn, show_id)
    a_id = insert(
        conn,
        "appliances",
        {"show_id": show_id, "name": name, "created_at": now},
        what=f"appliance {name!r} in show {show_id}",
    )
    audit(conn, now, actor, "appliance.create", f"appliance:{a_id}", {"show_id": show_id})
    out: Record = {"id": a_id, "show_id": show_id, "name": name}
    if credential:
        out["credential"] = issue_appliance_credential(conn, now, a_id, show_id)
    return out


def issue_appliance_credential(conn: Conn, now: float, appliance_id: int, show_id: int) -> str:
    """A new credential for an appliance; only its hash is stored."""
    token = new_token()
    insert(
        conn,
        "credentials",
        {
            "token_hash": token_hash(token),
            "kind": "appliance",
            "appliance_id": appliance_id,
            "show_id": show_id,
            "created_at": now,
        },
        what="credential",
    )
    return token


def _appliance_out(row: Row) -> Record:
    return {
        "id": row["id"],
        "show_id": row["show_id"],
        "name": row["name"],
        "created_at": iso(row["created_at"]),
    }


def list_appliances(conn: Conn, show_id: int | None, page: Page) -> Record:
    """The appliances of one show (or of every show when ``show_id`` is None)."""
    if show_id is None:
        return paged(conn, "SELECT * FROM appliances ORDER BY id", (), page, _appliance_out)
    _require_show(conn, show_id)
    return paged(
        conn,
        "SELECT * FROM appliances WHERE show_id = ? ORDER BY id",
        (show_id,),
        page,
        _appliance_out,
    )


def remove_appliance(
    conn: Conn, now: float, actor: str, appliance_id: int, show_id: int | None = None
) -> Record:
    """Remove a kiosk: its credential stops working at once on every plane."""
    where, args = "id = ?", [appliance_id]
    if show_id is not None:
        where, args = "id = ? AND show_id = ?", [appliance_id, show_id]
    scope = "" if show_id is None else f" in show {show_id}"
    row = one(
        conn,
        f"SELECT * FROM appliances WHERE {where}",  # noqa: S608  # the clause is ours
        tuple(args),
        f"appliance {appliance_id} not found{scope}",
    )
    conn.execute("DELETE FROM appliances WHERE id = ?", (appliance_id,))  # credentials cascade
    audit(
        conn,
        now,
        actor,
        "appliance.remove",
        f"appliance:{appliance_id}",
        {"show_id": row["show_id"]},
    )
    return _appliance_out(row)
