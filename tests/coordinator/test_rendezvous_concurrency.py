"""200 concurrent writers through the HTTP API leave the database consistent."""

from __future__ import annotations

import asyncio

from rv_helpers import (
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

WRITERS = 200
PEOPLE = 20
SEED_SESSIONS = 10


async def test_concurrent_create_join_leave(
    client: Client, world: World, config: CoordinatorConfig
) -> None:
    creds = []
    for i in range(PEOPLE):
        person = await call(
            client,
            "POST",
            f"/shows/{world.show}/contributors",
            world.show_admin,
            {"name": f"P{i}", "email": f"p{i}@example.org"},
            201,
        )
        creds.append(await enter(client, f"p{i}@example.org", world.show, person["secret"]))
    sessions = []
    for i in range(SEED_SESSIONS):
        body = await call(
            client,
            "POST",
            "/sessions",
            creds[i],
            {"name": f"seed{i}", "episode_id": world.episode},
            201,
        )
        sessions.append(body["id"])
    with open_db(config) as db:
        audit_before = db.execute("SELECT count(*) FROM audit").fetchone()[0]

    async def writer(i: int) -> int:
        token = creds[i % PEOPLE]
        sid = sessions[i % SEED_SESSIONS]
        if i % 4 == 0:
            resp = await client.post(
                "/api/v1/sessions",
                json={"name": f"w{i}", "episode_id": world.episode, "sequence_id": world.sequence},
                headers={"Authorization": f"Bearer {token}"},
            )
        elif i % 4 in (1, 2):
            resp = await client.post(
                f"/api/v1/sessions/{sid}/join", headers={"Authorization": f"Bearer {token}"}
            )
        else:
            resp = await client.post(
                f"/api/v1/sessions/{sid}/leave", headers={"Authorization": f"Bearer {token}"}
            )
        await resp.read()
        # Races are expected to lose cleanly: already a member, not a member, suspended.
        assert resp.status in (200, 201, 404, 409), resp.status
        return resp.status

    statuses = await asyncio.wait_for(
        asyncio.gather(*(writer(i) for i in range(WRITERS))), timeout=120
    )
    succeeded = sum(1 for s in statuses if s < 300)
    assert succeeded > WRITERS // 4

    listed = await call(client, "GET", "/sessions?limit=500", creds[0], expect=200)
    with open_db(config) as db:
        assert integrity_problems(config, db) == []
        # Every successful write, and nothing else, left exactly one audit row.
        audit_after = db.execute("SELECT count(*) FROM audit").fetchone()[0]
        assert audit_after - audit_before == succeeded
        counts = dict(
            db.execute(
                "SELECT s.id, count(m.credential_id) FROM sessions s "
                "LEFT JOIN memberships m ON m.session_id = s.id GROUP BY s.id"
            )
        )
        assert {s["id"]: s["members"] for s in listed["items"]} == counts
        assert listed["total"] == SEED_SESSIONS + WRITERS // 4
        # A live session always has a member and a master; a suspended one has neither.
        bad = db.execute(
            "SELECT id FROM sessions WHERE (state = 'live') != "
            "(master_id IS NOT NULL AND EXISTS (SELECT 1 FROM memberships m "
            "WHERE m.session_id = sessions.id))"
        ).fetchall()
        assert bad == []
        orphans = db.execute(
            "SELECT count(*) FROM memberships m LEFT JOIN credentials c ON c.id = m.credential_id "
            "LEFT JOIN sessions s ON s.id = m.session_id WHERE c.id IS NULL OR s.id IS NULL"
        ).fetchone()[0]
        assert orphans == 0


async def test_concurrent_creations_never_place_more_sessions_than_a_master_holds(
    make_client: MakeClient, clock: FakeClock, config: CoordinatorConfig
) -> None:
    """Creations race for the last room of two small masters: each master ends up with exactly
    its capacity of live sessions, every other creation is told there is no room (503)."""
    client = await make_client(register_local_master=False)
    world = await make_world(client, clock)
    capacities = {"m1": 3, "m2": 4}
    for name, capacity in capacities.items():
        await call(
            client,
            "POST",
            "/pool",
            world.admin,
            {"name": name, "url": f"ws://127.0.0.1:91{capacity:02d}", "capacity": capacity},
            201,
        )

    async def create(i: int) -> int:
        resp = await client.post(
            "/api/v1/sessions",
            json={"name": f"c{i}", "episode_id": world.episode},
            headers={"Authorization": f"Bearer {world.contributor}"},
        )
        await resp.read()
        return resp.status

    statuses = await asyncio.wait_for(asyncio.gather(*(create(i) for i in range(30))), 120)
    assert sorted(statuses) == [201] * sum(capacities.values()) + [503] * (
        30 - sum(capacities.values())
    )
    with open_db(config) as db:
        live = dict(
            db.execute(
                "SELECT m.name, count(s.id) FROM masters m LEFT JOIN sessions s "
                "ON s.master_id = m.id AND s.state = 'live' GROUP BY m.name"
            ).fetchall()
        )
        assert live == capacities
        (seqs, distinct) = db.execute(
            "SELECT count(seq), count(DISTINCT seq) FROM sessions"
        ).fetchone()
        assert seqs == distinct == sum(capacities.values())
