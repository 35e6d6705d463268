"""Endpoints about the coordinator itself: health and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from coordinator import __version__
from coordinator.keys import HEALTH, OPENAPI, STORE
from coordinator.rendezvous import schemas
from coordinator.rendezvous.endpoint import PUBLIC, Endpoint
from coordinator.rendezvous.http import ok
from coordinator.store.errors import Unavailable


async def _database(request: web.Request) -> dict[str, Any]:
    """Which engine holds the state and whether it answers now (bounded by the pool timeout)."""
    store = request.app[STORE]
    try:
        await store.ping()
    except Unavailable:
        reachable = False
    else:
        reachable = True
    return {"database": store.engine, "database_reachable": reachable}


async def health(request: web.Request) -> web.Response:
    database = await _database(request)
    # --- live plane (coordinator/live.py): role, connections, Redis; CLOSED while draining ---
    report = request.app.get(HEALTH)
    if report is not None:
        body = {**report(), **database}
    # --- end live plane ---
    else:
        body = {"status": "LISTENING", "role": "all", "version": __version__, **database}
    # A balancer in front takes a process out of rotation on 503: draining, or no database.
    down = body.get("status") == "CLOSED" or not database["database_reachable"]
    return web.json_response(body, status=503 if down else 200)


async def openapi(request: web.Request) -> web.Response:
    return ok(request.app[OPENAPI])


ENDPOINTS = [
    Endpoint(
        "GET",
        "/health",
        health,
        "Liveness and role of this coordinator process (503 while draining, with status CLOSED, "
        "and while its database does not answer)",
        (PUBLIC,),
        response=schemas.HEALTH,
        errors=(503,),
        tag="meta",
    ),
    Endpoint(
        "GET",
        "/openapi.json",
        openapi,
        "This API as an OpenAPI 3.1 document",
        (PUBLIC,),
        response=schemas.OBJECT,
        tag="meta",
    ),
]
