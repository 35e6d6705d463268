"""Issue 23: random add/edit/reset/remove of contributors across two shows, by both shows' admins.

Whatever the order, a caller never gains a credential in a show it does not administer, and
never changes anything in it: each show's contributor list is exactly what its own admin made.
Each example runs a fresh coordinator on a fresh SQLite file.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rv_helpers import Client, FakeClock, call, enter, new_admin

from coordinator.app import make_app
from coordinator.backoff import Backoff
from coordinator.config import CoordinatorConfig
from coordinator.rendezvous.credentials import JOIN_BACKOFF

EMAILS = ("ann@example.org", "bo@example.org", "cy@example.org")
SHOWS = (0, 1)

Op = tuple[str, int, int, int]  # verb, acting admin's show, target show, email index

ops = st.lists(
    st.tuples(
        st.sampled_from(("add", "edit", "reset", "remove")),
        st.sampled_from(SHOWS),
        st.sampled_from(SHOWS),
        st.integers(0, len(EMAILS) - 1),
    ),
    min_size=1,
    max_size=12,
)


class Walk:
    """Two shows, their admins, and what each show's contributors should be."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.show: list[int] = []
        self.admin: list[str] = []
        # per show: email -> (id, name, secret)
        self.model: list[dict[str, tuple[int, str, str]]] = [{}, {}]
        # secrets and credentials each show's admin ever saw
        self.gained: list[list[str]] = [[], []]

    async def setup(self, clock: FakeClock) -> None:
        root = await new_admin(self.client, clock)
        for n in SHOWS:
            show = await call(
                self.client, "POST", "/shows", root, {"name": f"s{n}", "asset_root": "/x"}, 201
            )
            sa = await call(
                self.client,
                "POST",
                f"/shows/{show['id']}/admins",
                root,
                {"name": f"admin{n}", "email": f"admin{n}@example.org"},
                201,
            )
            self.show.append(show["id"])
            self.admin.append(await enter(self.client, sa["email"], show["id"], sa["secret"]))

    async def step(self, verb: str, actor: int, target: int, e: int) -> None:
        email = EMAILS[e]
        own = actor == target
        base = f"/shows/{self.show[target]}/contributors"
        known = self.model[target].get(email)
        token = self.admin[actor]
        if verb == "add":
            expect = 201 if own and known is None else (409 if own else 403)
            body = await call(
                self.client, "POST", base, token, {"name": f"n{e}", "email": email}, expect
            )
            if expect == 201:
                self.model[target][email] = (body["id"], body["name"], body["secret"])
                self.gained[actor].append(body["secret"])
            return
        if known is None:
            return
        c_id, name, secret = known
        path = f"{base}/{c_id}"
        if verb == "remove":
            await call(self.client, "DELETE", path, token, expect=204 if own else 403)
            if own:
                del self.model[target][email]
            return
        patch: dict[str, Any] = {"name": name + "'"} if verb == "edit" else {"reset_secret": True}
        body = await call(self.client, "PATCH", path, token, patch, 200 if own else 403)
        if own:
            secret = body.get("secret", secret)
            self.model[target][email] = (c_id, body["name"], secret)
            if verb == "reset":
                self.gained[actor].append(secret)

    async def check(self) -> None:
        for n in SHOWS:
            listed = await call(
                self.client, "GET", f"/shows/{self.show[n]}/contributors", self.admin[n], expect=200
            )
            seen = {c["email"]: (c["id"], c["name"]) for c in listed["items"]}
            assert seen == {k: (v[0], v[1]) for k, v in self.model[n].items()}
            other = 1 - n
            for email, (_, _, secret) in self.model[n].items():
                # The live secret of this membership opens this show...
                await enter(self.client, email, self.show[n], secret)
                # ...and nothing the other show's admin ever saw opens it.
                for stolen in self.gained[other]:
                    if stolen == secret:
                        raise AssertionError("a secret of one show was shown to another")
                    await call(
                        self.client,
                        "POST",
                        "/join",
                        json={
                            "user": email,
                            "show": self.show[n],
                            "duration": 60,
                            "secret": stolen,
                        },
                        expect=401,
                    )


async def _run(walk_ops: list[Op], data: Path) -> None:
    clock = FakeClock()
    app = make_app(CoordinatorConfig(data_dir=data, clock=clock, expiry_check_interval=3600))
    # The walk tries every secret the other show's admin saw, all from one address: that is not
    # guessing, so the sign-in back-off (tested on its own) must not turn the walk's 401s into 429s.
    app[JOIN_BACKOFF] = Backoff("join", threshold=1_000_000)
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    try:
        walk = Walk(client)
        await walk.setup(clock)
        for op in walk_ops:
            await walk.step(*op)
            await walk.check()
    finally:
        await client.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(walk_ops=ops)
def test_no_admin_gains_anything_in_another_show(walk_ops: list[Op]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run(walk_ops, Path(tmp)))
