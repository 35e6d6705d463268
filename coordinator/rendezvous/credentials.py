"""Seed flows of credentials: "contributor enters system" (join), refresh ("transfer old for
new") and reading one's own credential."""

from __future__ import annotations

from aiohttp import web

from coordinator.backoff import Backoff
from coordinator.errors import TooManyRequests
from coordinator.keys import CONFIG
from coordinator.rendezvous import schemas
from coordinator.rendezvous.endpoint import PUBLIC, Endpoint
from coordinator.rendezvous.http import (
    authorized,
    body,
    caller,
    client_address,
    no_content,
    now,
    ok,
    read,
    revoking_write,
    write,
)
from coordinator.store import credentials as store
from coordinator.store.errors import Unauthorized
from coordinator.store.records import ROLES, Role

JOINERS: tuple[Role, ...] = ("show_admin", "contributor")


def _capped(request: web.Request, seconds: int) -> int:
    return min(seconds, request.app[CONFIG].max_credential_seconds)


JOIN_BACKOFF = web.AppKey("join_backoff", Backoff)


def setup(app: web.Application) -> None:
    """Give the app its `/join` back-off (tests may replace it before start)."""
    app[JOIN_BACKOFF] = Backoff("join")


async def enter_system(request: web.Request) -> web.Response:
    data = await body(request, schemas.JOIN_IN)
    seconds = _capped(request, data["duration"])
    at = now(request)
    backoff = request.app[JOIN_BACKOFF]
    # Per address (one client guessing many secrets) and per user of a show (many addresses
    # guessing one person's secret).
    keys = (f"addr:{client_address(request)}", f"user:{data['show']}:{data['user'].lower()}")
    retry = backoff.wait(keys)
    if retry:
        raise TooManyRequests(
            f"too many failed sign-ins from this address or for this user; try again in {retry} s",
            retry_after=retry,
        )
    try:
        result = await write(
            request,
            lambda c: store.enter_system(
                c, at, data["user"], data["show"], data["secret"], seconds
            ),
            # It only adds a credential for one person: sign-ins run alongside each other.
            lock=keys[1],
        )
    except Unauthorized:
        backoff.failed(keys)
        raise
    backoff.succeeded(keys[1:])
    return ok(result, 201)


async def refresh(request: web.Request) -> web.Response:
    who = await authorized(request, JOINERS, "refreshing a credential")
    data = await body(request, schemas.REFRESH_IN)
    seconds = _capped(request, data["duration"])
    at = now(request)
    return ok(await write(request, lambda c: store.refresh(c, at, who, seconds)), 201)


async def whoami(request: web.Request) -> web.Response:
    who = await caller(request)
    return ok(await read(request, lambda c: store.describe(c, who)))


async def sign_out(request: web.Request) -> web.Response:
    who = await caller(request)
    at = now(request)
    await revoking_write(request, lambda c: store.sign_out(c, at, who))
    return no_content()


ENDPOINTS = [
    Endpoint(
        "POST",
        "/join",
        enter_system,
        "Enter the system: trade user (email), show, duration and the person's secret for "
        "a credential scoped to that show",
        (PUBLIC,),
        ok=201,
        body=schemas.JOIN_IN,
        response=schemas.CREDENTIAL,
        errors=(401, 429),
        tag="credentials",
        seed_flow="contributor enters system",
    ),
    Endpoint(
        "POST",
        "/credentials/refresh",
        refresh,
        "Refresh a credential before it expires: memberships move to the new credential "
        "and the old one is revoked",
        JOINERS,
        ok=201,
        body=schemas.REFRESH_IN,
        response=schemas.CREDENTIAL,
        tag="credentials",
        seed_flow="contributor credential expires",
    ),
    Endpoint(
        "GET",
        "/credentials/me",
        whoami,
        "Who this credential is, its show, expiry and the sessions it sits in",
        ROLES,
        response=schemas.WHOAMI,
        tag="credentials",
    ),
    Endpoint(
        "DELETE",
        "/credentials/me",
        sign_out,
        "Sign out: revoke this credential (any role); it is refused from now on and the "
        "sockets opened with it are closed",
        ROLES,
        ok=204,
        tag="credentials",
    ),
]
