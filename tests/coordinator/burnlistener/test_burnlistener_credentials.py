"""Appliance credentials in the burn-protocol `ID` line, against a real coordinator and SQLite.

The listener runs on the embedded coordinator's own session master and rendezvous store (as
`serve --burn-port` runs it), so the credentials are the ones `appliance create` issues, the
session is the one REST created, and expiry notices come through the real expiry watcher.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from rv_helpers import MD5, Client, FakeClock, MakeClient, World, make_world, new_session
from seed_client import TOKEN, SeedClient, connect

from coordinator.burnlistener import BurnListener, start_burn_listener
from coordinator.keys import EXPIRY, STORE
from coordinator.live import LIVE
from coordinator.master import Master
from coordinator.store.people import create_appliance
from coordinator.store.records import token_hash

BURNER = "3f2b9c1d0e4a5b6c7d8e9f0a1b2c3d4e"
COMMAND = "10112233445566778899aabbccddeeff"
DISPLAY = "00112233445566778899aabbccddeeff"

StartListener = Callable[..., Awaitable[BurnListener]]


def _master(client: Client) -> Master:
    master = client.app[LIVE].master
    assert master is not None
    return master


@pytest.fixture
async def start(client: Client, clock: FakeClock) -> AsyncIterator[StartListener]:
    started: list[BurnListener] = []

    async def factory(**kwargs: Any) -> BurnListener:
        listener = await start_burn_listener(
            _master(client),
            "127.0.0.1",
            0,
            store=client.app[STORE],
            clock=clock,
            **kwargs,
        )
        started.append(listener)
        return listener

    yield factory
    for listener in started:
        listener.close()
        await listener.wait_closed()


async def _burner(port: int, clients: list[SeedClient], credential: str) -> SeedClient:
    burner = await connect(port, clients)
    await burner.hello("BURNER", BURNER, credential)
    assert await burner.expect("CAPAB") == []
    burner.send("CAP", "BURNDVDR", f"IMG:{MD5}")
    burner.send("STATUS", "IDLE")
    burner.send("WHATIS", MD5)  # a round trip: the frames before it have been applied
    await burner.expect("INFO")
    return burner


async def _store_write(client: Client, sql: str, *args: object) -> None:
    def run(conn: sqlite3.Connection) -> None:
        conn.execute(sql, args)

    await client.app[STORE].write(run)


async def test_appliance_credential_joins_the_newest_live_session_of_its_show(
    client: Client, world: World, start: StartListener, clients: list[SeedClient]
) -> None:
    older = await new_session(client, world)
    newest = await new_session(client, world)
    port = (await start()).port  # no --burn-token, no --burn-session: credentials decide
    burner = await _burner(port, clients, world.appliance)
    command = await connect(port, clients)
    await command.hello("COMMAND", COMMAND, world.appliance)
    await command.until("SLIST", f"{BURNER}==IDLE")
    command.send("QUEUE", MD5)
    assert await command.expect("QOK") == []
    assert await burner.expect("BURN") == [MD5]
    burner.send("STATUS", "50%")

    master = _master(client)
    room = master.room(newest)
    assert room is not None
    assert BURNER in room.burners
    old_room = master.room(older)
    assert old_room is None or BURNER not in old_room.burners

    # A display with the credential watches the same room and stays read-only.
    display = await connect(port, clients)
    await display.hello("DISPLAY", DISPLAY, world.appliance)
    await display.until("SLIST", f"{BURNER}==50%")
    display.send("QCLEAR")
    assert (await display.error())[0] == "NOT_ALLOWED"


async def test_burn_token_keeps_working_next_to_appliance_credentials(
    client: Client, world: World, start: StartListener, clients: list[SeedClient]
) -> None:
    token_session = await new_session(client, world)
    appliance_session = await new_session(client, world)
    port = (await start(burn_token=TOKEN, session_id=token_session)).port
    by_token = await connect(port, clients)
    await by_token.hello("COMMAND", COMMAND, TOKEN)
    assert await by_token.expect("QLIST") == []
    by_credential = await _burner(port, clients, world.appliance)
    by_token.send("SREPORT")
    assert await by_token.expect("SLIST") == []  # the burner is in the other session
    command = await connect(port, clients)
    await command.hello("COMMAND", COMMAND, world.appliance)
    await command.until("SLIST", f"{BURNER}==IDLE")
    room = _master(client).room(appliance_session)
    assert room is not None
    assert BURNER in room.burners
    by_credential.send("SREPORT")  # a burner may not ask; its connection still stands
    assert (await by_credential.error())[0] == "NOT_ALLOWED"


@pytest.mark.parametrize(
    ("case", "kind", "reason"),
    [
        ("unknown", "BURNER", "unknown credential"),
        ("revoked", "COMMAND", "revoked"),
        ("expired", "BURNER", "expired"),
        ("person", "BURNER", "contributor credential belongs to a person"),
        ("no live session", "COMMAND", "has no live session"),
    ],
)
async def test_refused_credentials_get_a_clear_error_and_are_closed(
    client: Client,
    world: World,
    clock: FakeClock,
    start: StartListener,
    clients: list[SeedClient],
    case: str,
    kind: str,
    reason: str,
) -> None:
    sid = await new_session(client, world)
    credential = world.appliance
    if case == "unknown":
        credential = "never-issued-" + "x" * 30
    elif case == "revoked":
        await _store_write(
            client,
            "UPDATE credentials SET revoked_at = ?, revoked_reason = 'box stolen' "
            "WHERE token_hash = ?",
            clock(),
            token_hash(credential),
        )
    elif case == "expired":
        # `appliance create` issues credentials without expiry; one given an expiry by the
        # operator behaves like any other credential once that passes.
        await _store_write(
            client,
            "UPDATE credentials SET expires_at = ? WHERE token_hash = ?",
            clock() - 1,
            token_hash(credential),
        )
    elif case == "person":
        credential = world.contributor
    else:
        other = await client.app[STORE].write(
            lambda c: create_appliance(c, clock(), "test", world.other_show, "kiosk-9")
        )
        credential = other["credential"]
    port = (await start()).port
    c = await connect(port, clients)
    await c.hello(kind, BURNER, credential)
    code, text = await c.error()
    assert code == "NOT_ALLOWED"
    assert reason in text
    assert credential not in text
    assert await c.closed_by_server()
    room = _master(client).room(sid)
    assert room is None or BURNER not in room.burners


async def test_expiring_appliance_credential_is_announced_to_its_tcp_members(
    client: Client, world: World, clock: FakeClock, start: StartListener, clients: list[SeedClient]
) -> None:
    await new_session(client, world)
    # An appliance credential given a lifetime (see the expired case above).
    expires_at = clock() + 1000
    await _store_write(
        client,
        "UPDATE credentials SET expires_at = ? WHERE token_hash = ?",
        expires_at,
        token_hash(world.appliance),
    )
    port = (await start()).port
    burner = await _burner(port, clients, world.appliance)
    command = await connect(port, clients)
    await command.hello("COMMAND", COMMAND, world.appliance)
    await command.until("SLIST", f"{BURNER}==IDLE")

    when = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    clock.advance(800)  # inside the 300 s warning window
    announced = await client.app[EXPIRY].check_once()
    assert [cred.expires_at for cred in announced] == [expires_at]
    for member in (command, burner):
        code, text = await member.error()
        assert code == "CREDENTIAL_EXPIRING"
        assert f"expires at {when}" in text
    # A notice, not a refusal: both connections keep working.
    command.send("QUEUE", MD5)
    assert await command.expect("QOK") == []
    assert await burner.expect("BURN") == [MD5]

    clock.advance(300)  # now it has expired: a new connection is refused
    late = await connect(port, clients)
    await late.hello("COMMAND", COMMAND, world.appliance)
    code, text = await late.error()
    assert (code, "expired" in text) == ("NOT_ALLOWED", True)
    assert await late.closed_by_server()


async def test_serve_burn_port_admits_appliance_credentials(
    make_client: MakeClient, clock: FakeClock, clients: list[SeedClient]
) -> None:
    # What `serve --burn-port` builds, with neither --burn-token nor --burn-session: the
    # coordinator's own listener checks appliance credentials against its store.
    app_client = await make_client(burn_port=0)
    world = await make_world(app_client, clock)
    sid = await new_session(app_client, world)
    listener = app_client.app[LIVE].listener
    assert listener is not None
    burner = await _burner(listener.port, clients, world.appliance)
    room = _master(app_client).room(sid)
    assert room is not None
    assert BURNER in room.burners
    stranger = await connect(listener.port, clients)
    await stranger.hello("BURNER", BURNER[::-1], "not-a-credential")
    assert (await stranger.error())[0] == "NOT_ALLOWED"
    burner.send("STATUS", "50%")  # the admitted one keeps working beside the refusal
    burner.send("WHATIS", MD5)
    await burner.expect("INFO")
    assert str(room.burners[BURNER].status) == "50%"
