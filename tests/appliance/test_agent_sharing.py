"""A kiosk burn with sharing on: the agent's own burn path fetches a take the cache lacks from
another kiosk of its show (a real peer server on loopback), writing a real loop device while the
chunks arrive, and the take's origin is never asked for a byte; the image is proven and kept.
For an optical drive, which waits for the proven image, the kiosk sees the download's progress
and where its bytes came from."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from gpiozero.pins.mock import MockFactory

from appliance.agent import Running, serve
from appliance.config import LedPins, ShareConfig, SimulatedDriveConfig
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


@dataclass
class Kiosk:
    """An agent with sharing on whose tracker (the coordinator's side of the link, for this one
    kiosk) knows one peer holding the whole take; what the agent said to it is in `said`."""

    running: Running
    peer: PeerServer
    manifest: sw.Manifest
    image: bytes
    take: dict[str, Any]
    said: list[dict[str, Any]]
    holds_all: asyncio.Event


@asynccontextmanager
async def kiosk_with_a_peer(
    tmp_path: Path, url: str, *, peer_rate: int | None = None, **agent: Any
) -> AsyncIterator[Kiosk]:
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
        rate=peer_rate,
    )
    peer.set_key(SHOW, key)
    await peer.start()
    share = ShareConfig(fetch=True, serve=True, port=0, bind="127.0.0.1", address="127.0.0.1")
    running = await serve(
        make_config(tmp_path, cache_size=64 * MiB, share=share, **agent.pop("config", {})),
        pin_factory=MockFactory(),
        **agent,
    )
    sharing = running.agent.sharing
    assert sharing is not None
    said: list[dict[str, Any]] = []
    whole = sw.encode_have(range(manifest.count), manifest.count)
    holds_all = asyncio.Event()

    async def tracker(payload: dict[str, Any]) -> bool:
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
                        "chunks": whole,
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
        yield Kiosk(running, peer, manifest, image, take, said, holds_all)
    finally:
        await running.stop()
        await peer.close()


async def test_a_burn_fetches_the_take_from_a_kiosk_of_the_show(
    tmp_path: Path, loop_devices: LoopFactory, origin: tuple[str, list[int]]
) -> None:
    url, asked = origin
    dev = loop_devices(32 * MiB, fill=b"\xaa")
    uid = drive_uid(dev.path)
    drives = [(BlockDrive(dev.path, uid, chunk_size=MiB), "Stick")]
    async with kiosk_with_a_peer(
        tmp_path, url, config={"simulated": (), "leds": LedPins()}, drives=drives
    ) as kiosk:
        sha256, running = kiosk.manifest.sha256, kiosk.running
        async with ControlClient(running.server.path) as client:
            result = await burn_and_wait(client, sha256, uid)
        assert result["ok"], result
        assert dev.read(0, SIZE) == kiosk.image
        assert asked == []  # the origin was never needed
        assert kiosk.peer.bytes_sent == SIZE
        assert running.agent.cache is not None
        assert sha256 in running.agent.cache
        # The tracker heard what the kiosk held while it fetched, and then that it holds it all.
        async with asyncio.timeout(10):
            await kiosk.holds_all.wait()
        haves = [p for p in kiosk.said if p["type"] == "have"]
        whole = sw.encode_have(range(kiosk.manifest.count), kiosk.manifest.count)
        assert haves[0]["chunks"] != whole
        assert haves[-1]["chunks"] == whole
        assert haves[-1]["peer_bytes"] == SIZE


FAST = SimulatedDriveConfig("Fast", "sim:fast", "optical", 1e9, 4_700_000_000, frozenset({"CDR"}))


async def test_the_kiosk_sees_a_download_from_other_kiosks_before_the_disc_is_written(
    tmp_path: Path, origin: tuple[str, list[int]]
) -> None:
    """An optical drive waits for the proven image: while it downloads, the kiosk's drive view
    is in a `download` phase that says how far it is and where the bytes came from."""
    url, asked = origin
    config = {"simulated": (FAST,), "leds": LedPins()}
    # 8 MiB/s from the peer: the 12 MiB take takes about 1.5 s, several progress updates.
    async with kiosk_with_a_peer(tmp_path, url, peer_rate=8 * MiB, config=config) as kiosk:
        uid = drive_uid("sim:fast")
        seen: list[dict[str, Any]] = []
        async with ControlClient(kiosk.running.server.path) as client:
            await client.subscribe()
            accepted = await client.request("burn", image=kiosk.manifest.sha256, drive=uid)
            async with asyncio.timeout(30):
                async for event in client.events():
                    if event["event"] == "progress" and event["drive"] == uid:
                        seen.append(event["job"])
                    if event["event"] == "finished":
                        assert event["result"]["job_id"] == accepted["job_id"]
                        assert event["result"]["ok"], event
                        break
    downloads = [job for job in seen if job["phase"] == "download"]
    assert downloads, seen
    assert all(job["from_origin"] == 0 for job in downloads)
    assert downloads[-1]["from_peers"] > 0
    assert 0 < downloads[-1]["percent"] <= 100
    assert downloads[-1]["total"] == SIZE
    # The disc is written after the download: write and verify follow it.
    assert seen.index(downloads[-1]) < next(i for i, j in enumerate(seen) if j["phase"] == "write")
    assert asked == []
