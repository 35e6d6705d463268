"""Typed errors the coordinator reports, and the middleware that turns them into RFC 9457 problems.

Handlers and store operations raise a ``Problem`` subclass; the middleware renders it as
``application/problem+json`` with ``type``, ``title``, ``status``, ``detail`` and, when one body
field is at fault, ``field``. aiohttp's own HTTP errors (unknown route, wrong method) and unexpected
exceptions get the same shape, so a client only ever parses one kind of error body.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator
from types import TracebackType
from typing import Any, cast

from aiohttp import web

from coordinator.store import errors as store

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "https://burnstand.invalid/problems/"

log = logging.getLogger(__name__)


class Problem(store.StoreError):
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


class Unauthorized(Problem, store.Unauthorized):
    status = 401
    slug = "unauthorized"
    title = "Missing, expired or revoked credential"


class Forbidden(Problem, store.Forbidden):
    status = 403
    slug = "forbidden"
    title = "Not allowed for this role"


class NotFound(Problem, store.NotFound):
    status = 404
    slug = "not-found"
    title = "Not found"


class MethodNotAllowed(Problem):
    status = 405
    slug = "method-not-allowed"
    title = "Method not allowed"


class Conflict(Problem, store.Conflict):
    status = 409
    slug = "conflict"
    title = "Conflict with the current state"


class Misdirected(Problem):
    """The request reached a node that must not serve it (a session placed on another master):
    the client should go through the deployment's address (a balancer) instead."""

    status = 421
    slug = "misdirected"
    title = "Misdirected request"


class Invalid(Problem, store.Invalid):
    status = 422
    slug = "invalid"
    title = "Invalid request body"


class TooManyRequests(Problem):
    """Too many requests (or failed attempts) from one client; ``retry_after`` in seconds."""

    status = 429
    slug = "too-many-requests"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int = 60, field: str | None = None) -> None:
        super().__init__(detail, field=field)
        self.retry_after = max(1, retry_after)


class Unavailable(Problem, store.Unavailable):
    status = 503
    slug = "unavailable"
    title = "Service unavailable"


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> web.Response:
    headers = dict(headers or {})
    if isinstance(problem, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="burnstand"'
    if isinstance(problem, TooManyRequests):
        headers["Retry-After"] = str(problem.retry_after)
    return web.Response(
        status=problem.status,
        text=json.dumps(problem.body()),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


_HTTP_MAP: dict[int, type[Problem]] = {404: NotFound, 405: MethodNotAllowed}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# The one place storage refusals become HTTP answers.
_STORE_MAP: dict[type[store.StoreError], type[Problem]] = {
    store.NotFound: NotFound,
    store.Conflict: Conflict,
    store.Invalid: Invalid,
    store.Unauthorized: Unauthorized,
    store.Forbidden: Forbidden,
    store.Unavailable: Unavailable,
}


def as_problem(exc: store.StoreError) -> Problem:
    """The HTTP problem for a store refusal (a `Problem` already is one)."""
    if isinstance(exc, Problem):
        return exc
    for cls in type(exc).__mro__:
        problem = _STORE_MAP.get(cls)
        if problem is not None:
            return problem(exc.detail, field=exc.field)
    return BadRequest(exc.detail, field=exc.field)


def _render(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The problem response for an exception a handler raised (re-raises redirects and the like)."""
    if isinstance(exc, store.StoreError):
        return problem_response(as_problem(exc))
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        cls = _HTTP_MAP.get(exc.status, BadRequest)
        problem = cls(f"{request.method} {request.path}: {exc.reason}")
        problem.status = exc.status
        # RFC 9110: a 405 says which methods the resource does allow.
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return problem_response(problem, allow)
    log.exception("unhandled error", extra={"method": request.method, "path": request.path})
    body = {
        "type": PROBLEM_BASE + "internal",
        "title": "Internal server error",
        "status": 500,
        "detail": "the coordinator hit an unexpected error; it is logged",
    }
    return web.Response(status=500, text=json.dumps(body), content_type=PROBLEM_CONTENT_TYPE)


class _Guarded:
    """Awaiting this runs the handler's coroutine and renders what it raises as a problem.

    It does what `try: return await handler(request) except ...` would, but as an iterator that
    forwards each step to the coroutine instead of a coroutine frame awaiting it: a WebSocket
    handler runs for the life of its socket, and a frame held that long costs every idle
    connection a few hundred bytes (issue 5's per-connection memory target). Between steps only
    this two-slot object is alive.
    """

    __slots__ = ("_coro", "_request")

    def __init__(self, request: web.Request, coro: Coroutine[Any, Any, web.StreamResponse]) -> None:
        self._request = request
        self._coro = coro

    def __await__(self) -> Generator[Any, Any, web.StreamResponse]:
        # Not a generator, but it speaks the protocol `await` drives: send, throw, close.
        return cast("Generator[Any, Any, web.StreamResponse]", self)

    def __iter__(self) -> _Guarded:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: Any) -> Any:
        try:
            return self._coro.send(value)
        except StopIteration:
            raise  # the handler returned: its response is the StopIteration's value
        except Exception as exc:
            raise StopIteration(_render(self._request, exc)) from None

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> Any:
        # Cancellation reaches the handler this way; what it raises back is rendered like any
        # other exception (CancelledError is a BaseException and passes through untouched).
        exc = val if val is not None else typ if isinstance(typ, BaseException) else typ()
        if tb is not None:
            exc = exc.with_traceback(tb)
        try:
            return self._coro.throw(exc)
        except StopIteration:
            raise
        except Exception as raised:
            raise StopIteration(_render(self._request, raised)) from None

    def close(self) -> None:
        self._coro.close()


@web.middleware
def problem_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Render whatever a handler raises as a problem (see `_Guarded` for why no `async def`)."""
    try:
        awaitable = handler(request)
    except Exception as exc:  # an inner middleware that is a plain function raised at once
        return _done(_render(request, exc))
    if not isinstance(awaitable, Coroutine):
        # A handler that is not a coroutine function (a partial of one, an inner middleware
        # that hands back an awaitable of its own): wrap it so it can be stepped the same way.
        awaitable = _await(awaitable)
    return _Guarded(request, awaitable)


async def _done(response: web.StreamResponse) -> web.StreamResponse:
    return response


async def _await(awaitable: Awaitable[web.StreamResponse]) -> web.StreamResponse:
    return await awaitable
