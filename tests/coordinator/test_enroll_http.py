"""Kiosk enrollment over HTTP against a real coordinator on a real SQLite file.

A kiosk asks with its code, shows up as pending for its show admin, is accepted, and its next
poll carries the appliance credential exactly once; that credential opens `/link`. Rejection,
spent codes, wrong roles, bad bodies and the rate limit each answer the way the docs say.
"""

from __future__ import annotations

from typing import Any

import pytest
from rv_helpers import Client, FakeClock, MakeClient, World, bearer, call, make_world

from coordinator.keys import STORE
from coordinator.rendezvous.enroll import ENROLL_LIMITS, RateLimiter
from wire.enrollment import confirmation_phrase

CODE = "ABCD-2345"


async def enroll(client: Client, world: World, code: str = CODE, **extra: Any) -> Any:
    body = {"code": code, "name": "booth kiosk", "show": world.show, **extra}
    resp = await client.post("/api/v1/enroll", json=body)
    return resp.status, await resp.json(content_type=None)


async def poll(client: Client, token: str) -> tuple[int, Any]:
    resp = await client.post("/api/v1/enroll/poll", json={"poll_token": token})
    return resp.status, await resp.json(content_type=None)


async def pending(client: Client, world: World, token: str | None = None) -> list[Any]:
    out = await call(client, "GET", f"/shows/{world.show}/enrollments", token or world.show_admin)
    return list(out["items"])


async def audit_actions(client: Client) -> list[str]:
    rows = await client.app[STORE].read(
        lambda c: c.execute("SELECT action FROM audit WHERE action LIKE 'enrollment.%'").fetchall()
    )
    return [r[0] for r in rows]


async def test_accepted_kiosk_gets_its_credential_once_and_it_opens_the_link(
    client: Client, world: World
) -> None:
    status, asked = await enroll(client, world)
    assert status == 201
    assert (asked["status"], asked["code"], asked["show_id"]) == ("pending", CODE, world.show)

    assert await poll(client, asked["poll_token"]) == (
        200,
        {"id": asked["id"], "status": "pending", "code": CODE},
    )
    listed = await pending(client, world)
    assert [(e["code"], e["name"], e["state"]) for e in listed] == [
        (CODE, "booth kiosk", "pending")
    ]
    assert listed[0]["created_at"]

    accepted = await call(
        client,
        "POST",
        f"/shows/{world.show}/enrollments/{asked['id']}/accept",
        world.show_admin,
        expect=200,
    )
    assert accepted["state"] == "accepted"
    assert accepted["appliance"]["name"] == "booth kiosk"
    assert await pending(client, world) == []

    status, got = await poll(client, asked["poll_token"])
    assert status == 200
    assert got["status"] == "accepted"
    credential = got["credential"]
    assert got["appliance_id"] == accepted["appliance"]["id"]

    # Handed out once: a second poll is refused.
    status, again = await poll(client, asked["poll_token"])
    assert status == 409
    assert "already handed out" in again["detail"]

    me = await call(client, "GET", "/credentials/me", credential, expect=200)
    assert (me["role"], me["name"], me["show_id"]) == ("appliance", "booth kiosk", world.show)
    ws = await client.ws_connect("/link", headers=bearer(credential))
    try:
        assert not ws.closed
    finally:
        await ws.close()

    # The code is spent now.
    status, spent = await enroll(client, world)
    assert status == 409
    assert "already used" in spent["detail"]
    assert await audit_actions(client) == [
        "enrollment.request",
        "enrollment.accept",
        "enrollment.pickup",
    ]


