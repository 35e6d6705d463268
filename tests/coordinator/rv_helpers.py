"""Helpers for the rendezvous tests: a fake clock, HTTP calls with a bearer, a populated world."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from coordinator.config import CoordinatorConfig
from coordinator.keys import STORE
from coordinator.store import pg
from coordinator.store.people import create_admin, create_appliance
from coordinator.store.sql import Conn

START = 1_800_000_000.0
SHA = "ab" * 32
MD5 = "cd" * 16


@contextmanager
def open_db(config: CoordinatorConfig) -> Iterator[Conn]:
    """A connection of its own to the coordinator's database, whichever engine it is on."""
    if config.database:
        conn = pg.connect(config.database)
        try:
            yield conn
        finally:
            conn.raw.close()
    else:
        db = sqlite3.connect(config.db_path, isolation_level=None)
        try:
            yield db
        finally:
            db.close()


def integrity_problems(config: CoordinatorConfig, db: Conn) -> list[Any]:
    """What SQLite's own checks find wrong (PostgreSQL enforces foreign keys on every write)."""
    if config.database:
        return []
    problems = list(db.execute("PRAGMA foreign_key_check").fetchall())
    ok = db.execute("PRAGMA integrity_check").fetchone()[0]
    return problems if ok == "ok" else [ok, *problems]


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


def bearer(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


async def call(
    client: Client,
    method: str,
    path: str,
    token: str | None = None,
    json: Any = None,
    expect: int | None = None,
) -> Any:
    resp = await client.request(method, "/api/v1" + path, headers=bearer(token), json=json)
    body: Any = None
    if resp.status != 204:
        body = await resp.json(content_type=None)
    if expect is not None:
        assert resp.status == expect, (method, path, resp.status, body)
    return body


async def new_admin(client: Client, clock: FakeClock, email: str = "ada@example.org") -> str:
    store = client.app[STORE]
    return await store.write(lambda c: create_admin(c, clock(), "test", "Ada", email))


@dataclass
class World:
    """One show fully set up, plus a second show with its own show admin."""

    admin: str
    show: int
    other_show: int
    show_admin: str
    other_show_admin: str
    contributor: str
    contributor2: str
    appliance: str
    episode: int
    sequence: int
    shot: int
    take: int
    secrets: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)


async def enter(client: Client, email: str, show: int, secret: str, duration: int = 3600) -> str:
    body = await call(
        client,
        "POST",
        "/join",
        json={"user": email, "show": show, "duration": duration, "secret": secret},
        expect=201,
    )
    return str(body["credential"])


async def make_world(client: Client, clock: FakeClock) -> World:
    admin = await new_admin(client, clock)
    show = (
        await call(
            client, "POST", "/shows", admin, {"name": "Launch", "asset_root": "/srv/img"}, 201
        )
    )["id"]
    other = (
        await call(
            client, "POST", "/shows", admin, {"name": "Other", "asset_root": "/srv/other"}, 201
        )
    )["id"]
    sa = await call(
        client,
        "POST",
        f"/shows/{show}/admins",
        admin,
        {"name": "Sam", "email": "sam@example.org"},
        201,
    )
    osa = await call(
        client,
        "POST",
        f"/shows/{other}/admins",
        admin,
        {"name": "Oz", "email": "oz@example.org"},
        201,
    )
    sam = await enter(client, "sam@example.org", show, sa["secret"])
    oz = await enter(client, "oz@example.org", other, osa["secret"])
    c1 = await call(
        client,
        "POST",
        f"/shows/{show}/contributors",
        sam,
        {"name": "Cleo", "email": "cleo@example.org"},
        201,
    )
    c2 = await call(
        client,
        "POST",
        f"/shows/{show}/contributors",
        sam,
        {"name": "Dev", "email": "dev@example.org"},
        201,
    )
    cleo = await enter(client, "cleo@example.org", show, c1["secret"])
    dev = await enter(client, "dev@example.org", show, c2["secret"])
    ep = (await call(client, "POST", f"/shows/{show}/episodes", sam, {"name": "26.04"}, 201))["id"]
    seq = (await call(client, "POST", f"/episodes/{ep}/sequences", sam, {"name": "Desktop"}, 201))[
        "id"
    ]
    shot = (await call(client, "POST", f"/sequences/{seq}/shots", cleo, {"name": "DVD"}, 201))["id"]
    take = (
        await call(
            client,
            "POST",
            f"/shots/{shot}/takes",
            cleo,
            {"name": "u.iso", "size": 10, "sha256": SHA, "md5": MD5, "url": "https://x/u.iso"},
            201,
        )
    )["id"]
    store = client.app[STORE]
    appliance = await store.write(lambda c: create_appliance(c, clock(), "test", show, "kiosk-1"))
    return World(
        admin=admin,
        show=show,
        other_show=other,
        show_admin=sam,
        other_show_admin=oz,
        contributor=cleo,
        contributor2=dev,
        appliance=appliance["credential"],
        episode=ep,
        sequence=seq,
        shot=shot,
        take=take,
        secrets={"sam": sa["secret"], "cleo": c1["secret"], "dev": c2["secret"]},
        ids={"sam": sa["id"], "cleo": c1["id"], "dev": c2["id"]},
    )


async def new_session(client: Client, world: World, token: str | None = None) -> str:
    """A live session "booth" of the world's episode, created over REST (by the contributor
    unless `token` says who); its id."""
    body = await call(
        client,
        "POST",
        "/sessions",
        token or world.contributor,
        {"name": "booth", "episode_id": world.episode},
        201,
    )
    return str(body["id"])
