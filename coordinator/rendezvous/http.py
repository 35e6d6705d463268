"""Helpers every rendezvous handler uses: bodies, paging, path ids, who is calling, JSON out.

Handlers stay thin: parse and check the request here, run one store operation, return JSON.
Credentials arrive as ``Authorization: Bearer <credential>`` and are checked against the store off
the event loop; role checks are explicit per flow, so each handler reads as the seed flow it serves.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from coordinator.errors import BadRequest, Forbidden, NotFound, Unauthorized
from coordinator.keys import CONFIG, REVOCATIONS, STORE
from coordinator.rendezvous.validation import Schema, validate
from coordinator.store.credentials import authenticate
from coordinator.store.records import Page, Principal, Role
from coordinator.store.sql import Conn

T = TypeVar("T")

MAX_ID = 2**63 - 1
MAX_PAGE = 500

ROLE_NAMES: dict[str, str] = {
    "admin": "admin",
    "show_admin": "show admin",
    "contributor": "contributor",
    "appliance": "appliance",
}


def client_address(request: web.Request) -> str:
    """The client's address for logs, enrollment sources and rate limits.

    Behind a reverse proxy every request comes from the proxy; only a peer named with
    ``--trusted-proxy`` may say who the client was, in ``X-Forwarded-For``. The rightmost
    address there that is not itself a trusted proxy is the client (what is left of it was
    written by the client and proves nothing).
    """
    peer = request.remote or "unknown"
    trusted = request.app[CONFIG].trusted_proxies
    if peer not in trusted:
        return peer
    hops = [h.strip() for v in request.headers.getall("X-Forwarded-For", ()) for h in v.split(",")]
    for hop in reversed(hops):
        if hop and hop not in trusted:
            return hop[:64]
    return peer


def now(request: web.Request) -> float:
    return request.app[CONFIG].clock()


async def read(
    request: web.Request, fn: Callable[[Conn], T], *, single: bool = False, one_trip: bool = False
) -> T:
    """``fn`` in one snapshot; ``single`` when it runs one statement, ``one_trip`` when it asks
    all its statements before reading any answer (see `Store.read`)."""
    return await request.app[STORE].read(fn, single=single, one_trip=one_trip)


async def write(request: web.Request, fn: Callable[[Conn], T], *, lock: str | None = None) -> T:
    return await request.app[STORE].write(fn, lock=lock)


async def revoking_write(request: web.Request, fn: Callable[[Conn], T]) -> T:
    """A write that may revoke credentials: the sockets they opened are closed at once."""
    result = await write(request, fn)
    watcher = request.app.get(REVOCATIONS)
    if watcher is not None:
        watcher.poke()
    return result


async def body(request: web.Request, schema: Schema) -> dict[str, Any]:
    """The JSON body, checked against ``schema`` (400 if not JSON, 422 naming the bad field)."""
    raw = await request.read()
    if not raw.strip():
        raise BadRequest("a JSON request body is required")
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    value = validate(value, schema)
    assert isinstance(value, dict)  # noqa: S101  # every body schema is an object
    return value


def page(request: web.Request) -> Page:
    values = {"limit": Page.limit, "offset": Page.offset}
    for key in values:
        text = request.query.get(key)
        if text is None:
            continue
        try:
            values[key] = int(text)
        except ValueError:
            raise BadRequest(f"query parameter {key!r} must be an integer", field=key) from None
    if not 1 <= values["limit"] <= MAX_PAGE:
        raise BadRequest(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    if values["offset"] < 0:
        raise BadRequest("offset must not be negative", field="offset")
    if values["offset"] > MAX_ID:
        raise BadRequest(f"offset is too large (at most {MAX_ID})", field="offset")
    return Page(values["limit"], values["offset"])


def path_id(request: web.Request, name: str) -> int:
    """An integer id from the path; routes only match digits, so only overflow is left."""
    value = int(request.match_info[name])
    if value > MAX_ID or value < 1:
        raise NotFound(f"{name.removesuffix('_id')} {value} not found")
    return value


async def caller(request: web.Request) -> Principal:
    """Who holds the request's bearer credential; 401 saying why when nobody valid does."""
    header = request.headers.get("Authorization")
    if header is None:
        raise Unauthorized("no credential: send 'Authorization: Bearer <credential>'")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("malformed Authorization header: expected 'Bearer <credential>'")
    at = now(request)
    return await request.app[STORE].read(lambda conn: authenticate(conn, token, at), single=True)


def require(
    principal: Principal, roles: tuple[Role, ...], flow: str, show_id: int | None = None
) -> None:
    """403 unless ``principal`` has one of ``roles`` (and, if show-scoped, for ``show_id``)."""
    if principal.role not in roles:
        allowed = " or ".join(ROLE_NAMES[r] for r in roles)
        raise Forbidden(
            f"{flow} is for the {allowed} role; this credential is a {ROLE_NAMES[principal.role]}"
        )
    if show_id is not None and principal.role != "admin" and principal.show_id != show_id:
        raise Forbidden(
            f"{flow}: this credential is for show {principal.show_id}, not show {show_id}"
        )


async def authorized(
    request: web.Request, roles: tuple[Role, ...], flow: str, show_id: int | None = None
) -> Principal:
    principal = await caller(request)
    require(principal, roles, flow, show_id)
    return principal


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def no_content() -> web.Response:
    return web.Response(status=204)
