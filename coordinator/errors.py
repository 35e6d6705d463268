"""Typed errors the coordinator reports, and the middleware that turns them into RFC 9457 problems.

Handlers and store operations raise a ``Problem`` subclass; the middleware renders it as
``application/problem+json`` with ``type``, ``title``, ``status``, ``detail`` and, when one body
field is at fault, ``field``. aiohttp's own HTTP errors (unknown route, wrong method) and unexpected
exceptions get the same shape, so a client only ever parses one kind of error body.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "https://burnstand.invalid/problems/"

log = logging.getLogger(__name__)


class Problem(Exception):
    """An error with an HTTP status a client can act on."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.field is not None:
            out["field"] = self.field
        return out


class BadRequest(Problem):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class Unauthorized(Problem):
    status = 401
    slug = "unauthorized"
    title = "Missing, expired or revoked credential"


class Forbidden(Problem):
    status = 403
    slug = "forbidden"
    title = "Not allowed for this role"


class NotFound(Problem):
    status = 404
    slug = "not-found"
    title = "Not found"


class MethodNotAllowed(Problem):
    status = 405
    slug = "method-not-allowed"
    title = "Method not allowed"


class Conflict(Problem):
    status = 409
    slug = "conflict"
    title = "Conflict with the current state"


class Invalid(Problem):
    status = 422
    slug = "invalid"
    title = "Invalid request body"


class Unavailable(Problem):
    status = 503
    slug = "unavailable"
    title = "Service unavailable"


def problem_response(problem: Problem) -> web.Response:
    headers = {}
    if isinstance(problem, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="burnstand"'
    return web.Response(
        status=problem.status,
        text=json.dumps(problem.body()),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


_HTTP_MAP: dict[int, type[Problem]] = {404: NotFound, 405: MethodNotAllowed}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as exc:
        return problem_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        cls = _HTTP_MAP.get(exc.status, BadRequest)
        problem = cls(f"{request.method} {request.path}: {exc.reason}")
        problem.status = exc.status
        return problem_response(problem)
    except Exception:
        log.exception("unhandled error", extra={"method": request.method, "path": request.path})
        body = {
            "type": PROBLEM_BASE + "internal",
            "title": "Internal server error",
            "status": 500,
            "detail": "the coordinator hit an unexpected error; it is logged",
        }
        return web.Response(status=500, text=json.dumps(body), content_type=PROBLEM_CONTENT_TYPE)
