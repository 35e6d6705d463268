"""The rendezvous REST API: every flow of the rendezvous seed under ``/api/v1/``.

``setup(app)`` registers each module's endpoints and the OpenAPI document generated from them.
"""

from __future__ import annotations

from aiohttp import web

from coordinator.keys import OPENAPI
from coordinator.rendezvous import (
    catalog,
    credentials,
    enroll,
    images,
    meta,
    pool,
    sessions,
    sharing,
    shows,
)
from coordinator.rendezvous.endpoint import PREFIX, Endpoint
from coordinator.rendezvous.openapi import build

ENDPOINTS: list[Endpoint] = [
    *meta.ENDPOINTS,
    *credentials.ENDPOINTS,
    *pool.ENDPOINTS,
    *shows.ENDPOINTS,
    *catalog.ENDPOINTS,
    *sessions.ENDPOINTS,
    *images.ENDPOINTS,
    *sharing.ENDPOINTS,
    *enroll.ENDPOINTS,
]


def setup(app: web.Application) -> None:
    for ep in ENDPOINTS:
        app.router.add_route(ep.method, PREFIX + ep.route, ep.handler)
    app[OPENAPI] = build(ENDPOINTS)
    enroll.setup(app)
    credentials.setup(app)
