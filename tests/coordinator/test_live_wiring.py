"""What `serve` wires together: settings of the embedded coordinator reaching its parts.

Each test runs the real embedded coordinator app (REST, balancer, master, SQLite) on loopback,
built from a `CoordinatorConfig` as `serve` builds it.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from rv_helpers import FakeClock, MakeClient, call, enter, make_world, new_session

WAIT = 10.0


async def _next(ws: aiohttp.ClientWebSocketResponse, action: str) -> dict[str, Any]:
    for _ in range(20):
        msg = await ws.receive(timeout=WAIT)
        assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data)
        frame: dict[str, Any] = json.loads(msg.data)
        if frame.get("action") == action:
            return frame
    raise AssertionError(f"no {action} frame")


async def test_client_signing_in_inside_the_warning_window_is_told_at_once(
    make_client: MakeClient, clock: FakeClock
) -> None:
    # The expiry watcher announces a credential once, when it enters the window; this client
    # signs in after that moment, so only the balancer can tell it.
    client = await make_client(expiry_warning_seconds=300)
    world = await make_world(client, clock)
    sid = await new_session(client, world)
    short = await enter(client, "dev@example.org", world.show, world.secrets["dev"], 600)
    await call(client, "POST", f"/sessions/{sid}/join", short, expect=200)
    clock.advance(400)  # 200 s left, inside the 300 s window
    ws = await client.ws_connect(f"/ws/{sid}")
    await ws.send_str(json.dumps({"action": "auth", "token": short}))
    notice = await _next(ws, "expiring")
    assert notice["expires_at"] == pytest.approx(clock() + 200)

    # A client with plenty of time left hears nothing of the kind: its first frame is the answer.
    calm = await client.ws_connect(f"/ws/{sid}")
    await calm.send_str(json.dumps({"action": "auth", "token": world.contributor}))
    await calm.send_str(json.dumps({"action": "snapshot"}))
    first = json.loads((await calm.receive(timeout=WAIT)).data)
    assert first["action"] == "snapshot"
    await ws.close()
    await calm.close()
