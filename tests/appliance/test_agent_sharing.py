"""A kiosk burn with sharing on: the agent's own burn path fetches a take the cache lacks from
another kiosk of its show (a real peer server on loopback), writing a real loop device while the
chunks arrive, and the take's origin is never asked for a byte; the image is proven and kept."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from gpiozero.pins.mock import MockFactory

from appliance.agent import serve
from appliance.config import LedPins, ShareConfig
from appliance.control import ControlClient
from appliance.drives.block import BlockDrive
from appliance.drives.uid import drive_uid
from appliance.swarm.peer import Offer, PeerServer
from tests.appliance.test_agent import burn_and_wait, make_config
from tests.conftest import free_port
from wire import swarm as sw

if TYPE_CHECKING:
    from tests.appliance.conftest import LoopFactory

MiB = 1024 * 1024
SIZE = 12 * MiB
SHOW = 4


@pytest.fixture
async def origin() -> AsyncIterator[tuple[str, list[int]]]:
    """A take's URL whose server counts every byte it is asked for (it should be none)."""
    asked: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        asked.append(int(request.headers.get("Range", "bytes=0-").split("=")[1].split("-")[0]))
        raise web.HTTPServiceUnavailable

    app = web.Application()
    app.router.add_get("/image", handle)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/image", asked
    finally:
        await runner.cleanup()


async def test_a_burn_fetches_the_take_from_a_kiosk_of_the_show(
    tmp_path: Path, loop_devices: LoopFactory, origin: tuple[str, list[int]]
) -> None:
    url, asked = origin
    image = hashlib.shake_256(b"shared").digest(SIZE)
    builder = sw.ManifestBuilder(MiB)
    builder.feed(image)
    manifest = builder.finish()
    held = tmp_path / "peer.img"
    held.write_bytes(image)
    key = sw.show_key(b"s" * 32, SHOW)
    peer = PeerServer(
        lambda sha: Offer(held, SIZE, lambda: SIZE) if sha == manifest.sha256 else None,
        host="127.0.0.1",
        port=0,
    )
    peer.set_key(SHOW, key)
    await peer.start()
    dev = loop_devices(32 * MiB, fill=b"\xaa")
    uid = drive_uid(dev.path)
    share = ShareConfig(fetch=True, serve=True, port=0, bind="127.0.0.1", address="127.0.0.1")
    running = await serve(
        make_config(tmp_path, simulated=(), leds=LedPins(), cache_size=64 * MiB, share=share),
        pin_factory=MockFactory(),
        drives=[(BlockDrive(dev.path, uid, chunk_size=MiB), "Stick")],
    )
    sharing = running.agent.sharing
    assert sharing is not None
    said: list[dict[str, Any]] = []
    whole = sw.encode_have(range(manifest.count), manifest.count)
    holds_all = asyncio.Event()

    async def tracker(payload: dict[str, Any]) -> bool:
        """The coordinator's side of the link, for this one kiosk: it knows the peer."""
        said.append(payload)
        if payload["type"] == "have" and payload["chunks"] == whole:
            holds_all.set()
        if payload["type"] == "want":
            answer = {
                "type": "peers",
                "sha256": manifest.sha256,
                "count": manifest.count,
                "peers": [
                    {
                        "address": f"127.0.0.1:{peer.port}",
                        "chunks": sw.encode_have(range(manifest.count), manifest.count),
                        "fetching": sw.encode_have((), manifest.count),
                    }
                ],
            }
            asyncio.get_running_loop().call_soon(sharing.on_message, answer)
        return True

    sharing.send = tracker
    expires = int(time.time()) + 600
    sharing.on_message(
        {
            "type": "peer_token",
            "show": SHOW,
            "token": sw.issue_token(key, SHOW, 1, expires),
            "key": key.hex(),
            "expires": expires,
        }
    )
    folder = tmp_path / "cache" / "manifests"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{manifest.sha256}.json").write_bytes(manifest.encode())
    take = {
        "sha256": manifest.sha256,
        "md5": hashlib.md5(image, usedforsecurity=False).hexdigest(),
        "size": SIZE,
        "name": "shared.img",
        "notes": "",
        "url": url,
        "manifest": manifest.digest,
    }
    try:
        await running.agent.set_catalog([take])
        async with ControlClient(running.server.path) as client:
            result = await burn_and_wait(client, manifest.sha256, uid)
        assert result["ok"], result
        assert dev.read(0, SIZE) == image
        assert asked == []  # the origin was never needed
        assert peer.bytes_sent == SIZE
        assert running.agent.cache is not None
        assert manifest.sha256 in running.agent.cache
        # The tracker heard what the kiosk held while it fetched, and then that it holds it all.
        async with asyncio.timeout(10):
            await holds_all.wait()
        haves = [p for p in said if p["type"] == "have"]
        assert haves[0]["chunks"] != whole
        assert haves[-1]["chunks"] == whole
        assert haves[-1]["peer_bytes"] == SIZE
    finally:
        await running.stop()
        await peer.close()
