"""Kiosk enrollment over REST: a new appliance asks with its one-time code, a show admin decides.

``POST /enroll`` and ``POST /enroll/poll`` are public (the kiosk has no credential yet), so each
client address gets a small request budget per minute, kept in memory: enough for a hall of
kiosks behind one NAT polling every few seconds, too little to flood the pending list. The show
admin (or an admin) lists the pending requests of the show, with the confirmation phrase to
match against the kiosk's screen and any conflict (another client asked with the same code), and
accepts or rejects each; the kiosk's next poll after acceptance gets a credential made there and
then, once. Client addresses come from ``X-Forwarded-For`` only behind a ``--trusted-proxy``.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from coordinator.errors import BadRequest, TooManyRequests
from coordinator.rendezvous import schemas
from coordinator.rendezvous.endpoint import PUBLIC, Endpoint
from coordinator.rendezvous.http import (
    authorized,
    body,
    client_address,
    now,
    ok,
    page,
    path_id,
    read,
    write,
)
from coordinator.rendezvous.validation import Schema, validate
from coordinator.store import enrollments as store
from coordinator.store.records import Role

ADMIN_OR_SHOW_ADMIN: tuple[Role, ...] = ("admin", "show_admin")

POLL_TOKEN: Schema = {"type": "string", "minLength": 1, "maxLength": 200}
CODE: Schema = {
    "type": "string",
    "pattern": r"^[A-HJ-NP-Za-hj-np-z2-9]{4}-?[A-HJ-NP-Za-hj-np-z2-9]{4}$",
    "description": "the kiosk's enrollment code: 8 letters and digits like ABCD-2345",
}
ENROLL_IN = schemas._obj(
    {
        "code": CODE,
        "name": schemas.NAME,
        "show": {"anyOf": [schemas.ID, schemas.NAME], "description": "show id or name"},
        "poll_token": {
            **POLL_TOKEN,
            "description": "the poll token of this kiosk's earlier answer, when it asks again",
        },
    },
    ["code", "name", "show"],
)
POLL_IN = schemas._obj({"poll_token": POLL_TOKEN}, ["poll_token"])
ACCEPT_IN = schemas._obj({"name": schemas.NAME}, [])
ENROLLMENT = schemas.record(
    "id", "code", "show_id", "name", "state", "created_at", "phrase", "conflicts"
)
ENROLL_OUT = schemas.record("id", "code", "show_id", "name", "status", "poll_token", "phrase")
POLL_OUT = schemas.record("id", "status", "code")


@dataclass
class RateLimiter:
    """At most ``limit`` requests per ``window`` seconds per key (a sliding window)."""

    limit: int
    window: float = 60.0
    max_keys: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _hits: dict[str, deque[float]] = field(default_factory=dict)

    def check(self, key: str) -> None:
        at = self.clock()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self.max_keys:
                self._prune(at)
            hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= at - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            retry = math.ceil(hits[0] + self.window - at)
            raise TooManyRequests(
                f"too many enrollment requests from {key}; try again in {retry} s",
                retry_after=retry,
            )
        hits.append(at)

    def _prune(self, at: float) -> None:
        # Memory stays bounded under a flood of addresses: forget those with no recent hit,
        # and if every one is recent, start over (a burst then gets a fresh budget, no more).
        stale = [k for k, h in self._hits.items() if not h or h[-1] <= at - self.window]
        for k in stale:
            del self._hits[k]
        if len(self._hits) >= self.max_keys:
            self._hits.clear()


@dataclass
class Limits:
    enroll: RateLimiter = field(default_factory=lambda: RateLimiter(limit=30))
    poll: RateLimiter = field(default_factory=lambda: RateLimiter(limit=600))


ENROLL_LIMITS = web.AppKey("enroll_limits", Limits)


def setup(app: web.Application) -> None:
    """Give the app its enrollment request budgets (tests may replace them before start)."""
    app[ENROLL_LIMITS] = Limits()


def _limits(request: web.Request) -> Limits:
    return request.app[ENROLL_LIMITS]


def _source(request: web.Request) -> str:
    return client_address(request)


async def request_enrollment(request: web.Request) -> web.Response:
    source = _source(request)
    _limits(request).enroll.check(source)
    data = await body(request, ENROLL_IN)
    at = now(request)
    token = data.get("poll_token")
    result, created = await write(
        request,
        lambda c: store.request(c, at, data["code"], data["name"], data["show"], source, token),
    )
    if isinstance(result, store.EnrollmentTaken):
        raise result  # after the commit: the conflict stays recorded for the admin
    return ok(result, 201 if created else 200)


async def poll_enrollment(request: web.Request) -> web.Response:
    _limits(request).poll.check(_source(request))
    data = await body(request, POLL_IN)
    at = now(request)
    return ok(await write(request, lambda c: store.poll(c, at, data["poll_token"])))


async def list_enrollments(request: web.Request) -> web.Response:
    show_id = path_id(request, "show_id")
    await authorized(request, ADMIN_OR_SHOW_ADMIN, "listing pending kiosks", show_id)
    p = page(request)
    return ok(await read(request, lambda c: store.list_pending(c, show_id, p)))


async def _optional_body(request: web.Request, schema: Schema) -> dict[str, Any]:
    """Like ``body`` but an empty body is ``{}``: accepting needs no fields."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    validate(value, schema)
    assert isinstance(value, dict)  # noqa: S101  # the schema is an object
    return value


