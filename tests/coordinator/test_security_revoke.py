"""Issue 23, case 2: every credential can be taken back, and what it opened closes at once.

REST removal of appliances, admins, show admins and contributors, and signing out, refuse the
credential on the next request; a `/link` and a `/ws` socket opened with it are closed with
4001 within a second, whether the revocation came over REST (this process) or from the CLI
(another process writing the same SQLite file).
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
from rv_helpers import Client, FakeClock, MakeClient, World, call, enter, make_world, new_session

from coordinator import cli
from coordinator.config import CoordinatorConfig

CLOSE_WITHIN = 1.0  # the promise: open sockets are closed within a second


async def _closed_with(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Wait (bounded) for the server's close; the close code it sent."""
    async with asyncio.timeout(CLOSE_WITHIN):
        for _ in range(100):  # frames sent before the close are skipped
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return ws.close_code
    raise AssertionError("more than 100 frames and no close")


async def _appliance_id(client: Client, world: World) -> int:
    listed = await call(client, "GET", f"/shows/{world.show}/appliances", world.admin, expect=200)
    (kiosk,) = listed["items"]
    assert kiosk["name"] == "kiosk-1"
    return int(kiosk["id"])


async def _open_ws(client: Client, sid: str, token: str) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect(f"/ws/{sid}")
    await ws.send_str(json.dumps({"action": "auth", "token": token}))
    await ws.send_str(json.dumps({"action": "snapshot"}))
    reply = json.loads((await ws.receive(timeout=10)).data)  # seated: the room answered
    assert reply["action"] == "snapshot"
    return ws


async def _open_link(client: Client, token: str) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect("/link", headers={"Authorization": f"Bearer {token}"})
    assert not ws.closed
    return ws


async def test_removing_a_kiosk_closes_its_link_and_refuses_it(
    client: Client, world: World
) -> None:
    await new_session(client, world)
    link = await _open_link(client, world.appliance)
    kiosk = await _appliance_id(client, world)
    # A show admin of another show cannot remove it.
    await call(
        client,
        "DELETE",
        f"/shows/{world.other_show}/appliances/{kiosk}",
        world.other_show_admin,
        expect=404,
    )
    await call(
        client,
        "DELETE",
        f"/shows/{world.show}/appliances/{kiosk}",
        world.other_show_admin,
        expect=403,
    )
    await call(
        client, "DELETE", f"/shows/{world.show}/appliances/{kiosk}", world.show_admin, expect=204
    )
    assert await _closed_with(link) == 4001
    await call(client, "GET", "/credentials/me", world.appliance, expect=401)
    resp = await client.get("/link", headers={"Authorization": f"Bearer {world.appliance}"})
    assert resp.status == 401


async def test_removing_a_contributor_closes_their_client_socket(
    client: Client, world: World
) -> None:
    sid = await new_session(client, world)
    ws = await _open_ws(client, sid, world.contributor)
    await call(
        client,
        "DELETE",
        f"/shows/{world.show}/contributors/{world.ids['cleo']}",
        world.show_admin,
        expect=204,
    )
    assert await _closed_with(ws) == 4001


async def test_secret_reset_closes_sockets_of_the_old_credentials(
    client: Client, world: World
) -> None:
    sid = await new_session(client, world)
    ws = await _open_ws(client, sid, world.contributor)
    await call(
        client,
        "PATCH",
        f"/shows/{world.show}/contributors/{world.ids['cleo']}",
        world.show_admin,
        {"reset_secret": True},
        200,
    )
    assert await _closed_with(ws) == 4001


async def test_sign_out_revokes_only_the_callers_credential(client: Client, world: World) -> None:
    sid = await new_session(client, world)
    second = await enter(client, "cleo@example.org", world.show, world.secrets["cleo"])
    await call(client, "POST", f"/sessions/{sid}/join", second, expect=200)
    ws = await _open_ws(client, sid, second)
    await call(client, "DELETE", "/credentials/me", second, expect=204)
    assert await _closed_with(ws) == 4001
    problem = await call(client, "GET", "/credentials/me", second, expect=401)
    assert "signed out" in problem["detail"]
    await call(client, "GET", "/credentials/me", world.contributor, expect=200)


async def test_admins_are_listed_removed_and_the_last_one_kept(
    client: Client, world: World, clock: FakeClock
) -> None:
    listed = await call(client, "GET", "/admins", world.admin, expect=200)
    (ada,) = listed["items"]
    problem = await call(client, "DELETE", f"/admins/{ada['id']}", world.admin, expect=409)
    assert "last admin" in problem["detail"]
    await call(client, "GET", "/admins", world.show_admin, expect=403)
    from rv_helpers import new_admin

    bea = await new_admin(client, clock, "bea@example.org")
    await call(client, "DELETE", f"/admins/{ada['id']}", bea, expect=204)
    await call(client, "GET", "/shows", world.admin, expect=401)
    await call(client, "DELETE", f"/admins/{ada['id']}", bea, expect=404)


async def test_removing_a_show_admin_closes_their_socket(client: Client, world: World) -> None:
    sid = await new_session(client, world)
    ws = await _open_ws(client, sid, world.show_admin)  # a show admin oversees its show's rooms
    await call(
        client, "DELETE", f"/shows/{world.show}/admins/{world.ids['sam']}", world.admin, expect=204
    )
    assert await _closed_with(ws) == 4001


async def test_cli_revoke_in_another_process_closes_the_open_link(
    make_client: MakeClient, clock: FakeClock, config: CoordinatorConfig
) -> None:
    client = await make_client()
    world = await make_world(client, clock)
    await new_session(client, world)
    link = await _open_link(client, world.appliance)
    kiosk = await _appliance_id(client, world)
    args = ["appliance", "revoke", "--data", str(config.data_dir), str(kiosk)]
    if config.database:  # the other process finds PostgreSQL the way a service would
        url_file = config.data_dir / "database-url"
        url_file.write_text(config.database)
        args[2:2] = ["--database-file", str(url_file)]
    assert await asyncio.to_thread(cli.main, args) == 0
    assert await _closed_with(link) == 4001
