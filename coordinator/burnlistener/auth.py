"""Who may be a BURNER or COMMAND on the burn-protocol listener.

The listener asks an injected async `Authorize` callback with the client type and the credential
from the `ID` line; the callback answers with the session the client belongs to (a `Grant`, or
just the session id) or `None` to refuse. `token_authorizer` is the simple case the `--burn-token`
flag gives: one shared secret, compared in constant time, mapped to one configured session.
Appliance credentials checked by the rendezvous store plug in through the same callback.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from wire.burnproto import ClientType


@dataclass(frozen=True, slots=True)
class Grant:
    """The session a client may join; `credential_id` lets expiry notices find it later."""

    session_id: str
    credential_id: str | None = None


Authorize = Callable[[ClientType, str], Awaitable[Grant | str | None]]


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
