"""Every rendezvous flow through the HTTP API against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

from rv_helpers import (
    MD5,
    SHA,
    Client,
    FakeClock,
    MakeClient,
    World,
    call,
    enter,
    integrity_problems,
    make_world,
    open_db,
)

from coordinator.config import CoordinatorConfig
from coordinator.keys import EXPIRY
from coordinator.store.credentials import ExpiringCredential


async def _session(client: Client, world: World, token: str | None = None) -> str:
    body = await call(
        client,
        "POST",
        "/sessions",
        token or world.contributor,
        {
            "name": "booth",
            "episode_id": world.episode,
            "sequence_id": world.sequence,
            "shot_id": world.shot,
            "take_id": world.take,
        },
        201,
    )
    return str(body["id"])


async def test_health_and_openapi(client: Client) -> None:
    health = await call(client, "GET", "/health", expect=200)
    assert health["status"] == "LISTENING"
    assert health["role"] == "all"
    doc = await call(client, "GET", "/openapi.json", expect=200)
    assert doc["openapi"].startswith("3.1")


async def test_session_lifecycle(client: Client, world: World) -> None:
    sid = await _session(client, world)
    listed = await call(client, "GET", "/sessions", world.contributor2, expect=200)
    assert [s["id"] for s in listed["items"]] == [sid]
    assert listed["items"][0]["member"] is False
    assert listed["items"][0]["master"]["name"] == "local"
    joined = await call(
        client, "POST", f"/sessions/{sid.upper()}/join", world.contributor2, expect=200
    )
    assert joined["members"] == 2
    await call(client, "POST", f"/sessions/{sid}/join", world.contributor2, expect=409)
    await call(client, "POST", f"/sessions/{sid}/leave", world.contributor, expect=200)
    last = await call(client, "POST", f"/sessions/{sid}/leave", world.contributor2, expect=200)
    assert last["state"] == "suspended"
    assert last["master"] is None
    problem = await call(client, "POST", f"/sessions/{sid}/join", world.contributor, expect=409)
    assert "suspended" in problem["detail"]
    resumed = await call(client, "POST", f"/sessions/{sid}/resume", world.contributor, expect=200)
    assert resumed["state"] == "live"
    assert resumed["members"] == 1
    suspended = await call(
        client, "POST", f"/sessions/{sid}/suspend", world.contributor, expect=200
    )
    assert suspended["members"] == 0
    await call(client, "POST", f"/sessions/{sid}/suspend", world.contributor, expect=409)
    await call(client, "POST", f"/sessions/{sid}/leave", world.contributor, expect=404)


async def test_overseers_list_the_sessions_of_the_shows_they_manage(
    client: Client, world: World
) -> None:
    """The fleet overview's source: an admin lists every show's sessions, a show admin those of
    their show; neither is a member, and another show's session is 404 to a show admin."""
    here = await _session(client, world)
    oz = world.other_show_admin
    ep = await call(client, "POST", f"/shows/{world.other_show}/episodes", oz, {"name": "1"}, 201)
    added = await call(
        client,
        "POST",
        f"/shows/{world.other_show}/contributors",
        oz,
        {"name": "Olga", "email": "olga@example.org"},
        201,
    )
    olga = await enter(client, "olga@example.org", world.other_show, added["secret"])
    there = (
        await call(
            client, "POST", "/sessions", olga, {"name": "far booth", "episode_id": ep["id"]}, 201
        )
    )["id"]
    everything = await call(client, "GET", "/sessions", world.admin, expect=200)
    assert {(s["id"], s["show_id"]) for s in everything["items"]} == {
        (here, world.show),
        (there, world.other_show),
    }
    assert all(s["member"] is False for s in everything["items"])
    mine = await call(client, "GET", "/sessions", world.show_admin, expect=200)
    assert [s["id"] for s in mine["items"]] == [here]
    theirs = await call(client, "GET", "/sessions", oz, expect=200)
    assert [s["id"] for s in theirs["items"]] == [there]
    read = await call(client, "GET", f"/sessions/{there}", world.admin, expect=200)
    assert read["name"] == "far booth"
    await call(client, "GET", f"/sessions/{there}", world.show_admin, expect=404)


