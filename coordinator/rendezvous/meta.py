"""Endpoints about the coordinator itself: health and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from coordinator import __version__
from coordinator.keys import HEALTH, OPENAPI
from coordinator.rendezvous import schemas
from coordinator.rendezvous.endpoint import PUBLIC, Endpoint
from coordinator.rendezvous.http import ok


async def health(request: web.Request) -> web.Response:
    # --- live plane (coordinator/live.py): role, connections, Redis; CLOSED while draining ---
    report = request.app.get(HEALTH)
    if report is not None:
        body = report()
        return web.json_response(body, status=503 if body.get("status") == "CLOSED" else 200)
    # --- end live plane ---
    return ok({"status": "LISTENING", "role": "all", "version": __version__})


async def openapi(request: web.Request) -> web.Response:
    return ok(request.app[OPENAPI])


ENDPOINTS = [
    Endpoint(
        "GET",
        "/health",
        health,
        "Liveness and role of this coordinator process (503 with status CLOSED while draining)",
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