async def test_same_code_again_is_the_same_request_only_for_its_first_asker(
    client: Client, world: World
) -> None:
    """Issue 23 case 3: a second client with the code on the kiosk's screen gets nothing."""
    _, first = await enroll(client, world, code="abcd2345")
    assert first["phrase"] == confirmation_phrase(first["poll_token"])
    # The kiosk itself, restarted, asks with its poll token: the same request, the same token.
    status, again = await enroll(client, world, poll_token=first["poll_token"])
    assert status == 200
    assert (again["id"], again["poll_token"], again["attempts"]) == (
        first["id"],
        first["poll_token"],
        2,
    )
    # Anyone else: 409, no poll token, no change of show or name; the admin sees the conflict.
    for extra in ({}, {"poll_token": "guessed"}, {"show": world.other_show}):
        status, taken = await enroll(client, world, name="evil twin", **extra)
        assert status == 409, extra
        assert "poll_token" not in taken
        assert "another client" in taken["detail"]
    assert (await poll(client, first["poll_token"]))[1]["status"] == "pending"
    (listed,) = await pending(client, world)
    assert (listed["id"], listed["name"], listed["show_id"]) == (
        first["id"],
        "booth kiosk",
        world.show,
    )
    assert (listed["conflicts"], listed["phrase"]) == (3, first["phrase"])
    assert listed["conflict_source"] == "127.0.0.1"
    assert "enrollment.conflict" in await audit_actions(client)


async def test_no_appliance_credential_is_ever_written_in_plaintext(
    client: Client, world: World
) -> None:
    _, asked = await enroll(client, world)
    await call(
        client,
        "POST",
        f"/shows/{world.show}/enrollments/{asked['id']}/accept",
        world.show_admin,
        expect=200,
    )
    _, got = await poll(client, asked["poll_token"])
    credential = got["credential"]
    for name in ("coordinator.db", "coordinator.db-wal"):
        path = client.app[STORE].path.parent / name
        if path.exists():
            assert credential.encode() not in path.read_bytes(), name


async def test_forwarded_for_counts_only_from_a_trusted_proxy(
    make_client: MakeClient, clock: FakeClock
) -> None:
    proxied = await make_client(trusted_proxies=("127.0.0.1",))
    world = await make_world(proxied, clock)
    headers = {"X-Forwarded-For": "198.51.100.9, 203.0.113.7"}
    body = {"code": CODE, "name": "k", "show": world.show}
    resp = await proxied.post("/api/v1/enroll", json=body, headers=headers)
    assert resp.status == 201
    (listed,) = await pending(proxied, world)
    assert listed["source"] == "203.0.113.7"  # the hop the trusted proxy saw


async def test_forwarded_for_from_anyone_else_is_ignored(client: Client, world: World) -> None:
    headers = {"X-Forwarded-For": "203.0.113.7"}
    body = {"code": CODE, "name": "k", "show": world.show}
    resp = await client.post("/api/v1/enroll", json=body, headers=headers)
    assert resp.status == 201
    (listed,) = await pending(client, world)
    assert listed["source"] == "127.0.0.1"


async def test_rejected_kiosk_learns_it_and_its_code_is_spent(client: Client, world: World) -> None:
    _, asked = await enroll(client, world)
    rejected = await call(
        client,
        "POST",
        f"/shows/{world.show}/enrollments/{asked['id']}/reject",
        world.admin,
        expect=200,
    )
    assert rejected["state"] == "rejected"
    assert await poll(client, asked["poll_token"]) == (
        200,
        {"id": asked["id"], "status": "rejected", "code": CODE},
    )
    status, spent = await enroll(client, world)
    assert status == 409
    assert "rejected" in spent["detail"]
    # A decided request cannot be decided again.
    accept = f"/shows/{world.show}/enrollments/{asked['id']}/accept"
    body = await call(client, "POST", accept, world.show_admin, expect=409)
    assert "already rejected" in body["detail"]
    assert await audit_actions(client) == ["enrollment.request", "enrollment.reject"]


async def test_only_the_show_admin_of_that_show_or_an_admin_decides(
    client: Client, world: World
) -> None:
    _, asked = await enroll(client, world)
    base = f"/shows/{world.show}/enrollments"
    for token in (world.contributor, world.appliance, world.other_show_admin):
        await call(client, "GET", base, token, expect=403)
        await call(client, "POST", f"{base}/{asked['id']}/accept", token, expect=403)
        await call(client, "POST", f"{base}/{asked['id']}/reject", token, expect=403)
    await call(client, "GET", base, None, expect=401)
    # Another show's admin cannot reach it through their own show either.
    other = f"/shows/{world.other_show}/enrollments/{asked['id']}/accept"
    await call(client, "POST", other, world.other_show_admin, expect=404)
    assert await pending(client, world, world.admin) != []
    # Nothing was decided by anyone who was refused.
    assert await audit_actions(client) == ["enrollment.request"]