async def accept_enrollment(request: web.Request) -> web.Response:
    show_id = path_id(request, "show_id")
    who = await authorized(request, ADMIN_OR_SHOW_ADMIN, "accepting a kiosk", show_id)
    e_id = path_id(request, "enrollment_id")
    data = await _optional_body(request, ACCEPT_IN)
    at = now(request)
    name = data.get("name")
    return ok(await write(request, lambda c: store.accept(c, at, who.actor, show_id, e_id, name)))


async def reject_enrollment(request: web.Request) -> web.Response:
    show_id = path_id(request, "show_id")
    who = await authorized(request, ADMIN_OR_SHOW_ADMIN, "rejecting a kiosk", show_id)
    e_id = path_id(request, "enrollment_id")
    at = now(request)
    return ok(await write(request, lambda c: store.reject(c, at, who.actor, show_id, e_id)))


_ONE = r"/shows/{show_id:\d+}/enrollments/{enrollment_id:\d+}"

ENDPOINTS = [
    Endpoint(
        "POST",
        "/enroll",
        request_enrollment,
        "A new kiosk asks to join a show with its one-time enrollment code; answers a pending "
        "request, the poll token and the confirmation phrase (201 new, 200 the same pending "
        "request asked again with its poll token; 409 when another client asked first)",
        (PUBLIC,),
        ok=201,
        body=ENROLL_IN,
        response=ENROLL_OUT,
        errors=(200, 404, 409, 429),
        tag="enrollment",
    ),
    Endpoint(
        "POST",
        "/enroll/poll",
        poll_enrollment,
        "The kiosk asks how its enrollment stands: pending, rejected, or accepted with the "
        "appliance credential (handed out once)",
        (PUBLIC,),
        body=POLL_IN,
        response=POLL_OUT,
        errors=(404, 409, 429),
        tag="enrollment",
    ),
    Endpoint(
        "GET",
        r"/shows/{show_id:\d+}/enrollments",
        list_enrollments,
        "List the kiosks of the show waiting to be accepted",
        ADMIN_OR_SHOW_ADMIN,
        response=schemas.page_of(ENROLLMENT),
        paged=True,
        errors=(404,),
        tag="enrollment",
    ),
    Endpoint(
        "POST",
        _ONE + "/accept",
        accept_enrollment,
        "Accept a pending kiosk: the appliance is created (optional body {name}) and the "
        "kiosk's next poll gets its credential",
        ADMIN_OR_SHOW_ADMIN,
        body=ACCEPT_IN,
        response=ENROLLMENT,
        errors=(404, 409),
        tag="enrollment",
    ),
    Endpoint(
        "POST",
        _ONE + "/reject",
        reject_enrollment,
        "Reject a pending kiosk: its code is spent",
        ADMIN_OR_SHOW_ADMIN,
        response=ENROLLMENT,
        errors=(404, 409),
        tag="enrollment",
    ),
]