async def test_session_scope_must_belong_to_the_show(client: Client, world: World) -> None:
    oz_ep = (
        await call(
            client,
            "POST",
            f"/shows/{world.other_show}/episodes",
            world.other_show_admin,
            {"name": "x"},
            201,
        )
    )["id"]
    bad = await call(
        client, "POST", "/sessions", world.contributor, {"name": "s", "episode_id": oz_ep}, 404
    )
    assert bad["field"] == "episode_id"
    other_seq = (
        await call(
            client,
            "POST",
            f"/shows/{world.show}/episodes",
            world.show_admin,
            {"name": "27.04"},
            201,
        )
    )["id"]
    bad = await call(
        client,
        "POST",
        "/sessions",
        world.contributor,
        {"name": "s", "episode_id": other_seq, "sequence_id": world.sequence},
        404,
    )
    assert bad["field"] == "sequence_id"
    bad = await call(
        client,
        "POST",
        "/sessions",
        world.contributor,
        {"name": "s", "episode_id": world.episode, "take_id": world.take},
        404,
    )
    assert bad["field"] == "sequence_id"


async def test_least_loaded_master_and_pool(client: Client, world: World) -> None:
    pool = await call(client, "GET", "/pool", world.admin, expect=200)
    local = pool["items"][0]
    assert local["embedded"] is True
    added = await call(
        client,
        "POST",
        "/pool",
        world.admin,
        {"name": "m2", "url": "http://127.0.0.1:9001", "capacity": 2},
        201,
    )
    await call(
        client, "POST", "/pool", world.admin, {"name": "m3", "url": "http://127.0.0.1:9001"}, 409
    )
    first = await call(
        client,
        "POST",
        "/sessions",
        world.contributor,
        {"name": "a", "episode_id": world.episode},
        201,
    )
    second = await call(
        client,
        "POST",
        "/sessions",
        world.contributor,
        {"name": "b", "episode_id": world.episode},
        201,
    )
    # local (id 1) and m2 both start empty: the tie goes to the older, then load balances.
    assert first["master"]["id"] == local["id"]
    assert second["master"]["id"] == added["id"]
    busy = await call(client, "DELETE", f"/pool/{added['id']}", world.admin, expect=409)
    assert "live session" in busy["detail"]
    await call(client, "POST", f"/sessions/{second['id']}/suspend", world.contributor, expect=200)
    await call(client, "DELETE", f"/pool/{added['id']}", world.admin, expect=204)
    await call(client, "DELETE", f"/pool/{added['id']}", world.admin, expect=404)


async def test_pool_empty_is_503(make_client: MakeClient, clock: FakeClock) -> None:
    client = await make_client(register_local_master=False)
    world = await make_world(client, clock)
    problem = await call(
        client,
        "POST",
        "/sessions",
        world.contributor,
        {"name": "s", "episode_id": world.episode},
        503,
    )
    assert "pool is empty" in problem["detail"]
    m = await call(
        client,
        "POST",
        "/pool",
        world.admin,
        {"name": "m", "url": "ws://127.0.0.1:9100", "capacity": 1},
        201,
    )
    await call(
        client,
        "POST",
        "/sessions",
        world.contributor,
        {"name": "s", "episode_id": world.episode},
        201,
    )
    full = await call(
        client,
        "POST",
        "/sessions",
        world.contributor,
        {"name": "t", "episode_id": world.episode},
        503,
    )
    assert "capacity" in full["detail"]
    assert m["capacity"] == 1


async def test_expired_credential_is_refused_with_reason(
    client: Client, world: World, clock: FakeClock
) -> None:
    short = await enter(client, "dev@example.org", world.show, world.secrets["dev"], duration=60)
    await call(client, "GET", "/sessions", short, expect=200)
    clock.advance(61)
    problem = await call(client, "GET", "/sessions", short, expect=401)
    assert problem["detail"].startswith("credential expired at ")
    await call(client, "POST", "/credentials/refresh", short, {"duration": 60}, 401)


