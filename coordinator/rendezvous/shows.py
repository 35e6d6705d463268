"""Seed flows of shows and their people: admin adds/removes shows and show admins; show admin
adds, edits and removes contributors. Plus the lists each role may see."""

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
    require,
    revoking_write,
    write,
)
from coordinator.store import catalog, people
from coordinator.store.records import ROLES, Role

ADMIN: tuple[Role, ...] = ("admin",)
SHOW_ADMIN: tuple[Role, ...] = ("show_admin",)
ADMIN_OR_SHOW_ADMIN: tuple[Role, ...] = ("admin", "show_admin")
ANYONE = ROLES


async def _show(request: web.Request) -> int:
    show_id = path_id(request, "show_id")
    return await read(request, lambda c: catalog.show_of(c, "shows", show_id), single=True)


# --- shows ----------------------------------------------------------------------------------


async def list_shows(request: web.Request) -> web.Response:
    who = await authorized(request, ANYONE, "listing shows")
    p = page(request)
    return ok(await read(request, lambda c: catalog.list_shows(c, who.show_id, p)))


async def get_show(request: web.Request) -> web.Response:
    who = await authorized(request, ANYONE, "reading a show")
    show_id = await _show(request)
    require(who, ANYONE, "reading a show", show_id)
    return ok(await read(request, lambda c: catalog.get_show(c, show_id)))


async def add_show(request: web.Request) -> web.Response:
    who = await authorized(request, ADMIN, "adding a show")
    data = await body(request, schemas.SHOW_IN)
    at = now(request)
    return ok(await write(request, lambda c: catalog.add_show(c, at, who.actor, data)), 201)


async def remove_show(request: web.Request) -> web.Response:
    who = await authorized(request, ADMIN, "removing a show")
    show_id = path_id(request, "show_id")
    at = now(request)
    await revoking_write(request, lambda c: catalog.remove_show(c, at, who.actor, show_id))
    return no_content()


# --- show admins ----------------------------------------------------------------------------


async def list_show_admins(request: web.Request) -> web.Response:
    await authorized(request, ADMIN, "listing show admins")
    show_id = path_id(request, "show_id")
    p = page(request)
    return ok(await read(request, lambda c: people.list_show_admins(c, show_id, p)))


async def add_show_admin(request: web.Request) -> web.Response:
    who = await authorized(request, ADMIN, "adding a show admin")
    show_id = path_id(request, "show_id")
    data = await body(request, schemas.PERSON_IN)
    at = now(request)
    return ok(
        await write(request, lambda c: people.add_show_admin(c, at, who.actor, show_id, data)),
        201,
    )


async def edit_show_admin(request: web.Request) -> web.Response:
    who = await authorized(request, ADMIN, "editing a show admin")
    show_id, sa_id = path_id(request, "show_id"), path_id(request, "show_admin_id")
    data = await body(request, schemas.PERSON_EDIT)
    at = now(request)
    return ok(
        await revoking_write(
            request, lambda c: people.edit_show_admin(c, at, who.actor, show_id, sa_id, data)
        )
    )


async def remove_show_admin(request: web.Request) -> web.Response:
    who = await authorized(request, ADMIN, "removing a show admin")
    show_id, sa_id = path_id(request, "show_id"), path_id(request, "show_admin_id")
    at = now(request)
    await revoking_write(
        request, lambda c: people.remove_show_admin(c, at, who.actor, show_id, sa_id)
    )
    return no_content()


# --- contributors ---------------------------------------------------------------------------


async def list_contributors(request: web.Request) -> web.Response:
    who = await authorized(request, ADMIN_OR_SHOW_ADMIN, "listing contributors")
    show_id = await _show(request)
    require(who, ADMIN_OR_SHOW_ADMIN, "listing contributors", show_id)
    p = page(request)
    return ok(await read(request, lambda c: people.list_contributors(c, show_id, p)))


