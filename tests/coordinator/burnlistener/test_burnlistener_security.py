"""Issue 23 on the burn listener: removing a kiosk hangs up on its TCP clients (case 2), and
wrong credentials in `ID` lines back off per client address (case 6).

The listener is the one `serve --burn-port` starts inside the embedded coordinator, so the
revocation travels the real path: REST removal, the store's trigger, the revocation watcher.
"""

from __future__ import annotations

from rv_helpers import FakeClock, MakeClient, call, make_world, new_session
from seed_client import SeedClient, connect

from coordinator.backoff import Backoff
from coordinator.live import LIVE
from tests.conftest import free_port

BURNER = "3f2b9c1d0e4a5b6c7d8e9f0a1b2c3d4e"


async def test_removed_appliance_is_hung_up_on_and_refused(
    make_client: MakeClient, clock: FakeClock, clients: list[SeedClient]
) -> None:
    client = await make_client(burn_port=free_port())
    world = await make_world(client, clock)
    await new_session(client, world)
    listener = client.app[LIVE].listener
    assert listener is not None
    burner = await connect(listener.port, clients)
    await burner.hello("BURNER", BURNER, world.appliance)
    assert await burner.expect("CAPAB") == []
    listed = await call(client, "GET", f"/shows/{world.show}/appliances", world.admin, expect=200)
    kiosk = listed["items"][0]["id"]
    await call(client, "DELETE", f"/shows/{world.show}/appliances/{kiosk}", world.admin, expect=204)
    code, text = await burner.error()
    assert code == "NOT_ALLOWED"
    assert "revoked" in text
    assert await burner.closed_by_server()
    again = await connect(listener.port, clients)
    await again.hello("BURNER", BURNER, world.appliance)
    code, text = await again.error()
    assert (code, "credential refused" in text) == ("NOT_ALLOWED", True)


async def test_burn_listener_backs_off_wrong_credentials(
    make_client: MakeClient, clock: FakeClock, clients: list[SeedClient]
) -> None:
    client = await make_client(burn_port=free_port())
    world = await make_world(client, clock)
    await new_session(client, world)
    listener = client.app[LIVE].listener
    assert listener is not None
    listener.backoff = Backoff("burn-protocol ID", clock=clock)
    for n in range(10):
        guess = await connect(listener.port, clients)
        await guess.hello("BURNER", BURNER, f"guess-{n}")
        code, text = await guess.error()
        assert (code, "credential refused" in text) == ("NOT_ALLOWED", True)
    real = await connect(listener.port, clients)
    await real.hello("BURNER", BURNER, world.appliance)
    code, text = await real.error()
    assert (code, text) == (
        "NOT_ALLOWED",
        "too many failed attempts from this address; try again in 60 s",
    )
    assert await real.closed_by_server()
    clock.advance(61)
    ok = await connect(listener.port, clients)
    await ok.hello("BURNER", BURNER, world.appliance)
    assert await ok.expect("CAPAB") == []
