"""The README's demo as a new user runs it: one command brings up the coordinator and a simulated
kiosk agent; a burn started on the kiosk's control socket passes, the coordinator's live session
("Demo booth") counts it for that burner, as an operator's browser sees it, and Ctrl-C stops it
all."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from appliance.control import ControlClient
from appliance.drives.uid import drive_uid
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
BANNER_END = "Press Ctrl-C to stop."


async def _read_banner(stream: asyncio.StreamReader) -> str:
    lines: list[str] = []
    async with asyncio.timeout(60):
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError("the demo exited before its banner:\n" + "".join(lines))
            lines.append(line)
            if BANNER_END in line:
                return "".join(lines)


async def _frame(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=60)
    assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data)
    out: dict[str, Any] = json.loads(msg.data)
    return out


async def _ask(ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send_str(json.dumps(frame))
    for _ in range(10_000):
        reply = await _frame(ws)
        if reply.get("action") == frame["action"]:
            return reply
    raise AssertionError(f"no reply to {frame}")


async def test_demo_burns_on_a_simulated_drive_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "demo",
        "--data",
        str(data),
        "--port",
        str(port),
        "--no-burns",  # this test starts its own burn on a drive the demo's queue would take
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    http: aiohttp.ClientSession | None = None
    browser: aiohttp.ClientWebSocketResponse | None = None
    try:
        assert proc.stdout is not None
        banner = await _read_banner(proc.stdout)
        sock = data / "agent.sock"
        assert f"socket {sock}" in banner
        assert f"burnstand-kiosk --config {data / 'kiosk.toml'}" in banner
        # An operator's browser on the demo's live session, watching its statistics.
        state = json.loads((data / "demo.json").read_text(encoding="utf-8"))
        session = state["session_id"]
        http = aiohttp.ClientSession()
        browser = await http.ws_connect(f"ws://127.0.0.1:{port}/ws/{session}")
        await browser.send_str(json.dumps({"action": "auth", "token": state["admin_credential"]}))
        sub = await _ask(browser, {"action": "subscribe", "pattern": f"session.{session}.stats"})
        assert sub["status"] is True, sub
        left = drive_uid("sim:left")
        async with ControlClient(sock) as client:
            drives = {d["path"]: d for d in await client.request("drives")}
            assert {"sim:left", "sim:usb"} <= set(drives)
            images = await client.request("images")
            smallest = min(images, key=lambda i: i["size"])
            await client.subscribe()
            accepted = await client.request(
                "burn", image=smallest["sha256"], drive=drives["sim:left"]["uid"]
            )
            async with asyncio.timeout(60):
                async for event in client.events():
                    if (
                        event["event"] == "finished"
                        and event["result"]["job_id"] == accepted["job_id"]
                    ):
                        result = event["result"]
                        break
        assert result["ok"], result
        assert result["image_name"] == smallest["name"]
        # The coordinator shows it: one disc burned by the kiosk's left burner.
        for _ in range(10_000):
            frame = await _frame(browser)
            data_ = frame.get("data") or {}
            if data_.get("uid") == left and data_["burner"]["burned"] == 1:
                break
        snap = await _ask(browser, {"action": "snapshot"})
        [burner] = [b for b in snap["result"]["burners"] if b["uid"] == left]
        assert burner["stats"]["burned"] == 1, burner
        assert burner["stats"]["failed"] == 0, burner
        assert snap["result"]["totals"]["burned"] == 1
    finally:
        if browser is not None:
            await browser.close()
        if http is not None:
            await http.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "demo stopped." in out.decode()
    assert not (data / "agent.sock").exists()
