"""Seed flows of the catalog under a show: show admin adds/removes episodes and sequences,
contributor adds/removes shots and takes; anyone of the show (and admins) lists them."""

from __future__ import annotations

from aiohttp import web

from coordinator.images.fetch import FETCHER
from coordinator.rendezvous import schemas
from coordinator.rendezvous.endpoint import Endpoint, Handler
from coordinator.rendezvous.http import (
    authorized,
    body,
    no_content,
    now,
    ok,
    page,
    path_id,
    read,
    require,
    write,
)
from coordinator.rendezvous.validation import Schema
from coordinator.store import catalog
from coordinator.store.records import ROLES, Role

ANYONE = ROLES


def _handlers(
    level_name: str, who_may: tuple[Role, ...], schema: Schema
) -> tuple[Handler, Handler, Handler]:
    level = catalog.LEVELS[level_name]
    parent_param = level.parent_key

    async def list_children(request: web.Request) -> web.Response:
        flow = f"listing {level.table}"
        who = await authorized(request, ANYONE, flow)
        parent_id = path_id(request, parent_param)
        show_id = await read(
            request, lambda c: catalog.show_of(c, level.parent_table, parent_id), single=True
        )
        require(who, ANYONE, flow, show_id)
        p = page(request)
        return ok(await read(request, lambda c: catalog.list_children(c, level, parent_id, p)))

    async def add(request: web.Request) -> web.Response:
        flow = f"adding a {level.name}"
        who = await authorized(request, who_may, flow)
        parent_id = path_id(request, parent_param)
        show_id = await read(
            request, lambda c: catalog.show_of(c, level.parent_table, parent_id), single=True
        )
        require(who, who_may, flow, show_id)
        data = await body(request, schema)
        at = now(request)
        # Adding a child only inserts under its parent (removals of parents run alone), and
        # the names index refuses a twin: only adds of one name need to wait for each other.
        added = await write(
            request,
            lambda c: catalog.add_child(c, at, who.actor, level, parent_id, data),
            lock=f"{level.name}:{parent_id}:{data['name'].lower()}",
        )
        fetcher = request.app.get(FETCHER)
        if level.name == "take" and data.get("url") and fetcher is not None:
            fetcher.poke()  # its image is fetched into the store now, not at the next look
        return ok(added, 201)

    async def remove(request: web.Request) -> web.Response:
        flow = f"removing a {level.name}"
        who = await authorized(request, who_may, flow)
        row_id = path_id(request, f"{level.name}_id")
        show_id = await read(
            request, lambda c: catalog.show_of(c, level.table, row_id), single=True
        )
        require(who, who_may, flow, show_id)
        at = now(request)
        await write(request, lambda c: catalog.remove_child(c, at, who.actor, level, row_id))
        return no_content()

    return list_children, add, remove


def _endpoints(
    level_name: str,
    who_may: tuple[Role, ...],
    schema: Schema,
    item: Schema,
    add_flow: str,
    remove_flow: str,
) -> list[Endpoint]:
    level = catalog.LEVELS[level_name]
    list_h, add_h, remove_h = _handlers(level_name, who_may, schema)
    parent_route = f"/{level.parent_table}/{{{level.parent_key}:\\d+}}/{level.table}"
    item_route = f"/{level.table}/{{{level.name}_id:\\d+}}"
    return [
        Endpoint(
            "GET",
            parent_route,
            list_h,
            f"List the {level.table} of a {level.parent_name}",
            ANYONE,
            response=schemas.page_of(item),
            paged=True,
            errors=(404,),
            tag="catalog",
        ),
        Endpoint(
            "POST",
            parent_route,
            add_h,
            f"Add a {level.name} to a {level.parent_name}",
            who_may,
            ok=201,
            body=schema,
            response=item,
            errors=(404, 409),
            tag="catalog",
            seed_flow=add_flow,
        ),
        Endpoint(
            "DELETE",
            item_route,
            remove_h,
            f"Remove a {level.name} and what hangs under it "
            "(refused while a live session is scoped to it)",
            who_may,
            ok=204,
            errors=(404, 409),
            tag="catalog",
            seed_flow=remove_flow,
        ),
    ]


ENDPOINTS = [
    *_endpoints(
        "episode",
        ("show_admin",),
        schemas.EPISODE_IN,
        schemas.EPISODE,
        "Show admin adds an episode",
        "Show admin removes an episode",
    ),
    *_endpoints(
        "sequence",
        ("show_admin",),
        schemas.SEQUENCE_IN,
        schemas.SEQUENCE,
        "Show admin adds a sequence",
        "Show admin removes a sequence",
    ),
    *_endpoints(
        "shot",
        ("contributor",),
        schemas.SHOT_IN,
        schemas.SHOT,
        "contributor adds a shot",
        "contributor removes a shot",
    ),
    *_endpoints(
        "take",
        ("contributor",),
        schemas.TAKE_IN,
        schemas.TAKE,
        "contributor adds a take of a shot",
        "contributor removes a take of a shot",
    ),
]
