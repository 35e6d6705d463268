"""Seed flows of sessions: list, create (placed on the least-loaded master), join, leave (the last
leave suspends), plus explicit suspend and resume."""

from __future__ import annotations

import csv
import io
import secrets
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from coordinator.errors import BadRequest, Unavailable
from coordinator.keys import HISTORY
from coordinator.rendezvous import schemas
from coordinator.rendezvous.endpoint import Endpoint, Handler
from coordinator.rendezvous.http import authorized, body, now, ok, page, read, write
from coordinator.store import sessions as store
from coordinator.store.records import Principal, Record, Role
from coordinator.store.sql import INTEGRITY_ERRORS, Conn
from wire.clientmsg import SPANS

CONTRIBUTOR: tuple[Role, ...] = ("contributor",)
MEMBERS: tuple[Role, ...] = ("contributor", "appliance")
# Who may list and read sessions: members, and those who oversee them (an admin every show's,
# a show admin their show's) for the fleet overview.
READERS: tuple[Role, ...] = ("admin", "show_admin", *MEMBERS)
# Who watches a live session in the dashboard, and so may read and export its history.
WATCHERS: tuple[Role, ...] = ("admin", "show_admin", "contributor")
# Each refused try means another session took the last room of a master (bounded either way).
PLACEMENT_TRIES = 5
HISTORY_COLUMNS = ("start", "span", "kind", "id", "name", "burned", "failed")


async def list_sessions(request: web.Request) -> web.Response:
    who = await authorized(request, READERS, "listing sessions")
    p = page(request)
    return ok(await read(request, lambda c: store.list_sessions(c, who, p), one_trip=True))


async def create_session(request: web.Request) -> web.Response:
    who = await authorized(request, CONTRIBUTOR, "creating a session")
    data = await body(request, schemas.SESSION_IN)
    at = now(request)
    # Keyed by the new session alone: creations run alongside each other, and a master that
    # fills up while one is placed refuses it (the capacity is checked where the row is
    # written); placed again, it goes to another master or gets the "at capacity" answer.
    sid = secrets.token_hex(8)
    for _ in range(PLACEMENT_TRIES):
        try:
            made = await write(
                request,
                lambda c: store.create_session(c, at, who, data, sid),
                lock=f"session:{sid}",
            )
        except INTEGRITY_ERRORS as exc:
            if not store.is_placement_refused(exc):
                raise
            continue
        return ok(made, 201)
    raise Unavailable(
        f"no session master available: they filled up while placing this session "
        f"({PLACEMENT_TRIES} tries); try again"
    )


async def get_session(request: web.Request) -> web.Response:
    who = await authorized(request, READERS, "reading a session")
    sid = request.match_info["session_id"]
    return ok(await read(request, lambda c: store.get_session(c, who, sid)))


async def _history(request: web.Request) -> dict[str, Any]:
    flow = "reading a session's history"
    who = await authorized(request, WATCHERS, flow)
    sid = request.match_info["session_id"]
    # Another show's session does not exist for this credential (404), as for reading it.
    session = await read(request, lambda c: store.get_session(c, who, sid))
    span_name = request.query.get("span", "minute")
    if span_name not in SPANS:
        raise BadRequest(f"span must be one of {', '.join(SPANS)}, got {span_name!r}")
    since_text = request.query.get("since", "0")
    if not since_text.isdigit() or len(since_text) > 12:
        raise BadRequest(f"since must be Unix seconds (a whole number >= 0), got {since_text!r}")
    span = int(SPANS[span_name])
    found = await request.app[HISTORY](str(session["id"]), span, int(since_text))
    if found is None:
        raise Unavailable(
            "this node hosts no session master; read the history on the session's WebSocket "
            "(action history) or from the node that hosts its master"
        )
    return {"name": session["name"], **found}


async def session_history(request: web.Request) -> web.Response:
    return ok(await _history(request))


def _cell(value: object) -> object:
    # A name typed by a person must not turn into a formula when the file is opened.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


async def session_history_csv(request: web.Request) -> web.Response:
    found = await _history(request)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HISTORY_COLUMNS)
    for row in found["rows"]:
        start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(row["start"]))
        writer.writerow(
            [
                start,
                found["span"],
                row["kind"],
                row["id"],
                _cell(row["name"]),
                row["burned"],
                row["failed"],
            ]
        )
    name = f"burnstand-{found['session']}-{'hour' if found['span'] == 3600 else 'minute'}.csv"
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _action(
    roles: tuple[Role, ...],
    flow: str,
    fn: Callable[[Conn, float, Principal, str], Record],
    *,
    keyed: bool = True,
) -> Handler:
    """A session action; ``keyed`` ones touch only that session's rows (members, state), so
    they run one at a time per session rather than one at a time overall."""

    async def handler(request: web.Request) -> web.Response:
        who = await authorized(request, roles, flow)
        sid = request.match_info["session_id"]
        at = now(request)
        lock = f"session:{sid.lower()}" if keyed else None
        return ok(await write(request, lambda c: fn(c, at, who, sid), lock=lock))

    return handler


_ONE = "/sessions/{session_id}"
_ERRS = (404, 409)

_HISTORY_QUERY: tuple[dict[str, Any], ...] = (
    {
        "name": "span",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": list(SPANS), "default": "minute"},
    },
    {
        "name": "since",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 0, "default": 0},
        "description": "Unix seconds: buckets that ended before it are left out",
    },
)
_HISTORY_DOC = (
    "One row per bucket (start in Unix seconds, UTC) and burner, and per bucket and kiosk, "
    "oldest first, kept by the session's master; `totals` are the session's totals when the "
    "rows were read. Answered by a node that hosts a session master (503 elsewhere)."
)

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
        "Read one session (admins and show admins, who oversee it without joining, see "
        "`member` false)",
        READERS,
        response=schemas.SESSION,
        errors=(404,),
        tag="sessions",
    ),
    Endpoint(
        "GET",
        _ONE + "/history",
        session_history,
        "Burned and failed discs per minute or per hour, per burner and per kiosk",
        WATCHERS,
        errors=(400, 404, 503),
        tag="sessions",
        query=_HISTORY_QUERY,
        extra_doc={"description": _HISTORY_DOC},
    ),
    Endpoint(
        "GET",
        _ONE + "/history.csv",
        session_history_csv,
        "The session's history as CSV (the dashboard's export)",
        WATCHERS,
        errors=(400, 404, 503),
        tag="sessions",
        query=_HISTORY_QUERY,
        extra_doc={
            "content": "text/csv",
            "description": "Columns: " + ", ".join(HISTORY_COLUMNS) + ". " + _HISTORY_DOC,
        },
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
        _action(CONTRIBUTOR, "resuming a session", store.resume_session, keyed=False),
        "Resume a suspended session on the least-loaded master; the caller becomes a member",
        CONTRIBUTOR,
        response=schemas.SESSION,
        errors=(404, 409, 503),
        tag="sessions",
    ),
]
