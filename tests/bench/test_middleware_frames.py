"""The coordinator's middlewares hold no coroutine frame while a WebSocket is open (issue 5's idle
memory per connection), and still render every error a handler raises as the same problem JSON
as before: before an upgrade, after the handler has awaited something, and when it is cancelled.
The real coordinator app and real aiohttp servers; nothing asserts a duration."""

from __future__ import annotations

import asyncio
import gc
import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, make_mocked_request

from coordinator.app import make_app
from coordinator.config import CoordinatorConfig
from coordinator.errors import Unauthorized, problem_middleware

MakeClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
MIDDLEWARE_CODE = {"problem_middleware", "_session_events", "_publish_session_event"}


def suspended_coroutines() -> set[str]:
    """Names of the coroutines that are alive and suspended right now."""
    gc.collect()
    return {
        obj.cr_code.co_name
        for obj in gc.get_objects()
        if isinstance(obj, types.CoroutineType) and obj.cr_frame is not None
    }


async def test_an_open_client_websocket_holds_no_middleware_frame(
    aiohttp_client: MakeClient, tmp_path: Path
) -> None:
    app = make_app(CoordinatorConfig(data_dir=tmp_path / "data", expiry_check_interval=3600))
    client = await aiohttp_client(app)
    # Upgraded, and waiting for its auth frame: the state of every idle socket.
    ws = await client.ws_connect("/ws/some-session")
    try:
        alive = suspended_coroutines()
        # The balancer's socket handler is held (so the scan sees what an idle socket holds) ...
        assert "handle" in alive
        # ... and none of the middlewares' frames is.
        assert alive & MIDDLEWARE_CODE == set()
    finally:
        await ws.close()


def problem_app() -> web.Application:
    async def refuse(request: web.Request) -> web.StreamResponse:
        raise Unauthorized("no credential")

    async def later(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0)  # raised after a suspension: the error comes back via send()
        raise web.HTTPServiceUnavailable(text="draining")

    async def boom(request: web.Request) -> web.StreamResponse:
        raise RuntimeError("bug")

    async def moved(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/elsewhere")

    async def echo(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data.upper())
        return ws

    app = web.Application(middlewares=[problem_middleware])
    app.router.add_get("/refuse", refuse)
    app.router.add_get("/later", later)
    app.router.add_get("/boom", boom)
    app.router.add_get("/moved", moved)
    app.router.add_get("/echo", echo)
    return app


async def test_errors_render_as_problems_whenever_the_handler_raises(
    aiohttp_client: MakeClient,
) -> None:
    client = await aiohttp_client(problem_app())
    cases = {"/refuse": 401, "/later": 503, "/boom": 500, "/nowhere": 404}
    for path, status in cases.items():
        resp = await client.get(path)
        assert resp.status == status, path
        assert resp.content_type == "application/problem+json", path
        body = await resp.json(content_type=None)
        assert body["status"] == status
    refused = await client.get("/refuse")
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="burnstand"'
    assert (await refused.json(content_type=None))["detail"] == "no credential"
    moved = await client.get("/moved", allow_redirects=False)
    assert moved.status == 302
    assert moved.headers["Location"] == "/elsewhere"


async def test_a_websocket_behind_the_middleware_works_frame_after_frame(
    aiohttp_client: MakeClient,
) -> None:
    client = await aiohttp_client(problem_app())
    ws = await client.ws_connect("/echo")
    for word in ("one", "two", "three"):
        await ws.send_str(word)
        msg = await ws.receive(timeout=10)
        assert msg.data == word.upper()
    await ws.close()


async def test_cancelling_the_request_reaches_the_handler_through_the_middleware() -> None:
    started = asyncio.Event()
    cleaned_up = asyncio.Event()

    async def waits_forever(request: web.Request) -> web.StreamResponse:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned_up.set()
        raise AssertionError("not reached")

    async def request_task() -> web.StreamResponse:
        return await problem_middleware(make_mocked_request("GET", "/x"), waits_forever)

    task = asyncio.ensure_future(request_task())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned_up.is_set()


async def test_a_handler_that_turns_cancellation_into_a_problem_gets_it_rendered() -> None:
    started = asyncio.Event()

    async def gives_up(request: web.Request) -> web.StreamResponse:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise Unauthorized("went away") from None
        raise AssertionError("not reached")

    async def request_task() -> web.StreamResponse:
        return await problem_middleware(make_mocked_request("GET", "/x"), gives_up)

    task = asyncio.ensure_future(request_task())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    response = await task
    assert response.status == 401
    assert isinstance(response, web.Response)
    assert b"went away" in (response.body or b"")  # type: ignore[operator]
