"""Seed flows of sessions: list, create (placed on the least-loaded master), join, leave (the last
leave suspends), plus explicit suspend and resume."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from aiohttp import web

from coordinator.rendezvous import schemas
from coordinator.rendezvous.endpoint import Endpoint, Handler
from coordinator.rendezvous.http import authorized, body, now, ok, page, read, write
from coordinator.store import sessions as store
from coordinator.store.records import Principal, Record, Role

CONTRIBUTOR: tuple[Role, ...] = ("contributor",)
MEMBERS: tuple[Role, ...] = ("contributor", "appliance")
# Who may list and read sessions: members, and those who oversee them (an admin every show's,
# a show admin their show's) for the fleet overview.
READERS: tuple[Role, ...] = ("admin", "show_admin", *MEMBERS)


async def list_sessions(request: web.Request) -> web.Response:
    who = await authorized(request, READERS, "listing sessions")
    p = page(request)
    return ok(await read(request, lambda c: store.list_sessions(c, who, p)))


async def create_session(request: web.Request) -> web.Response:
    who = await authorized(request, CONTRIBUTOR, "creating a session")
    data = await body(request, schemas.SESSION_IN)
    at = now(request)
    return ok(await write(request, lambda c: store.create_session(c, at, who, data)), 201)


async def get_session(request: web.Request) -> web.Response:
    who = await authorized(request, READERS, "reading a session")
    sid = request.match_info["session_id"]
    return ok(await read(request, lambda c: store.get_session(c, who, sid)))


def _action(
    roles: tuple[Role, ...],
    flow: str,
    fn: Callable[[sqlite3.Connection, float, Principal, str], Record],
) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        who = await authorized(request, roles, flow)
        sid = request.match_info["session_id"]
        at = now(request)
        return ok(await write(request, lambda c: fn(c, at, who, sid)))

    return handler


_ONE = "/sessions/{session_id}"
_ERRS = (404, 409)

ENDPOINTS = [
    Endpoint(
        "GET",
        "/sessions",
        list_sessions,
        "List the sessions of the credential's show (with whether it is a member); "
        "an admin sees every show's sessions, a show admin those of their show",
        READERS,
        response=schemas.page_of(schemas.SESSION),
        paged=True,
        tag="sessions",
        seed_flow="contributor asks for sessions list",
    ),
    Endpoint(
        "POST",
        "/sessions",
        create_session,
        "Create a session scoped to an episode (and optionally sequence, shot, take); "
        "it is placed on the least-loaded session master and the creator is a member",
        CONTRIBUTOR,
        ok=201,
        body=schemas.SESSION_IN,
        response=schemas.SESSION,
        errors=(404, 503),
        tag="sessions",
        seed_flow="contributor creates a session",
    ),
    Endpoint(
        "GET",
        _ONE,
        get_session,
        "Read one session",
        READERS,
        response=schemas.SESSION,
        errors=(404,),
        tag="sessions",
    ),
    Endpoint(
        "POST",
        _ONE + "/join",
        _action(MEMBERS, "joining a session", store.join_session),
        "Join a live session: a membership on its session master",
        MEMBERS,
        response=schemas.SESSION,
        errors=_ERRS,
        tag="sessions",
        seed_flow="contributor joins a session",
    ),
    Endpoint(
        "POST",
        _ONE + "/leave",
        _action(MEMBERS, "leaving a session", store.leave_session),
        "Leave a session; when no members remain it is suspended",
        MEMBERS,
        response=schemas.SESSION,
        errors=(404,),
        tag="sessions",
        seed_flow="contributor formally leaves a session",
    ),
    Endpoint(
        "POST",
        _ONE + "/suspend",
        _action(CONTRIBUTOR, "suspending a session", store.suspend_session),
        "Suspend a live session (all members are released)",
        CONTRIBUTOR,
        response=schemas.SESSION,
        errors=_ERRS,
        tag="sessions",
    ),
    Endpoint(
        "POST",
        _ONE + "/resume",
        _action(CONTRIBUTOR, "resuming a session", store.resume_session),
        "Resume a suspended session on the least-loaded master; the caller becomes a member",
        CONTRIBUTOR,
        response=schemas.SESSION,
        errors=(404, 409, 503),
        tag="sessions",
    ),
]