async def test_accept_may_name_the_appliance_and_clashing_names_get_the_code(
    client: Client, world: World
) -> None:
    _, one = await enroll(client, world, code="AAAA-2222")
    _, two = await enroll(client, world, code="BBBB-3333")
    base = f"/shows/{world.show}/enrollments"
    first = await call(client, "POST", f"{base}/{one['id']}/accept", world.show_admin, expect=200)
    second = await call(client, "POST", f"{base}/{two['id']}/accept", world.show_admin, expect=200)
    assert first["appliance"]["name"] == "booth kiosk"
    assert second["appliance"]["name"] == "booth kiosk BBBB-3333"
    _, three = await enroll(client, world, code="CCCC-4444")
    named = await call(
        client,
        "POST",
        f"{base}/{three['id']}/accept",
        world.show_admin,
        {"name": "Left booth"},
        expect=200,
    )
    assert named["appliance"]["name"] == "Left booth"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "ABCD-234", "name": "k", "show": 1}, "code"),
        ({"code": "ABCD-0001", "name": "k", "show": 1}, "code"),
        ({"code": "ABCD-2345", "name": "", "show": 1}, "name"),
        ({"code": "ABCD-2345", "name": "k"}, "show"),
        ({"code": "ABCD-2345", "name": "k", "show": True}, "show"),
        ({"code": "ABCD-2345", "name": "k", "show": 1, "extra": 1}, "extra"),
    ],
)
async def test_bad_enroll_bodies_are_422_naming_the_field(
    client: Client, world: World, body: dict[str, Any], field: str
) -> None:
    resp = await client.post("/api/v1/enroll", json=body)
    problem = await resp.json(content_type=None)
    assert resp.status == 422
    assert resp.content_type == "application/problem+json"
    assert problem["field"] == field
    assert await pending(client, world) == []


async def test_bad_poll_and_accept_bodies(client: Client, world: World) -> None:
    resp = await client.post("/api/v1/enroll/poll", data=b"not json")
    assert resp.status == 400
    resp = await client.post("/api/v1/enroll/poll", json={"poll_token": 5})
    assert (resp.status, (await resp.json())["field"]) == (422, "poll_token")
    _, asked = await enroll(client, world)
    url = f"/api/v1/shows/{world.show}/enrollments/{asked['id']}/accept"
    resp = await client.post(url, json={"name": ""}, headers=bearer(world.show_admin))
    assert (resp.status, (await resp.json())["field"]) == (422, "name")
    assert [e["state"] for e in await pending(client, world)] == ["pending"]


async def test_show_by_name_and_unknown_show(client: Client, world: World) -> None:
    status, asked = await enroll(client, world, show="launch")
    assert (status, asked["show_id"]) == (201, world.show)
    status, missing = await enroll(client, world, code="WXYZ-9999", show="No such show")
    assert status == 404
    assert missing["field"] == "show"


async def test_enroll_requests_are_rate_limited_per_address(
    client: Client, world: World, clock: FakeClock
) -> None:
    client.app[ENROLL_LIMITS].enroll = RateLimiter(limit=2, clock=clock)
    assert (await enroll(client, world, code="AAAA-2222"))[0] == 201
    assert (await enroll(client, world, code="BBBB-3333"))[0] == 201
    status, body = await enroll(client, world, code="CCCC-4444")
    assert status == 429
    assert "try again in 60 s" in body["detail"]
    assert len(await pending(client, world)) == 2
    clock.advance(61)
    assert (await enroll(client, world, code="CCCC-4444"))[0] == 201


async def test_removing_the_show_removes_its_enrollments(client: Client, world: World) -> None:
    _, asked = await enroll(client, world)
    await call(client, "DELETE", f"/shows/{world.show}", world.admin, expect=204)
    assert (await poll(client, asked["poll_token"]))[0] == 404
