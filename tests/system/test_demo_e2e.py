"""The README's demo as a new user runs it: one command brings up the coordinator and a simulated
kiosk agent; a burn started on the kiosk's control socket passes, and Ctrl-C stops it all."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from appliance.control import ControlClient
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


async def test_demo_burns_on_a_simulated_drive_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "coordinator.demo",
        "--data",
        str(data),
        "--port",
        str(free_port()),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        banner = await _read_banner(proc.stdout)
        sock = data / "agent.sock"
        assert f"socket {sock}" in banner
        assert f"burnstand-kiosk --socket {sock}" in banner
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
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "demo stopped." in out.decode()
    assert not (data / "agent.sock").exists()
