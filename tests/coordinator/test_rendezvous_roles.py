"""The role-by-flow matrix: each flow is allowed to exactly the roles it is documented for.

Every flow is tried with every kind of caller (admin, show admin of this show, show admin of
another show, contributor, appliance, no credential, expired credential). Refusals come first so
the one allowed call (which may remove what it names) runs last, on an untouched world.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from rv_helpers import MD5, SHA, Client, FakeClock, World, call, enter, make_world

CALLERS = ("admin", "show_admin", "other_show_admin", "contributor", "appliance", "none", "expired")


@dataclass(frozen=True)
class Flow:
    name: str
    method: str
    path: Callable[[World, dict[str, Any]], str]
    allowed: tuple[str, ...]
    body: dict[str, Any] | None = None
    needs_session: bool = False
    suspended: bool = False
    # Flows about one's own credential have no show in them: there, a show admin of another show
    # is just a show admin.
    show_scoped: bool = True
    # What a show admin of another show gets where it is not a 403: the sessions of this show
    # do not exist for them (their own list is empty, reading one is 404).
    elsewhere: tuple[int, ...] = (403,)


def _w(template: str) -> Callable[[World, dict[str, Any]], str]:
    return lambda w, extra: template.format(w=w, **extra)


FLOWS = [
    Flow("list pool", "GET", _w("/pool"), ("admin",)),
    Flow("add master", "POST", _w("/pool"), ("admin",), {"name": "m", "url": "http://h:1"}),
    Flow("remove master", "DELETE", _w("/pool/{master}"), ("admin",)),
    Flow("add show", "POST", _w("/shows"), ("admin",), {"name": "N", "asset_root": "/a"}),
    Flow("remove show", "DELETE", _w("/shows/{w.show}"), ("admin",)),
    Flow("list show admins", "GET", _w("/shows/{w.show}/admins"), ("admin",)),
    Flow(
        "add show admin",
        "POST",
        _w("/shows/{w.show}/admins"),
        ("admin",),
        {"name": "X", "email": "x@example.org"},
    ),
    Flow(
        "edit show admin",
        "PATCH",
        _w("/shows/{w.show}/admins/{sam}"),
        ("admin",),
        {"name": "Samuel"},
    ),
    Flow("remove show admin", "DELETE", _w("/shows/{w.show}/admins/{sam}"), ("admin",)),
    Flow("list contributors", "GET", _w("/shows/{w.show}/contributors"), ("admin", "show_admin")),
    Flow(
        "add contributor",
        "POST",
        _w("/shows/{w.show}/contributors"),
        ("show_admin",),
        {"name": "Y", "email": "y@example.org"},
    ),
    Flow(
        "edit contributor",
        "PATCH",
        _w("/shows/{w.show}/contributors/{dev}"),
        ("show_admin",),
        {"tags": ["a"]},
    ),
    Flow("remove contributor", "DELETE", _w("/shows/{w.show}/contributors/{dev}"), ("show_admin",)),
    Flow(
        "list episodes",
        "GET",
        _w("/shows/{w.show}/episodes"),
        ("admin", "show_admin", "contributor", "appliance"),
    ),
    Flow("add episode", "POST", _w("/shows/{w.show}/episodes"), ("show_admin",), {"name": "E"}),
    Flow("remove episode", "DELETE", _w("/episodes/{w.episode}"), ("show_admin",)),
    Flow(
        "add sequence",
        "POST",
        _w("/episodes/{w.episode}/sequences"),
        ("show_admin",),
        {"name": "S"},
    ),
    Flow("remove sequence", "DELETE", _w("/sequences/{w.sequence}"), ("show_admin",)),
    Flow("add shot", "POST", _w("/sequences/{w.sequence}/shots"), ("contributor",), {"name": "H"}),
    Flow("remove shot", "DELETE", _w("/shots/{w.shot}"), ("contributor",)),
    Flow(
        "add take",
        "POST",
        _w("/shots/{w.shot}/takes"),
        ("contributor",),
        {"name": "T", "size": 5, "sha256": SHA, "md5": MD5, "url": "https://h/t"},
    ),
    Flow("remove take", "DELETE", _w("/takes/{w.take}"), ("contributor",)),
    Flow(
        "list takes",
        "GET",
        _w("/shots/{w.shot}/takes"),
        ("admin", "show_admin", "contributor", "appliance"),
    ),
    Flow(
        "read show",
        "GET",
        _w("/shows/{w.show}"),
        ("admin", "show_admin", "contributor", "appliance"),
    ),
    Flow(
        "list sessions",
        "GET",
        _w("/sessions"),
        ("admin", "show_admin", "contributor", "appliance"),
        elsewhere=(200,),
    ),
    Flow(
        "create session", "POST", _w("/sessions"), ("contributor",), {"name": "s", "episode_id": 1}
    ),
    Flow(
        "join session",
        "POST",
        _w("/sessions/{session}/join"),
        ("contributor", "appliance"),
        needs_session=True,
    ),
    Flow(
        "leave session",
        "POST",
        _w("/sessions/{session}/leave"),
        ("contributor", "appliance"),
        needs_session=True,
    ),
    Flow(
        "suspend session",
        "POST",
        _w("/sessions/{session}/suspend"),
        ("contributor",),
        needs_session=True,
    ),
    Flow(
        "resume session",
        "POST",
        _w("/sessions/{session}/resume"),
        ("contributor",),
        needs_session=True,
        suspended=True,
    ),
    Flow(
        "read session",
        "GET",
        _w("/sessions/{session}"),
        ("admin", "show_admin", "contributor", "appliance"),
        needs_session=True,
        elsewhere=(404,),
    ),
    Flow(
        "read session history",
        "GET",
        _w("/sessions/{session}/history?span=hour"),
        ("admin", "show_admin", "contributor"),
        needs_session=True,
        elsewhere=(404,),
    ),
    Flow(
        "refresh credential",
        "POST",
        _w("/credentials/refresh"),
        ("show_admin", "contributor"),
        {"duration": 600},
        show_scoped=False,
    ),
    Flow(
        "who am I",
        "GET",
        _w("/credentials/me"),
        ("admin", "show_admin", "contributor", "appliance"),
        show_scoped=False,
    ),
]


@pytest.mark.parametrize("flow", FLOWS, ids=[f.name for f in FLOWS])
async def test_flow_allowed_to_exactly_its_roles(
    client: Client, clock: FakeClock, flow: Flow
) -> None:
    world = await make_world(client, clock)
    expired = await enter(client, "dev@example.org", world.show, world.secrets["dev"], 30)
    extra: dict[str, Any] = {"sam": world.ids["sam"], "dev": world.ids["dev"]}
    master = await call(
        client, "POST", "/pool", world.admin, {"name": "spare", "url": "http://spare:1"}, 201
    )
    extra["master"] = master["id"]
    if flow.needs_session:
        # Owned by contributor2 so the contributor and appliance can join, leave, suspend it.
        body = await call(
            client,
            "POST",
            "/sessions",
            world.contributor2,
            {"name": "s", "episode_id": world.episode},
            201,
        )
        extra["session"] = body["id"]
        if flow.suspended:
            await call(
                client, "POST", f"/sessions/{body['id']}/suspend", world.contributor2, expect=200
            )
        if flow.name == "leave session":
            for seat in (world.contributor, world.appliance):
                await call(client, "POST", f"/sessions/{body['id']}/join", seat, expect=200)
    clock.advance(31)  # only the 30 s credential has expired
    tokens = {
        "admin": world.admin,
        "show_admin": world.show_admin,
        "other_show_admin": world.other_show_admin,
        "contributor": world.contributor,
        "appliance": world.appliance,
        "none": None,
        "expired": expired,
    }
    path = flow.path(world, extra)
    allowed = flow.allowed
    if not flow.show_scoped and "show_admin" in allowed:
        allowed = (*allowed, "other_show_admin")
    order = sorted(CALLERS, key=lambda c: c in allowed)
    for who in order:
        resp = await client.request(
            flow.method,
            "/api/v1" + path,
            json=flow.body,
            headers={"Authorization": f"Bearer {tokens[who]}"} if tokens[who] else {},
        )
        problem_or_body = await resp.json(content_type=None) if resp.status != 204 else None
        if who in ("none", "expired"):
            expected: tuple[int, ...] = (401,)
        elif who in allowed:
            expected = (200, 201, 204)
        elif who == "other_show_admin":
            expected = flow.elsewhere
        else:
            expected = (403,)
        assert resp.status in expected, (flow.name, who, resp.status, problem_or_body)
        if resp.status >= 400:
            assert resp.content_type == "application/problem+json"
            assert problem_or_body["status"] == resp.status
        if who == "expired":
            assert "expired" in problem_or_body["detail"]