async def add_contributor(request: web.Request) -> web.Response:
    who = await authorized(request, SHOW_ADMIN, "adding a contributor")
    show_id = await _show(request)
    require(who, SHOW_ADMIN, "adding a contributor", show_id)
    data = await body(request, schemas.PERSON_IN)
    at = now(request)
    return ok(
        await write(request, lambda c: people.add_contributor(c, at, who.actor, show_id, data)),
        201,
    )


async def edit_contributor(request: web.Request) -> web.Response:
    who = await authorized(request, SHOW_ADMIN, "editing a contributor")
    show_id = await _show(request)
    require(who, SHOW_ADMIN, "editing a contributor", show_id)
    c_id = path_id(request, "contributor_id")
    data = await body(request, schemas.PERSON_EDIT)
    at = now(request)
    return ok(
        await revoking_write(
            request, lambda c: people.edit_contributor(c, at, who.actor, show_id, c_id, data)
        )
    )


async def remove_contributor(request: web.Request) -> web.Response:
    who = await authorized(request, SHOW_ADMIN, "removing a contributor")
    show_id = await _show(request)
    require(who, SHOW_ADMIN, "removing a contributor", show_id)
    c_id = path_id(request, "contributor_id")
    at = now(request)
    await revoking_write(
        request, lambda c: people.remove_contributor(c, at, who.actor, show_id, c_id)
    )
    return no_content()


# --- admins and appliances -------------------------------------------------------------------


async def list_admins(request: web.Request) -> web.Response:
    await authorized(request, ADMIN, "listing admins")
    p = page(request)
    return ok(await read(request, lambda c: people.list_admins(c, p)))


async def remove_admin(request: web.Request) -> web.Response:
    who = await authorized(request, ADMIN, "removing an admin")
    admin_id = path_id(request, "admin_id")
    at = now(request)
    await revoking_write(request, lambda c: people.remove_admin(c, at, who.actor, admin_id))
    return no_content()


async def list_appliances(request: web.Request) -> web.Response:
    who = await authorized(request, ADMIN_OR_SHOW_ADMIN, "listing appliances")
    show_id = await _show(request)
    require(who, ADMIN_OR_SHOW_ADMIN, "listing appliances", show_id)
    p = page(request)
    return ok(await read(request, lambda c: people.list_appliances(c, show_id, p)))


async def remove_appliance(request: web.Request) -> web.Response:
    who = await authorized(request, ADMIN_OR_SHOW_ADMIN, "removing an appliance")
    show_id = await _show(request)
    require(who, ADMIN_OR_SHOW_ADMIN, "removing an appliance", show_id)
    a_id = path_id(request, "appliance_id")
    at = now(request)
    await revoking_write(
        request, lambda c: people.remove_appliance(c, at, who.actor, a_id, show_id)
    )
    return no_content()


_SHOW = r"/shows/{show_id:\d+}"