async def test_duration_is_capped(make_client: MakeClient, clock: FakeClock) -> None:
    client = await make_client(max_credential_seconds=600)
    world = await make_world(client, clock)
    body = await call(
        client,
        "POST",
        "/join",
        json={
            "user": "dev@example.org",
            "show": world.show,
            "duration": 999_999,
            "secret": world.secrets["dev"],
        },
        expect=201,
    )
    assert body["expires_in"] == 600


async def test_join_rejects_wrong_secret_and_wrong_show(client: Client, world: World) -> None:
    for user, show, secret in [
        ("dev@example.org", world.show, "nope"),
        ("dev@example.org", world.other_show, world.secrets["dev"]),
        ("nobody@example.org", world.show, world.secrets["dev"]),
    ]:
        problem = await call(
            client,
            "POST",
            "/join",
            json={"user": user, "show": show, "duration": 60, "secret": secret},
            expect=401,
        )
        assert "not a show admin or contributor" in problem["detail"]


async def test_refresh_transfers_memberships_and_revokes_old(
    client: Client, world: World, clock: FakeClock
) -> None:
    heard: list[ExpiringCredential] = []

    async def listener(cred: ExpiringCredential) -> None:
        heard.append(cred)

    client.app[EXPIRY].add_listener(listener)
    old = await enter(client, "dev@example.org", world.show, world.secrets["dev"], duration=600)
    sid = await _session(client, world, old)
    assert await client.app[EXPIRY].check_once() == []
    clock.advance(400)  # 200 s left: inside the 300 s warning window
    announced = await client.app[EXPIRY].check_once()
    assert [c.session_ids for c in heard] == [(sid,)]
    assert announced == heard
    assert await client.app[EXPIRY].check_once() == []  # announced once only

    fresh = await call(client, "POST", "/credentials/refresh", old, {"duration": 3600}, 201)
    assert fresh["memberships_moved"] == 1
    problem = await call(client, "GET", "/sessions", old, expect=401)
    assert "revoked" in problem["detail"]
    me = await call(client, "GET", "/credentials/me", fresh["credential"], expect=200)
    assert me["sessions"] == [sid]
    clock.advance(300)  # the old one would be expired now; the new one is still good
    await call(client, "POST", f"/sessions/{sid}/leave", fresh["credential"], expect=200)


