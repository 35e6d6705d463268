"""The kiosk's web view as the touchscreen shows it: textual-serve in front of the real kiosk app,
headless Chromium on loopback, a real agent with a simulated drive behind the control socket.

The page is served by `python -m appliance.kiosk.serve` (what the systemd unit runs) on a free
port; each browser connection starts its own `burnstand-kiosk` process. Taps are mouse clicks on
the terminal at the cells where the kiosk drew a label. The terminal draws on a canvas, so to find
the labels the test turns on xterm's screen-reader mode in the served script (its rows then also
appear as text in the DOM, which a real touchscreen does not need); everything else on the page
is what a kiosk gets. Requests leaving loopback are refused and recorded: the page must work with
no internet, and must not even try to reach a font CDN.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from gpiozero.pins.mock import MockFactory
from playwright.async_api import Page, Route, async_playwright

from appliance.agent import Running, serve
from appliance.config import AgentConfig, SimulatedDriveConfig
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
WAIT = 30.0
SIZE = 2 * 1024 * 1024
IMAGE_NAME = "tapme-live.iso"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DRIVE = SimulatedDriveConfig(
    "Left burner", "sim:web-left", "optical", 1e6, 700 * 1024 * 1024, frozenset({"CDR"})
)


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[tuple[Running, dict[str, Any]]]:
    config = AgentConfig(
        name="web kiosk",
        state_dir=tmp_path / "agent",
        cache_dir=tmp_path / "agent" / "cache",
        cache_size=8 * SIZE,
        simulated=(DRIVE,),
        socket=tmp_path / "agent.sock",
    )
    running = await serve(config, pin_factory=MockFactory())
    try:
        data = (hashlib.sha512(b"web").digest() * (SIZE // 64 + 1))[:SIZE]
        image = tmp_path / IMAGE_NAME
        await asyncio.to_thread(image.write_bytes, data)
        take: dict[str, Any] = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
            "size": SIZE,
            "name": IMAGE_NAME,
            "notes": "a live image",
            "url": "",
        }
        assert running.agent.cache is not None
        await running.agent.cache.add_file(image, take["sha256"], take["name"])
        await running.agent.set_catalog([take])
        yield running, take
    finally:
        await running.stop()


@pytest.fixture
async def kiosk_url(agent: tuple[Running, dict[str, Any]]) -> AsyncIterator[str]:
    running, _ = agent
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appliance.kiosk.serve",
        "--socket",
        str(running.server.path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(WAIT):
            for _ in range(10_000):
                if proc.returncode is not None:
                    assert proc.stderr is not None
                    raise AssertionError((await proc.stderr.read()).decode())
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(url) as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.05)  # between bounded connection attempts
        yield url
    finally:
        if proc.returncode is None:
            proc.terminate()
        async with asyncio.timeout(WAIT):
            await proc.communicate()


class Terminal:
    """The page's xterm: find a label's cell and tap it."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.cols = 0
        self.resized = asyncio.Event()

    def on_frame(self, payload: str | bytes) -> None:
        # The page tells the server its size in cells; cell width = screen width / columns.
        with contextlib.suppress(ValueError, TypeError, KeyError, IndexError):
            kind, data = json.loads(payload)
            if kind == "resize":
                self.cols = int(data["width"])
                self.resized.set()

    async def wait_text(self, text: str) -> None:
        row = self.page.locator(".xterm-accessibility-tree > div", has_text=text).first
        await row.wait_for(timeout=WAIT * 1000)

    async def tap(self, text: str) -> None:
        await self.wait_text(text)
        async with asyncio.timeout(WAIT):
            await self.resized.wait()
        row = self.page.locator(".xterm-accessibility-tree > div", has_text=text).first
        line = (await row.text_content() or "").replace("\u00a0", " ")
        row_box = await row.bounding_box()
        screen = await self.page.locator(".xterm-screen").bounding_box()
        assert row_box is not None
        assert screen is not None
        assert text in line, line
        col = line.index(text) + len(text) // 2
        x = screen["x"] + (col + 0.5) * screen["width"] / self.cols
        y = row_box["y"] + row_box["height"] / 2
        await self.page.mouse.click(x, y)


async def test_a_tap_on_an_image_in_the_web_view_starts_a_burn_on_the_kiosk(
    agent: tuple[Running, dict[str, Any]], kiosk_url: str
) -> None:
    running, take = agent
    events: list[dict[str, Any]] = []
    changed = asyncio.Event()

    def on_event(event: dict[str, Any]) -> None:
        events.append(event)
        changed.set()

    remove = running.agent.add_listener(on_event)
    outside: list[str] = []
    fetched: list[str] = []

    async def route(r: Route) -> None:
        url = r.request.url
        if urlsplit(url).hostname != "127.0.0.1":
            outside.append(url)
            await r.abort()
            return
        fetched.append(urlsplit(url).path)
        if urlsplit(url).path.endswith("/js/textual.js"):
            response = await r.fetch()
            body = await response.text()
            assert "scrollback:0," in body
            await r.fulfill(
                response=response,
                body=body.replace("scrollback:0,", "scrollback:0,screenReaderMode:!0,", 1),
            )
            return
        await r.continue_()

    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            try:
                page = await browser.new_page(viewport={"width": 800, "height": 480})
                terminal = Terminal(page)
                page.on("websocket", lambda ws: ws.on("framesent", terminal.on_frame))
                await page.route("**/*", route)
                await page.goto(kiosk_url)
                # The kiosk reached the agent: the attract screen counts its burner.
                await terminal.wait_text("1 of 1 burner ready")
                await terminal.tap("Tap to start")
                await terminal.tap(IMAGE_NAME)
                await terminal.tap("Pick a burner for me")
                async with asyncio.timeout(WAIT):
                    while not any(
                        e["event"] == "progress" and e["job"]["image"] == take["sha256"]
                        for e in events
                    ):
                        changed.clear()
                        await changed.wait()
                # The visitor sees the burn going on.
                await terminal.wait_text(IMAGE_NAME)
            finally:
                await browser.close()
    finally:
        remove()
    queue = await running.agent.queue()
    drives = await running.agent.drives()
    assert [q["image"] for q in queue] == [take["sha256"]] or drives[0]["last_result"] is not None
    assert outside == [], f"the page reached outside loopback: {outside}"
    assert any(p.endswith(".ttf") for p in fetched), fetched  # its font came from the kiosk
