"""A kiosk burn of a take the cache lacks: the agent writes a real loop device while the image
downloads from a real aiohttp server on loopback, resumes a dropped connection with a range,
keeps the proven file in its cache for the next burn, and refuses an image that is not the
take's before the target's first block goes down."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import random
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from gpiozero.pins.mock import MockFactory

from appliance.agent import LinkState, Running, serve
from appliance.config import LedPins
from appliance.control import ControlClient
from appliance.drives.block import BlockDrive
from appliance.drives.uid import drive_uid
from tests.appliance.diskimages import make_bmap, need_tools
from tests.appliance.test_agent import FakeLink, burn_and_wait, make_config
from tests.conftest import free_port
from wire.agentmsg import parse_from_agent

if TYPE_CHECKING:
    from tests.appliance.conftest import LoopDevice, LoopFactory

MiB = 1024 * 1024
CHUNK = 1 * MiB
SIZE = 12 * MiB


class Origin:
    """Serves one file with ranges; the first whole-file answer sends `hold_at` bytes, waits
    for `release`, then breaks off, so the agent has to resume."""

    def __init__(self, data: bytes, hold_at: int, *, stall_ranges: bool = False) -> None:
        self.data, self.hold_at = data, hold_at
        self.stall_ranges = stall_ranges  # a resume gets its headers, then nothing
        self.release = asyncio.Event()
        self.held = asyncio.Event()
        self.hits: Counter[str] = Counter()
        self.auth: list[str | None] = []  # the Authorization header of each request

    async def handle(self, request: web.Request) -> web.StreamResponse:
        rng = request.headers.get("Range")
        self.hits["range" if rng else "whole"] += 1
        self.auth.append(request.headers.get("Authorization"))
        size = len(self.data)
        if rng:
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            if self.stall_ranges:
                headers = {"Content-Range": f"bytes {start}-{size - 1}/{size}", "ETag": '"v1"'}
                stalled = web.StreamResponse(status=206, headers=headers)
                stalled.content_length = size - start
                await stalled.prepare(request)
                await self.release.wait()
                return stalled
            return web.Response(
                status=206,
                body=self.data[start:],
                headers={"Content-Range": f"bytes {start}-{size - 1}/{size}", "ETag": '"v1"'},
            )
        resp = web.StreamResponse(headers={"Content-Length": str(size), "ETag": '"v1"'})
        await resp.prepare(request)
        await resp.write(self.data[: self.hold_at])
        if self.hits["whole"] == 1:
            self.held.set()
            try:
                await self.release.wait()
            finally:
                if request.transport is not None:
                    request.transport.close()  # the connection breaks off mid-body
            return resp
        await resp.write(self.data[self.hold_at :])
        return resp


@pytest.fixture
async def origin_url() -> AsyncIterator[tuple[dict[str, Origin], str]]:
    origins: dict[str, Origin] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        origin = origins.get(request.match_info["name"])
        if origin is None:
            raise web.HTTPNotFound
        return await origin.handle(request)

    app = web.Application()
    app.router.add_get("/images/{name}", handle)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield origins, f"http://127.0.0.1:{port}/images"
    finally:
        for origin in origins.values():
            origin.release.set()
        await runner.cleanup()


def take_of(data: bytes, url: str) -> dict[str, Any]:
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "size": len(data),
        "name": url.rsplit("/", 1)[-1],
        "notes": "",
        "url": url,
    }


async def stick_agent(
    tmp_path: Path, dev: LoopDevice, *, download_timeout: float = 30.0
) -> tuple[Running, str]:
    uid = drive_uid(dev.path)
    running = await serve(
        make_config(
            tmp_path,
            simulated=(),
            leds=LedPins(),
            cache_size=64 * MiB,
            download_timeout=download_timeout,
        ),
        pin_factory=MockFactory(),
        drives=[(BlockDrive(dev.path, uid, chunk_size=CHUNK), "Stick")],
    )
    return running, uid


async def wait_until(check: Any, what: str) -> None:
    """Poll a condition on the device (there is no event for bytes landing), bounded."""
    deadline = time.monotonic() + 30
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def zipped(tmp_path: Path, data: bytes, *opts: str) -> bytes:
    """`data` in a zip made by the real `zip` program (its directory at the end)."""
    if shutil.which("zip") is None:
        pytest.skip("zip not installed (make test installs it)")
    (tmp_path / "live.img").write_bytes(data)
    subprocess.run(["zip", "-q", *opts, "live.zip", "live.img"], cwd=tmp_path, check=True)
    return (tmp_path / "live.zip").read_bytes()


@pytest.mark.parametrize("packing", ["raw", "zip"])
async def test_a_take_not_cached_is_written_while_it_downloads_and_then_kept(
    tmp_path: Path,
    loop_devices: LoopFactory,
    origin_url: tuple[dict[str, Origin], str],
    packing: str,
) -> None:
    origins, base = origin_url
    image = hashlib.shake_256(b"stream").digest(SIZE)
    data = image if packing == "raw" else await asyncio.to_thread(zipped, tmp_path, image)
    origin = origins["live.img"] = Origin(data, hold_at=6 * MiB)
    take = take_of(data, f"{base}/live.img")
    dev = loop_devices(32 * MiB, fill=b"\xaa")
    running, uid = await stick_agent(tmp_path, dev)
    try:
        await running.agent.set_catalog([take])
        async with ControlClient(running.server.path) as client:
            burn = asyncio.create_task(burn_and_wait(client, take["sha256"], uid))
            # While the server holds the rest back, what arrived is already on the stick
            # (but not its first chunk: that goes down last, once the digest matched).
            async with asyncio.timeout(30):
                await origin.held.wait()
            await wait_until(
                lambda: dev.read(CHUNK, 4 * MiB) == image[CHUNK : 5 * MiB], "the first MiBs"
            )
            assert dev.read(0, CHUNK) == bytes(CHUNK)
            assert not burn.done()
            origin.release.set()
            result = await burn
            assert result["ok"], result
            assert dev.read(0, SIZE) == image
            assert origin.hits == Counter(whole=1, range=1)  # resumed, not started over
            cache = running.agent.cache
            assert cache is not None
            assert take["sha256"] in cache
            assert (tmp_path / "cache" / f"{take['sha256']}.img").read_bytes() == data
            assert list((tmp_path / "cache" / "partial").iterdir()) == []
            # The next burn comes from the cache: the server hears nothing.
            await asyncio.to_thread(dev.backing.write_bytes, b"\xaa" * (32 * MiB))
            again = await burn_and_wait(client, take["sha256"], uid)
        assert again["ok"], again
        assert origin.hits == Counter(whole=1, range=1)
        assert dev.read(0, SIZE) == image
    finally:
        await running.stop()


async def test_a_zip_entry_that_cannot_stream_is_burned_once_the_zip_is_whole(
    tmp_path: Path, loop_devices: LoopFactory, origin_url: tuple[dict[str, Origin], str]
) -> None:
    origins, base = origin_url
    image = hashlib.shake_256(b"bzip2").digest(SIZE)
    data = await asyncio.to_thread(zipped, tmp_path, image, "-Z", "bzip2")
    origin = origins["live.img"] = Origin(data, hold_at=6 * MiB)
    take = take_of(data, f"{base}/live.img")
    dev = loop_devices(32 * MiB, fill=b"\xaa")
    running, uid = await stick_agent(tmp_path, dev)
    try:
        await running.agent.set_catalog([take])
        async with ControlClient(running.server.path) as client:
            burn = asyncio.create_task(burn_and_wait(client, take["sha256"], uid))
            async with asyncio.timeout(30):
                await origin.held.wait()
            # The burn started (its start is blanked) and waits for the whole zip, since a
            # bzip2 entry is read through the zip's directory.
            await wait_until(lambda: dev.read(0, CHUNK) == bytes(CHUNK), "the blanked start")
            assert dev.read(CHUNK, 4 * MiB) == b"\xaa" * (4 * MiB)
            origin.release.set()
            result = await burn
    finally:
        await running.stop()
    assert result["ok"], result
    assert dev.read(0, SIZE) == image


async def test_a_download_that_stalls_fails_clearly_and_leaves_the_card_blank(
    tmp_path: Path, loop_devices: LoopFactory, origin_url: tuple[dict[str, Origin], str]
) -> None:
    origins, base = origin_url
    data = hashlib.shake_256(b"stall").digest(SIZE)
    # Half the image arrives, then the server goes quiet, and every resume stalls too.
    origin = origins["live.img"] = Origin(data, hold_at=6 * MiB, stall_ranges=True)
    take = take_of(data, f"{base}/live.img")
    dev = loop_devices(32 * MiB, fill=b"\xaa")
    running, uid = await stick_agent(tmp_path, dev, download_timeout=0.3)
    try:
        await running.agent.set_catalog([take])
        async with ControlClient(running.server.path) as client:
            result = await burn_and_wait(client, take["sha256"], uid)
        cache = running.agent.cache
        assert cache is not None
        assert take["sha256"] not in cache
    finally:
        await running.stop()
    assert not result["ok"]
    assert result["reason"] == "download-failed", result
    assert "stalled at 6291456 of 12582912 bytes" in result["message"], result
    assert origin.hits["range"] >= 1  # it did try to resume before giving up
    assert dev.read(0, CHUNK) == bytes(CHUNK)  # no boot code: the start stays blank
    # The cache holds no image made of what arrived; a partial download is never whole.
    assert list((tmp_path / "cache").rglob("*.img")) == []
    for left in (tmp_path / "cache").rglob("*"):
        assert not left.is_file() or left.stat().st_size < SIZE, left


async def test_a_download_that_is_not_the_takes_image_fails_and_is_not_kept(
    tmp_path: Path, loop_devices: LoopFactory, origin_url: tuple[dict[str, Origin], str]
) -> None:
    origins, base = origin_url
    data = hashlib.shake_256(b"stream").digest(SIZE)
    served = data[:-1] + b"\x00"  # one byte off: the same length, another SHA-256
    origin = origins["live.img"] = Origin(served, hold_at=SIZE)
    origin.hits["whole"] = 1  # answer whole at once
    take = take_of(data, f"{base}/live.img")
    dev = loop_devices(32 * MiB, fill=b"\xaa")
    running, uid = await stick_agent(tmp_path, dev)
    try:
        await running.agent.set_catalog([take])
        async with ControlClient(running.server.path) as client:
            result = await burn_and_wait(client, take["sha256"], uid)
    finally:
        await running.stop()
    assert not result["ok"]
    assert "SHA-256" in result["message"] or "digest" in result["message"], result
    assert dev.read(0, CHUNK) == bytes(CHUNK)  # no boot code: the start stays blank
    assert list((tmp_path / "cache").rglob("*.img")) == []
    assert list((tmp_path / "cache" / "partial").iterdir()) == []


async def test_a_download_of_another_length_is_refused_before_the_target_is_touched(
    tmp_path: Path, loop_devices: LoopFactory, origin_url: tuple[dict[str, Origin], str]
) -> None:
    origins, base = origin_url
    data = hashlib.shake_256(b"stream").digest(SIZE)
    origin = origins["live.img"] = Origin(data + b"tail", hold_at=SIZE + 4)
    origin.hits["whole"] = 1
    take = take_of(data, f"{base}/live.img")
    dev = loop_devices(32 * MiB, fill=b"\xaa")
    running, uid = await stick_agent(tmp_path, dev)
    try:
        await running.agent.set_catalog([take])
        async with ControlClient(running.server.path) as client:
            result = await burn_and_wait(client, take["sha256"], uid)
    finally:
        await running.stop()
    assert not result["ok"]
    assert f"the take says {SIZE}" in result["message"], result
    assert dev.read(0, MiB) == b"\xaa" * MiB  # refused before it was opened


def sparse_image(path: Path) -> bytes:
    """12 MiB, 70 % empty in runs, written sparsely so `bmaptool create` finds the holes."""
    rng = random.Random(16)
    data = bytearray(SIZE)
    with open(path, "wb") as f:
        f.truncate(SIZE)
        for off in range(0, SIZE, MiB):
            if rng.random() < 0.3 or off == 0:
                piece = rng.randbytes(MiB)
                data[off : off + MiB] = piece
                f.seek(off)
                f.write(piece)
    return bytes(data)


@pytest.mark.parametrize("matching", [True, False])
async def test_a_take_with_a_bmap_writes_its_ranges_and_zeroes_the_holes(
    tmp_path: Path,
    loop_devices: LoopFactory,
    origin_url: tuple[dict[str, Origin], str],
    matching: bool,
) -> None:
    need_tools("bmaptool")
    image = sparse_image(tmp_path / "live.img")
    if not matching:  # the bmap of another image: same holes, other bytes in the ranges
        other = bytes(b ^ 0x55 if b else 0 for b in image[:MiB]) + image[MiB:]
        (tmp_path / "live.img").write_bytes(other)
    bmap = (await asyncio.to_thread(make_bmap, tmp_path / "live.img")).read_bytes()
    origins, base = origin_url
    for name, body in (("live.img", image), ("live.img.bmap", bmap)):
        origins[name] = Origin(body, hold_at=len(body))
        origins[name].hits["whole"] = 1  # answer whole at once
    take = {**take_of(image, f"{base}/live.img"), "bmap": f"{base}/live.img.bmap"}
    dev = loop_devices(32 * MiB, fill=b"\xaa")
    drive = BlockDrive(dev.path, drive_uid(dev.path), chunk_size=CHUNK)
    running = await serve(
        make_config(tmp_path, simulated=(), leds=LedPins(), cache_size=64 * MiB),
        pin_factory=MockFactory(),
        drives=[(drive, "Stick")],
    )
    try:
        await running.agent.set_catalog([take])
        async with ControlClient(running.server.path) as client:
            result = await burn_and_wait(client, take["sha256"], drive.info.uid)
    finally:
        await running.stop()
    kept = tmp_path / "cache" / f"{take['sha256']}.bmap"
    if matching:
        assert result["ok"], result
        assert dev.read(0, SIZE) == image  # the holes read as zeros, not as the old 0xaa
        assert drive.zeroed_bytes >= SIZE // 2  # left to the device, not written
        assert kept.read_bytes() == bmap
    else:
        assert not result["ok"]
        assert result["reason"] == "bad-bmap", result
        assert dev.read(0, CHUNK) == bytes(CHUNK)  # the start stays blank
        assert not kept.exists()  # fetched anew next time


async def test_the_first_burn_of_a_take_that_does_not_say_what_it_unpacks_to_reports_it(
    tmp_path: Path, loop_devices: LoopFactory, origin_url: tuple[dict[str, Origin], str]
) -> None:
    image = hashlib.shake_256(b"packed").digest(4 * MiB) + bytes(4 * MiB)
    packed = gzip.compress(image)
    origins, base = origin_url
    origins["live.img.gz"] = Origin(packed, hold_at=len(packed))
    origins["live.img.gz"].hits["whole"] = 1
    take = take_of(packed, f"{base}/live.img.gz")  # no extracted_size/extracted_sha256
    dev = loop_devices(32 * MiB, fill=b"\xaa")
    uid = drive_uid(dev.path)
    FakeLink.made.clear()
    config = make_config(
        tmp_path, simulated=(), leds=LedPins(), coordinator_url=base, credential="cred"
    )
    running = await serve(
        config,
        link_factory=FakeLink,
        pin_factory=MockFactory(),
        drives=[(BlockDrive(dev.path, uid, chunk_size=CHUNK), "Stick")],
    )
    try:
        [link] = FakeLink.made
        link.go(LinkState.ONLINE)
        await running.agent.set_catalog([take])
        async with ControlClient(running.server.path) as client:
            first = await burn_and_wait(client, take["sha256"], uid)
            await link.wait_for(lambda: bool(link.of("extracted")))
            second = await burn_and_wait(client, take["sha256"], uid)
            images = {i["sha256"]: i for i in await client.request("images")}
    finally:
        await running.stop()
    assert first["ok"], first
    assert second["ok"], second
    assert dev.read(0, len(image)) == image
    assert link.of("extracted") == [
        {
            "type": "extracted",
            "sha256": take["sha256"],
            "extracted_size": len(image),
            "extracted_sha256": hashlib.sha256(image).hexdigest(),
        }
    ]  # once: the kiosk's catalog knows it now, and the kiosk shows it
    assert images[take["sha256"]]["extracted_size"] == len(image)
    for payload in link.sent:
        parse_from_agent(payload)


async def test_a_take_in_the_coordinators_store_is_fetched_with_the_kiosks_credential(
    tmp_path: Path, loop_devices: LoopFactory, origin_url: tuple[dict[str, Origin], str]
) -> None:
    origins, base = origin_url
    image = hashlib.shake_256(b"stored").digest(4 * MiB)
    origin = origins["live.img"] = Origin(image, hold_at=2 * MiB)
    # A take uploaded to the coordinator names the store by a path on the coordinator.
    take = take_of(image, "/images/live.img")
    dev = loop_devices(32 * MiB, fill=b"\xaa")
    uid = drive_uid(dev.path)
    FakeLink.made.clear()
    coordinator = base.removesuffix("/images")
    config = make_config(
        tmp_path, simulated=(), leds=LedPins(), coordinator_url=coordinator, credential="cred"
    )
    running = await serve(
        config,
        link_factory=FakeLink,
        pin_factory=MockFactory(),
        drives=[(BlockDrive(dev.path, uid, chunk_size=CHUNK), "Stick")],
    )
    try:
        await running.agent.set_catalog([take])
        async with ControlClient(running.server.path) as client:
            burn = asyncio.create_task(burn_and_wait(client, take["sha256"], uid))
            async with asyncio.timeout(30):
                await origin.held.wait()
            origin.release.set()  # then the connection drops: the resume carries it too
            result = await burn
    finally:
        await running.stop()
    assert result["ok"], result
    assert dev.read(0, len(image)) == image
    assert origin.auth == ["Bearer cred", "Bearer cred"]