ENDPOINTS = [
    Endpoint(
        "GET",
        "/shows",
        list_shows,
        "List shows: all of them for an admin, the credential's own show otherwise",
        ANYONE,
        response=schemas.page_of(schemas.SHOW),
        paged=True,
        tag="shows",
    ),
    Endpoint(
        "POST",
        "/shows",
        add_show,
        "Add a show",
        ADMIN,
        ok=201,
        body=schemas.SHOW_IN,
        response=schemas.SHOW,
        errors=(409,),
        tag="shows",
        seed_flow="Admin adds a show",
    ),
    Endpoint(
        "GET",
        _SHOW,
        get_show,
        "Read one show",
        ANYONE,
        response=schemas.SHOW,
        errors=(404,),
        tag="shows",
    ),
    Endpoint(
        "DELETE",
        _SHOW,
        remove_show,
        "Remove a show and everything under it (refused while it has live sessions)",
        ADMIN,
        ok=204,
        errors=(404, 409),
        tag="shows",
        seed_flow="Admin removes a show",
    ),
    Endpoint(
        "GET",
        _SHOW + "/admins",
        list_show_admins,
        "List the show admins of a show",
        ADMIN,
        response=schemas.page_of(schemas.SHOW_ADMIN),
        paged=True,
        errors=(404,),
        tag="people",
    ),
    Endpoint(
        "POST",
        _SHOW + "/admins",
        add_show_admin,
        "Add a show admin; the response carries their secret, shown only this once",
        ADMIN,
        ok=201,
        body=schemas.PERSON_IN,
        response=schemas.SHOW_ADMIN,
        errors=(404, 409),
        tag="people",
        seed_flow="Admin adds a Show admin",
    ),
    Endpoint(
        "PATCH",
        _SHOW + r"/admins/{show_admin_id:\d+}",
        edit_show_admin,
        "Edit a show admin's details (reset_secret issues a new secret and revokes every "
        "credential made from the old one)",
        ADMIN,
        body=schemas.PERSON_EDIT,
        response=schemas.SHOW_ADMIN,
        errors=(404, 409),
        tag="people",
        seed_flow="Admin edits Show admin details",
    ),
    Endpoint(
        "DELETE",
        _SHOW + r"/admins/{show_admin_id:\d+}",
        remove_show_admin,
        "Remove a show admin (their credentials stop working)",
        ADMIN,
        ok=204,
        errors=(404,),
        tag="people",
        seed_flow="Admin removes a Show admin",
    ),
    Endpoint(
        "GET",
        _SHOW + "/contributors",
        list_contributors,
        "List the contributors of a show",
        ADMIN_OR_SHOW_ADMIN,
        response=schemas.page_of(schemas.CONTRIBUTOR),
        paged=True,
        errors=(404,),
        tag="people",
    ),
    Endpoint(
        "POST",
        _SHOW + "/contributors",
        add_contributor,
        "Add a contributor to the show; the secret of this membership is in the response, "
        "shown only this once (an email used in another show gets a separate membership "
        "with its own secret)",
        SHOW_ADMIN,
        ok=201,
        body=schemas.PERSON_IN,
        response=schemas.CONTRIBUTOR,
        errors=(404, 409),
        tag="people",
        seed_flow="Show admin adds a contributor",
    ),
    Endpoint(
        "PATCH",
        _SHOW + r"/contributors/{contributor_id:\d+}",
        edit_contributor,
        "Edit a contributor's details in this show (reset_secret issues a new secret and "
        "revokes every credential made from the old one)",
        SHOW_ADMIN,
        body=schemas.PERSON_EDIT,
        response=schemas.CONTRIBUTOR,
        errors=(404, 409),
        tag="people",
        seed_flow="Show admin edits contributor details",
    ),
    Endpoint(
        "DELETE",
        _SHOW + r"/contributors/{contributor_id:\d+}",
        remove_contributor,
        "Take a contributor off the show (their credentials for it stop working)",
        SHOW_ADMIN,
        ok=204,
        errors=(404,),
        tag="people",
        seed_flow="Show admin removes a contributor",
    ),
    Endpoint(
        "GET",
        "/admins",
        list_admins,
        "List the admins",
        ADMIN,
        response=schemas.page_of(schemas.ADMIN),
        paged=True,
        tag="people",
    ),
    Endpoint(
        "DELETE",
        r"/admins/{admin_id:\d+}",
        remove_admin,
        "Remove an admin: every credential of theirs is refused at once and their open "
        "sockets are closed (the last admin cannot be removed)",
        ADMIN,
        ok=204,
        errors=(404, 409),
        tag="people",
    ),
    Endpoint(
        "GET",
        _SHOW + "/appliances",
        list_appliances,
        "List the appliances (kiosks) of a show",
        ADMIN_OR_SHOW_ADMIN,
        response=schemas.page_of(schemas.APPLIANCE),
        paged=True,
        errors=(404,),
        tag="people",
    ),
    Endpoint(
        "DELETE",
        _SHOW + r"/appliances/{appliance_id:\d+}",
        remove_appliance,
        "Remove an appliance (a stolen or retired kiosk): its credential is refused at once on "
        "REST, /link and the burn listener, and its open connections are closed",
        ADMIN_OR_SHOW_ADMIN,
        ok=204,
        errors=(404,),
        tag="people",
    ),
]
