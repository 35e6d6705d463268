"""Credential expiry in split mode: rendezvous, session master and balancer as separate processes.

`burnstand-coordinator serve --role rendezvous|master|balancer` share one SQLite file and a real
Redis on loopback. The rendezvous process's expiry watcher announces the credential on Redis, the
master process finds the member holding it and sends the notice over the relay socket, and the
balancer process hands it to the browser's WebSocket. The client refreshes over REST, re-auths on
the same socket, keeps its seat (its queue request works, the room's traffic still reaches it) and
is told again when the new credential nears its end. Time is real here: a credential is issued
for a few seconds more than the 300 s warning window, so it is announced a few seconds later,
after the socket is seated. Every wait is bounded.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from coordinator import cli
from tests.conftest import RedisServer, free_port
from tests.nodes import Node, admin_token, api, ask, until

MD5 = "cd" * 16
# The coordinator warns 300 s before expiry (CoordinatorConfig.expiry_warning_seconds); a
# credential for 300 + MARGIN seconds is announced MARGIN seconds after it is issued.
WARNING = 300
MARGIN = 4


async def join(
    http: aiohttp.ClientSession, node: Node, show: int, user: str, secret: str, seconds: int
) -> dict[str, Any]:
    body = {"user": user, "show": show, "duration": seconds, "secret": secret}
    out: dict[str, Any] = await api(http, node, "POST", "/join", body=body)
    return out


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_expiry_notice_refresh_and_keep_place_across_processes(
    tmp_path: Path, redis_server: RedisServer, nodes: list[Node], http: aiohttp.ClientSession
) -> None:
    data = tmp_path / "data"
    redis = ("--redis", redis_server.url)
    # Only the rendezvous process looks often; the others keep the default and may announce
    # too (any process's announcement reaches the master through Redis).
    rendezvous = Node(data, "--role", "rendezvous", "--expiry-check-seconds", "0.1", *redis)
    nodes.append(rendezvous)
    assert (await rendezvous.health(http))["role"] == "rendezvous"
    admin = admin_token(data)
    master = Node(
        data,
        "--role",
        "master",
        "--master-port",
        str(free_port()),
        "--master-dir",
        str(tmp_path / "master"),
        *redis,
    )
    nodes.append(master)
    await master.health(http)
    balancer = Node(data, "--role", "balancer", *redis)
    nodes.append(balancer)
    await balancer.until_health(http, "masters", 1)

    show = (
        await api(http, rendezvous, "POST", "/shows", admin, {"name": "S", "asset_root": "/x"})
    )["id"]
    sa = await api(
        http, rendezvous, "POST", f"/shows/{show}/admins", admin, {"name": "S", "email": "s@x.org"}
    )
    sam = (await join(http, rendezvous, show, "s@x.org", sa["secret"], 3600))["credential"]
    dev = await api(
        http,
        rendezvous,
        "POST",
        f"/shows/{show}/contributors",
        sam,
        {"name": "Dev", "email": "dev@x.org"},
    )
    cleo = await api(
        http,
        rendezvous,
        "POST",
        f"/shows/{show}/contributors",
        sam,
        {"name": "Cleo", "email": "cleo@x.org"},
    )
    creator = (await join(http, rendezvous, show, "cleo@x.org", cleo["secret"], 3600))["credential"]
    episode = (await api(http, rendezvous, "POST", f"/shows/{show}/episodes", sam, {"name": "e"}))[
        "id"
    ]
    seq = (
        await api(http, rendezvous, "POST", f"/episodes/{episode}/sequences", sam, {"name": "s"})
    )["id"]
    shot = (await api(http, rendezvous, "POST", f"/sequences/{seq}/shots", creator, {"name": "d"}))[
        "id"
    ]
    take = {"name": "u.iso", "size": 10, "sha256": "ab" * 32, "md5": MD5, "url": "https://x/u"}
    await api(http, rendezvous, "POST", f"/shots/{shot}/takes", creator, take)
    session = await api(
        http, rendezvous, "POST", "/sessions", creator, {"name": "booth", "episode_id": episode}
    )
    sid = session["id"]
    assert session["master"]["url"] != balancer.url  # placed on the master process

    short = await join(http, rendezvous, show, "dev@x.org", dev["secret"], WARNING + MARGIN)
    await api(http, rendezvous, "POST", f"/sessions/{sid}/join", short["credential"])
    ws = await http.ws_connect(balancer.url.replace("http", "ws") + f"/ws/{sid}")
    await ws.send_str(json.dumps({"action": "auth", "token": short["credential"]}))
    sub = await ask(ws, {"action": "subscribe", "pattern": f"session.{sid}.queue"})
    assert sub["status"] is True
    # Answered by the master process: the client is seated there before the notice is due.
    assert (await ask(ws, {"action": "snapshot"}))["status"] is True

    notice = await until(ws, "expiring")
    assert notice["expires_at"] == pytest.approx(epoch(short["expires_at"]), abs=0.01)

    fresh = await api(
        http,
        rendezvous,
        "POST",
        "/credentials/refresh",
        short["credential"],
        {"duration": WARNING + MARGIN},
    )
    assert (await ask(ws, {"action": "auth", "token": fresh["credential"]}))["status"] is True
    # Same socket, same seat: the master takes its command and its room's traffic reaches it.
    queued = await ask(ws, {"action": "queue", "md5": MD5})
    assert queued["status"] is True, queued
    assert (await until(ws, "message"))["data"]["length"] == 1
    # The seat moved to the new credential: its own notice reaches the same socket.
    again = await until(ws, "expiring")
    assert again["expires_at"] == pytest.approx(epoch(fresh["expires_at"]), abs=0.01)
    assert again["expires_at"] > notice["expires_at"]
    await ws.close()


@pytest.mark.parametrize("seconds", ["0", "0.01", "3601", "-5"])
def test_expiry_check_seconds_out_of_range_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seconds: str
) -> None:
    argv = ["serve", "--data", str(tmp_path / "data"), "--expiry-check-seconds", seconds]
    assert cli.main(argv) == cli.EXIT_FAILED
    assert "--expiry-check-seconds must be 0.05..3600" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # refused before anything was created
