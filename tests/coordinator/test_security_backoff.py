"""Issue 23 case 6: guessing `/join` secrets backs off, per client address and per user, with 429
and `Retry-After` (the burn listener's side is in burnlistener/test_burnlistener_security.py)."""

from __future__ import annotations

from rv_helpers import Client, FakeClock, MakeClient, World, call, make_world

from coordinator.rendezvous.credentials import JOIN_BACKOFF


async def _join(client: Client, world: World, secret: str, addr: str) -> tuple[int, dict[str, str]]:
    resp = await client.post(
        "/api/v1/join",
        json={"user": "cleo@example.org", "show": world.show, "duration": 60, "secret": secret},
        headers={"X-Forwarded-For": addr},
    )
    return resp.status, dict(resp.headers)


async def test_join_backs_off_per_address_and_per_user_doubling(
    make_client: MakeClient, clock: FakeClock
) -> None:
    client = await make_client(trusted_proxies=("127.0.0.1",))
    client.app[JOIN_BACKOFF].clock = clock  # locks end when the test moves the clock
    world = await make_world(client, clock)
    right = world.secrets["cleo"]
    for n in range(10):
        assert (await _join(client, world, f"wrong-{n}", "198.51.100.1"))[0] == 401
    # Locked: even the right secret is refused unchecked, from this address and for this user.
    status, headers = await _join(client, world, right, "198.51.100.1")
    assert (status, headers["Retry-After"]) == (429, "60")
    assert (await _join(client, world, right, "198.51.100.2"))[0] == 429
    # Another person from a fresh address is not held up.
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
        expect=201,
    )
    clock.advance(61)
    assert (await _join(client, world, right, "198.51.100.1"))[0] == 201
    # A second burst from the same address within the day waits twice as long.
    for n in range(10):
        assert (await _join(client, world, f"again-{n}", "198.51.100.1"))[0] == 401
    assert (await _join(client, world, right, "198.51.100.3"))[1]["Retry-After"] == "60"
    assert (await _join(client, world, right, "198.51.100.1"))[1]["Retry-After"] == "120"