async def test_catalog_and_people_flows(
    client: Client, world: World, config: CoordinatorConfig
) -> None:
    await call(client, "POST", "/shows", world.admin, {"name": "launch", "asset_root": "/x"}, 409)
    shows = await call(client, "GET", "/shows", world.admin, expect=200)
    assert shows["total"] == 2
    mine = await call(client, "GET", "/shows", world.contributor, expect=200)
    assert [s["id"] for s in mine["items"]] == [world.show]
    paged = await call(client, "GET", "/shows?limit=1&offset=1", world.admin, expect=200)
    assert [s["name"] for s in paged["items"]] == ["Other"]
    bad = await call(client, "GET", "/shows?limit=0", world.admin, expect=400)
    assert bad["field"] == "limit"

    edited = await call(
        client,
        "PATCH",
        f"/shows/{world.show}/contributors/{world.ids['dev']}",
        world.show_admin,
        {"name": "Devon", "reset_secret": True},
        200,
    )
    assert edited["name"] == "Devon"
    await enter(client, "dev@example.org", world.show, edited["secret"])
    await call(
        client,
        "POST",
        "/join",
        json={
            "user": "dev@example.org",
            "show": world.show,
            "duration": 60,
            "secret": world.secrets["dev"],
        },
        expect=401,
    )
    dup = await call(
        client,
        "POST",
        f"/shows/{world.show}/contributors",
        world.show_admin,
        {"name": "Cleo", "email": "CLEO@example.org"},
        409,
    )
    assert "already exists" in dup["detail"]
    # The same email in another show is a membership of its own, with a secret of its own.
    shared = await call(
        client,
        "POST",
        f"/shows/{world.other_show}/contributors",
        world.other_show_admin,
        {"name": "Cleo", "email": "cleo@example.org"},
        201,
    )
    assert shared["secret"] not in (None, world.secrets["cleo"])
    assert shared["shows"] == [world.other_show]

    sa = await call(
        client,
        "PATCH",
        f"/shows/{world.show}/admins/{world.ids['sam']}",
        world.admin,
        {"tags": ["lead"]},
        200,
    )
    assert sa["tags"] == ["lead"]

    await call(client, "GET", f"/shots/{world.shot}/takes", world.appliance, expect=200)
    take = (await call(client, "GET", f"/shots/{world.shot}/takes", world.contributor, expect=200))[
        "items"
    ][0]
    assert (take["size"], take["sha256"], take["md5"]) == (10, SHA, MD5)
    await call(
        client,
        "POST",
        f"/shots/{world.shot}/takes",
        world.contributor,
        {"name": "U.ISO", "size": 1, "sha256": SHA, "md5": MD5, "url": "https://x"},
        409,
    )

    sid = await _session(client, world)
    live = await call(client, "DELETE", f"/takes/{world.take}", world.contributor, expect=409)
    assert "live session" in live["detail"]
    await call(client, "DELETE", f"/shows/{world.show}", world.admin, expect=409)
    await call(client, "POST", f"/sessions/{sid}/leave", world.contributor, expect=200)
    await call(client, "DELETE", f"/shots/{world.shot}", world.contributor, expect=204)
    # The suspended session scoped to that shot went with it.
    await call(client, "GET", f"/sessions/{sid}", world.contributor, expect=404)
    await call(
        client,
        "DELETE",
        f"/shows/{world.show}/contributors/{world.ids['dev']}",
        world.show_admin,
        expect=204,
    )
    await call(client, "GET", "/sessions", world.contributor2, expect=401)
    await call(client, "DELETE", f"/shows/{world.show}", world.admin, expect=204)
    await call(client, "GET", "/sessions", world.contributor, expect=401)
    await call(client, "GET", f"/shows/{world.show}", world.admin, expect=404)

    with open_db(config) as db:
        actions = [r[0] for r in db.execute("SELECT action FROM audit ORDER BY id")]
        assert {"show.add", "contributor.edit", "shot.remove", "show.remove"} <= set(actions)
        actors = dict(db.execute("SELECT action, actor FROM audit WHERE action = 'show.remove'"))
        assert actors["show.remove"].startswith("admin:")
        assert integrity_problems(config, db) == []
        assert db.execute("SELECT count(*) FROM episodes").fetchone()[0] == 0


async def test_bad_bodies_are_typed_errors_and_write_nothing(
    client: Client, world: World, config: CoordinatorConfig
) -> None:
    cases = [
        ("/shows", b"{not json", 400, None),
        ("/shows", b"", 400, None),
        ("/shows", b'{"name": "x"}', 422, "asset_root"),
        ("/shows", b'{"name": "", "asset_root": "/x"}', 422, "name"),
        ("/shows", b'{"name": "x", "asset_root": "/x", "tags": [1]}', 422, "tags[0]"),
        ("/shows", b'{"name": "x", "asset_root": "/x", "colour": "red"}', 422, "colour"),
        ("/shows", b"[]", 422, None),
        ("/pool", b'{"name": "m", "url": "ftp://x"}', 422, "url"),
        ("/pool", b'{"name": "m", "url": "http://x", "capacity": true}', 422, "capacity"),
    ]
    with open_db(config) as db:
        before = db.execute("SELECT count(*) FROM audit").fetchone()[0]
    for path, raw, status, fld in cases:
        resp = await client.post(
            "/api/v1" + path, data=raw, headers={"Authorization": f"Bearer {world.admin}"}
        )
        assert resp.status == status, (path, raw)
        assert resp.content_type == "application/problem+json"
        problem = await resp.json(content_type=None)
        assert problem.get("field") == fld, (raw, problem)
    take = await call(
        client,
        "POST",
        f"/shots/{world.shot}/takes",
        world.contributor,
        {"name": "t", "size": 0, "sha256": "zz", "md5": MD5, "url": "https://x"},
        422,
    )
    assert take["field"] == "size"
    with open_db(config) as db:
        assert db.execute("SELECT count(*) FROM audit").fetchone()[0] == before


