"""Seed flows of the session-master pool: admin adds, removes and lists session master servers."""

from __future__ import annotations

from aiohttp import web

from coordinator.rendezvous import schemas
from coordinator.rendezvous.endpoint import Endpoint
from coordinator.rendezvous.http import (
    authorized,
    body,
    no_content,
    now,
    ok,
    page,
    path_id,
    read,
    write,
)
from coordinator.store import sessions as store
from coordinator.store.records import Role

ADMIN: tuple[Role, ...] = ("admin",)


async def list_pool(request: web.Request) -> web.Response:
    await authorized(request, ADMIN, "listing session servers")
    p = page(request)
    return ok(await read(request, lambda c: store.list_pool(c, p), one_trip=True))


async def add_master(request: web.Request) -> web.Response:
    who = await authorized(request, ADMIN, "adding a session master")
    data = await body(request, schemas.MASTER_IN)
    at = now(request)
    return ok(await write(request, lambda c: store.add_master(c, at, who.actor, data)), 201)


async def remove_master(request: web.Request) -> web.Response:
    who = await authorized(request, ADMIN, "removing a session master")
    m_id = path_id(request, "master_id")
    at = now(request)
    await write(request, lambda c: store.remove_master(c, at, who.actor, m_id))
    return no_content()


ENDPOINTS = [
    Endpoint(
        "GET",
        "/pool",
        list_pool,
        "List the session masters in the pool",
        ADMIN,
        response=schemas.page_of(schemas.MASTER),
        paged=True,
        tag="pool",
        seed_flow="Admin lists session servers",
    ),
    Endpoint(
        "POST",
        "/pool",
        add_master,
        "Add a session master to the pool",
        ADMIN,
        ok=201,
        body=schemas.MASTER_IN,
        response=schemas.MASTER,
        errors=(409,),
        tag="pool",
        seed_flow="Admin adds session master server to rendezvous session master pool",
    ),
    Endpoint(
        "DELETE",
        r"/pool/{master_id:\d+}",
        remove_master,
        "Remove a session master from the pool (refused while it hosts live sessions)",
        ADMIN,
        ok=204,
        errors=(404, 409),
        tag="pool",
        seed_flow="Admin removes session master server from the pool",
    ),
]
