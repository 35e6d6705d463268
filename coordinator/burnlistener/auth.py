"""Who may be a BURNER, COMMAND or DISPLAY on the burn-protocol listener, and in which session.

The listener asks an injected async `Authorize` callback with the client type and the credential
from the `ID` line; the callback answers with the session the client belongs to (a `Grant`, or
just the session id), `None` to refuse, or raises `Refused` to refuse with a reason the client
is told. `token_authorizer` is the `--burn-token` case: one shared secret, compared in constant
time, mapped to one configured session. `credential_authorizer` checks a credential issued by
the coordinator (`burnstand-coordinator appliance create`) against the rendezvous store on a
reader thread: only an appliance credential is accepted, and it admits into the most recent live
session of that appliance's show. `chain` tries authorizers in order, so the fleet token keeps
working next to appliance credentials.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from coordinator.store import Store
from coordinator.store.credentials import authenticate
from coordinator.store.errors import Unauthorized
from coordinator.store.sql import Conn
from wire.burnproto import ClientType, ErrorCode


@dataclass(frozen=True, slots=True)
class Grant:
    """The session a client may join; `credential_id` lets expiry notices find it later."""

    session_id: str
    credential_id: str | None = None


class Refused(Exception):
    """A credential that is recognised as wrong; `text` says why and never holds the secret."""

    def __init__(
        self, text: str, code: ErrorCode = ErrorCode.NOT_ALLOWED, *, wrong_credential: bool = False
    ) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        # A credential that is not (or no longer) valid at all: what a guesser sees, so it
        # counts towards the listener's back-off; a valid one refused for another reason not.
        self.wrong_credential = wrong_credential


Authorize = Callable[[ClientType, str], Awaitable[Grant | str | None]]

# Same choice as an appliance link without `?session=`: the newest live session of the show.
_LIVE_SESSION_SQL = """
SELECT id FROM sessions WHERE show_id = ? AND state = 'live'
ORDER BY created_at DESC, seq DESC LIMIT 1
"""


def token_authorizer(token: str, session_id: str) -> Authorize:
    """Accept the shared `token` for any client type, into `session_id`."""
    if not token:
        raise ValueError("the burn token must not be empty")
    expected = token.encode("utf-8")

    async def authorize(client_type: ClientType, credential: str) -> Grant | None:
        if hmac.compare_digest(credential.encode("utf-8"), expected):
            return Grant(session_id)
        return None

    return authorize


def check_appliance(conn: Conn, client_type: ClientType, credential: str, now: float) -> Grant:
    """One read transaction: the credential's validity, kind and its show's live session."""
    try:
        principal = authenticate(conn, credential, now)
    except Unauthorized as exc:
        raise Refused(f"credential refused: {exc.detail}", wrong_credential=True) from None
    if principal.role != "appliance":
        raise Refused(
            f"a {principal.role} credential belongs to a person; a {client_type.value} presents "
            "an appliance credential (burnstand-coordinator appliance create)"
        )
    if principal.show_id is None:  # appliances always have a show; a damaged row has not
        raise Refused("this appliance credential has no show")
    row = conn.execute(_LIVE_SESSION_SQL, (principal.show_id,)).fetchone()
    if row is None:
        raise Refused(
            f"show {principal.show_id} of appliance {principal.name!r} has no live session; "
            "start or resume one, then reconnect"
        )
    return Grant(str(row["id"]), credential_id=str(principal.credential_id))


def credential_authorizer(store: Store, clock: Callable[[], float]) -> Authorize:
    """Accept appliance credentials checked against `store` (never on the event loop)."""

    async def authorize(client_type: ClientType, credential: str) -> Grant:
        now = clock()
        return await store.read(lambda conn: check_appliance(conn, client_type, credential, now))

    return authorize


def chain(*authorizers: Authorize) -> Authorize:
    """The first grant of `authorizers` tried in order; a `Refused` from any of them ends it."""
    if not authorizers:
        raise ValueError("chain needs at least one authorizer")

    async def authorize(client_type: ClientType, credential: str) -> Grant | str | None:
        result: Grant | str | None = None
        for one in authorizers:
            result = await one(client_type, credential)
            if result is not None:
                return result
        return result

    return authorize