async def test_each_sign_in_is_audited_naming_the_credential_it_issued(
    client: Client, world: World, config: CoordinatorConfig
) -> None:
    """POST /join writes the credential and its audit row together; the audit row names the
    credential by its id, its holder and the duration asked for."""
    await enter(client, "cleo@example.org", world.show, world.secrets["cleo"], 120)
    with open_db(config) as db:
        rows = db.execute(
            "SELECT a.actor, a.target, a.detail, c.id, c.kind, c.expires_at - c.created_at "
            "FROM audit a JOIN credentials c ON a.target = 'credential:' || c.id "
            "WHERE a.action = 'credential.issue' ORDER BY a.id"
        ).fetchall()
        issued = db.execute(
            "SELECT count(*) FROM credentials WHERE kind IN ('show_admin', 'contributor')"
        ).fetchone()[0]
    assert len(rows) == issued  # every sign-in's credential has its audit row, and only one
    actor, target, detail, cred_id, kind, lifetime = rows[-1]
    assert (target, kind, lifetime) == (f"credential:{cred_id}", "contributor", 120)
    assert actor == f"contributor:{world.ids['cleo']}@show:{world.show}"
    assert json.loads(detail) == {"seconds": 120}


async def test_unknown_route_and_method_are_problems(client: Client) -> None:
    resp = await client.get("/api/v1/nothing-here")
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"
    resp = await client.put("/api/v1/shows")
    assert resp.status == 405
    assert (await resp.json(content_type=None))["status"] == 405


async def test_restart_keeps_everything(make_client: MakeClient, clock: FakeClock) -> None:
    first = await make_client()
    world = await make_world(first, clock)
    sid = await _session(first, world)
    await first.close()
    second = await make_client()
    listed = await call(second, "GET", "/sessions", world.contributor, expect=200)
    assert [(s["id"], s["members"], s["state"]) for s in listed["items"]] == [(sid, 1, "live")]
    pool = await call(second, "GET", "/pool", world.admin, expect=200)
    assert pool["total"] == 1  # the embedded master is not registered twice
    takes = await call(second, "GET", f"/shots/{world.shot}/takes", world.contributor, expect=200)
    assert takes["total"] == 1
    await call(second, "POST", f"/sessions/{sid}/join", world.contributor2, expect=200)


async def test_restart_on_another_port_moves_the_embedded_master(
    make_client: MakeClient, clock: FakeClock
) -> None:
    first = await make_client(port=8080)
    world = await make_world(first, clock)
    await first.close()
    second = await make_client(port=9090)
    pool = await call(second, "GET", "/pool", world.admin, expect=200)
    assert [(m["name"], m["url"]) for m in pool["items"]] == [("local", "http://127.0.0.1:9090")]


async def test_failing_expiry_listener_does_not_silence_others(
    client: Client, world: World, clock: FakeClock
) -> None:
    heard: list[int] = []

    async def broken(cred: ExpiringCredential) -> None:
        raise RuntimeError("listener bug")

    async def working(cred: ExpiringCredential) -> None:
        heard.append(cred.credential_id)

    client.app[EXPIRY].add_listener(broken)
    client.app[EXPIRY].add_listener(working)
    await enter(client, "dev@example.org", world.show, world.secrets["dev"], duration=100)
    clock.advance(1)
    announced = await client.app[EXPIRY].check_once()
    assert len(announced) == 1
    assert heard == [announced[0].credential_id]
