"""Credentials: checking a bearer token, "contributor enters system", refresh and expiry.

A credential is a random token whose SHA-256 is stored with its kind, the person (or appliance)
it belongs to, its show and its expiry. Refresh follows the seed's "transfer old for new": a new
credential is issued, the old one's session memberships move to it and the old one is revoked, all
in one transaction, so a client never holds a seat under two credentials.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass

from coordinator.store.errors import Forbidden, Unauthorized
from coordinator.store.records import (
    Principal,
    Record,
    Role,
    audit,
    insert,
    iso,
    new_token,
    token_hash,
)
from coordinator.store.sql import Conn

_PRINCIPAL_SQL = """
SELECT c.id, c.kind, c.show_id, c.expires_at, c.revoked_at, c.revoked_reason,
       COALESCE(c.admin_id, c.show_admin_id, c.contributor_id, c.appliance_id) AS person_id,
       COALESCE(a.name, sa.name, co.name, ap.name) AS name
FROM credentials c
LEFT JOIN admins a ON a.id = c.admin_id
LEFT JOIN show_admins sa ON sa.id = c.show_admin_id
LEFT JOIN contributors co ON co.id = c.contributor_id
LEFT JOIN appliances ap ON ap.id = c.appliance_id
WHERE c.token_hash = ?
"""


def authenticate(conn: Conn, token: str, now: float) -> Principal:
    """The principal behind ``token``, or 401 saying exactly why it is refused."""
    row = conn.execute(_PRINCIPAL_SQL, (token_hash(token),)).fetchone()
    if row is None:
        raise Unauthorized("unknown credential (never issued, or its holder was removed)")
    if row["revoked_at"] is not None:
        reason = row["revoked_reason"] or "revoked"
        raise Unauthorized(f"credential revoked at {iso(row['revoked_at'])} ({reason})")
    if row["expires_at"] is not None and row["expires_at"] <= now:
        raise Unauthorized(
            f"credential expired at {iso(row['expires_at'])}; enter the system again "
            "(POST /api/v1/join) for a new one"
        )
    kind: Role = row["kind"]
    return Principal(
        credential_id=row["id"],
        role=kind,
        person_id=row["person_id"],
        name=row["name"],
        show_id=row["show_id"],
        expires_at=row["expires_at"],
    )


def _issue(
    conn: Conn,
    now: float,
    kind: Role,
    person_column: str,
    person_id: int,
    show_id: int,
    seconds: int,
) -> tuple[int, str, float]:
    token = new_token()
    expires_at = now + seconds
    cred_id = insert(
        conn,
        "credentials",
        {
            "token_hash": token_hash(token),
            "kind": kind,
            person_column: person_id,
            "show_id": show_id,
            "created_at": now,
            "expires_at": expires_at,
        },
        what="credential",
    )
    return cred_id, token, expires_at


def revoke_issued(conn: Conn, now: float, column: str, person_id: int, reason: str) -> int:
    """Revoke every live credential issued to one person (or appliance); returns how many."""
    if column not in ("admin_id", "show_admin_id", "contributor_id", "appliance_id"):
        raise ValueError(f"not a credential owner column: {column!r}")
    return conn.execute(
        f"UPDATE credentials SET revoked_at = ?, revoked_reason = ? "  # noqa: S608  # names are ours
        f"WHERE {column} = ? AND revoked_at IS NULL",
        (now, reason, person_id),
    ).rowcount


def sign_out(conn: Conn, now: float, principal: Principal) -> None:
    """Revoke the caller's own credential (and, for a refreshed one, nothing else is live)."""
    conn.execute(
        "UPDATE credentials SET revoked_at = ?, revoked_reason = ? "
        "WHERE id = ? AND revoked_at IS NULL",
        (now, "signed out", principal.credential_id),
    )
    audit(
        conn, now, principal.actor, "credential.sign_out", f"credential:{principal.credential_id}"
    )


