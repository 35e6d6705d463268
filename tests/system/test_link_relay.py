"""A balancer's `/link` refuses what it cannot pass on, with a problem body, before the upgrade.

Real processes on loopback (a rendezvous node and a balancer on one SQLite file); that a link
through a balancer reaches the session's master, and follows the session to another master, is
the multi-host test's part (tests/system/test_multihost.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.nodes import Node, admin_token, appliance_token
from tests.system.test_scaleout import world


async def _refused(http: aiohttp.ClientSession, node: Node, token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(node.url + "/link", headers=headers) as resp:
        body = await resp.json(content_type=None)
        return resp.status, str(body["detail"])


async def test_balancer_link_refuses_missing_or_wrong_credentials_and_sessionless_shows(
    tmp_path: Path, nodes: list[Node], http: aiohttp.ClientSession
) -> None:
    data = tmp_path / "data"
    rendezvous = Node(data, "--role", "rendezvous")
    nodes.append(rendezvous)
    await rendezvous.health(http)
    admin = await asyncio.to_thread(admin_token, data)
    w = await world(http, rendezvous, admin)
    kiosk = await asyncio.to_thread(appliance_token, data, w["show"], "kiosk-1")
    balancer = Node(data, "--role", "balancer")
    nodes.append(balancer)
    await balancer.health(http)

    status, detail = await _refused(http, balancer, None)
    assert (status, "Bearer" in detail) == (401, True)
    status, detail = await _refused(http, balancer, "not-a-credential")
    assert status == 401
    status, detail = await _refused(http, balancer, admin)
    assert (status, "cannot open an appliance link" in detail) == (403, True)
    # The show has no live session: nothing to route the link to, so the kiosk retries later.
    status, detail = await _refused(http, balancer, kiosk)
    assert (status, "no live session" in detail) == (503, True)
