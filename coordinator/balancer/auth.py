"""Who may open the client WebSocket of a session: the rendezvous credential check.

A browser's auth-first token is a rendezvous credential. It opens `/ws/<session>` when the
credential is valid and either holds a membership in that session or belongs to an admin, or to
a show admin of the session's show. Each refusal maps to the close code the client acts on:
unknown, revoked or expired → 4001; a session that does not exist for this credential (unknown,
another show's, or one it is not a member of) → 4002, so probing does not reveal other sessions;
a suspended session → 4003; an appliance credential → 1008 (appliances use `/link`). The check
is one read transaction on a reader thread, never on the event loop.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from coordinator.store import Store
from coordinator.store.credentials import authenticate
from coordinator.store.errors import Unauthorized
from coordinator.store.sql import Conn
from wire.relay import CloseCode


class AuthRefused(Exception):
    """The token may not open this session; `code` is the close code to send."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Grant:
    """A token that may be in the session, and what the master needs to know of it."""

    session_id: str
    credential_id: int
    role: str
    person_id: int
    commands: bool
    expires_at: float | None
    master_url: str


def check(conn: Conn, token: str, session_id: str, now: float) -> Grant:
    try:
        p = authenticate(conn, token, now)
    except Unauthorized as exc:
        raise AuthRefused(CloseCode.BAD_CREDENTIAL, exc.detail) from None
    if p.role == "appliance":
        raise AuthRefused(CloseCode.POLICY_VIOLATION, "appliance credentials connect through /link")
    sid = session_id.lower()
    row = conn.execute(
        "SELECT s.show_id, s.state, m.url FROM sessions s LEFT JOIN masters m "
        "ON m.id = s.master_id WHERE s.id = ?",
        (sid,),
    ).fetchone()
    member = (
        row is not None
        and conn.execute(
            "SELECT 1 FROM memberships WHERE session_id = ? AND credential_id = ?",
            (sid, p.credential_id),
        ).fetchone()
        is not None
    )
    overseer = row is not None and (
        p.role == "admin" or (p.role == "show_admin" and p.show_id == row["show_id"])
    )
    if row is None or not (member or overseer):
        raise AuthRefused(
            CloseCode.UNKNOWN_SESSION, f"no session {sid!r} this credential is a member of"
        )
    if row["state"] != "live" or row["url"] is None:
        raise AuthRefused(CloseCode.SESSION_UNAVAILABLE, f"session {sid} is suspended")
    # Every seated client keeps its grant: intern the strings all clients of a session share, so
    # 10,000 idle sockets hold one copy each instead of 10,000.
    return Grant(
        session_id=sys.intern(sid),
        credential_id=p.credential_id,
        role=sys.intern(p.role),
        person_id=p.person_id,
        commands=p.role in ("admin", "show_admin", "contributor"),
        expires_at=p.expires_at,
        master_url=sys.intern(str(row["url"])),
    )


async def authorize(store: Store, token: str, session_id: str, now: float) -> Grant:
    """The grant for `token` in `session_id`, or `AuthRefused` with the close code."""
    return await store.read(lambda conn: check(conn, token, session_id, now))