def revoked_since(conn: Conn, after: int | None) -> tuple[int, frozenset[int]]:
    """Credentials revoked or deleted after revocation row ``after`` (None: from now on)."""
    if after is None:
        (last,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM revocations").fetchone()
        return int(last), frozenset()
    rows = conn.execute(
        "SELECT id, credential_id FROM revocations WHERE id > ? ORDER BY id LIMIT 10000",
        (after,),
    ).fetchall()
    if not rows:
        return after, frozenset()
    return int(rows[-1]["id"]), frozenset(int(r["credential_id"]) for r in rows)


def _secret_matches(stored_hash: str, secret: str) -> bool:
    return hmac.compare_digest(stored_hash, token_hash(secret))


def enter_system(
    conn: Conn,
    now: float,
    user: str,
    show_id: int,
    secret: str,
    seconds: int,
) -> Record:
    """Seed flow "contributor enters system": $USER/$SHOW/$DURATION → credential or reject."""
    candidates: list[tuple[Role, str, int, str]] = []
    # Both are asked before either answer is read: one round trip on PostgreSQL.
    asked_sa = conn.execute(
        "SELECT id, secret_hash FROM show_admins WHERE show_id = ? AND email = ? COLLATE NOCASE",
        (show_id, user),
    )
    asked_co = conn.execute(
        "SELECT id, secret_hash FROM contributors WHERE show_id = ? AND email = ? COLLATE NOCASE",
        (show_id, user),
    )
    sa = asked_sa.fetchone()
    if sa is not None:
        candidates.append(("show_admin", "show_admin_id", sa["id"], sa["secret_hash"]))
    co = asked_co.fetchone()
    if co is not None:
        candidates.append(("contributor", "contributor_id", co["id"], co["secret_hash"]))
    for kind, column, person_id, stored in candidates:
        if _secret_matches(stored, secret):
            token = new_token()
            expires_at = now + seconds
            digest = token_hash(token)
            # Neither answer is read: both rows travel with the COMMIT (on PostgreSQL, one
            # round trip). The audit row names the credential by the id it was given.
            conn.execute(
                f"INSERT INTO credentials (token_hash, kind, {column}, show_id, created_at, "  # noqa: S608  # column is ours
                "expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (digest, kind, person_id, show_id, now, expires_at),
            )
            conn.execute(
                "INSERT INTO audit (at, actor, action, target, detail) "
                "SELECT ?, ?, 'credential.issue', 'credential:' || id, ? FROM credentials "
                "WHERE token_hash = ?",
                (
                    now,
                    f"{kind}:{person_id}@show:{show_id}",
                    json.dumps({"seconds": seconds}, sort_keys=True),
                    digest,
                ),
            )
            return {
                "credential": token,
                "role": kind,
                "show_id": show_id,
                "expires_at": iso(expires_at),
                "expires_in": seconds,
            }
    # One message for unknown user, unknown show and wrong secret: no probing who exists.
    raise Unauthorized(
        f"user {user!r} is not a show admin or contributor of show {show_id} with that secret"
    )


def refresh(conn: Conn, now: float, principal: Principal, seconds: int) -> Record:
    """Seed flow "credential expires": new credential, memberships moved, old one revoked."""
    if principal.show_id is None or principal.role not in ("show_admin", "contributor"):
        raise Forbidden(
            f"a {principal.role} credential is not refreshed; only credentials from "
            "POST /api/v1/join are"
        )
    column = f"{principal.role}_id"
    new_id, token, expires_at = _issue(
        conn, now, principal.role, column, principal.person_id, principal.show_id, seconds
    )
    moved = conn.execute(
        "UPDATE memberships SET credential_id = ? WHERE credential_id = ?",
        (new_id, principal.credential_id),
    ).rowcount
    conn.execute(
        "UPDATE credentials SET revoked_at = ?, revoked_reason = ?, replaced_by = ? WHERE id = ?",
        (now, "replaced by a refreshed credential", new_id, principal.credential_id),
    )
    audit(
        conn,
        now,
        principal.actor,
        "credential.refresh",
        f"credential:{principal.credential_id}",
        {"new": new_id, "memberships_moved": moved},
    )
    return {
        "credential": token,
        "role": principal.role,
        "show_id": principal.show_id,
        "expires_at": iso(expires_at),
        "expires_in": seconds,
        "memberships_moved": moved,
    }


def describe(conn: Conn, principal: Principal) -> Record:
    sessions = [
        r[0]
        for r in conn.execute(
            "SELECT session_id FROM memberships WHERE credential_id = ? ORDER BY session_id",
            (principal.credential_id,),
        )
    ]
    return {
        "role": principal.role,
        "name": principal.name,
        "person_id": principal.person_id,
        "show_id": principal.show_id,
        "expires_at": iso(principal.expires_at),
        "sessions": sessions,
    }


@dataclass(frozen=True)
class ExpiringCredential:
    """A credential about to expire: what the live plane tells its session masters."""

    credential_id: int
    role: Role
    person_id: int
    show_id: int | None
    expires_at: float
    session_ids: tuple[str, ...]


def claim_expiring(conn: Conn, now: float, horizon: float) -> list[ExpiringCredential]:
    """Credentials that expire before ``now + horizon`` and were not announced yet; marks them."""
    rows = conn.execute(
        "SELECT id, kind, COALESCE(show_admin_id, contributor_id, appliance_id, admin_id) AS pid, "
        "show_id, expires_at FROM credentials WHERE revoked_at IS NULL AND warned_at IS NULL "
        "AND expires_at IS NOT NULL AND expires_at > ? AND expires_at <= ? ORDER BY expires_at",
        (now, now + horizon),
    ).fetchall()
    out = []
    for r in rows:
        sessions = tuple(
            s[0]
            for s in conn.execute(
                "SELECT session_id FROM memberships WHERE credential_id = ? ORDER BY session_id",
                (r["id"],),
            )
        )
        conn.execute("UPDATE credentials SET warned_at = ? WHERE id = ?", (now, r["id"]))
        out.append(
            ExpiringCredential(
                r["id"], r["kind"], r["pid"], r["show_id"], r["expires_at"], sessions
            )
        )
    return out
