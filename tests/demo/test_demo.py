"""The README's demo command starts a real coordinator, seeds a show, and stops cleanly."""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp

from appliance.kiosk.app import _config
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def _start(data: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "demo",
            "--data",
            str(data),
            "--port",
            str(port),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_banner(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    seen = []
    for _ in range(200):  # bounded: the banner is ~20 lines after a few log lines
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "Press Ctrl-C to stop" in line:
            return "".join(seen)
    proc.kill()
    raise AssertionError("demo never printed its banner:\n" + "".join(seen))


def _until(proc: subprocess.Popen[str], text: str) -> str:
    assert proc.stdout is not None
    for _ in range(20):  # bounded: the line follows the banner at once
        line = proc.stdout.readline()
        if text in line:
            return line
    raise AssertionError(f"the demo never printed {text!r}")


def _line(banner: str, label: str) -> str:
    [line] = [ln for ln in banner.splitlines() if ln.strip().startswith(label)]
    return line.strip().removeprefix(label).strip()


def _kiosk_commands_work(banner: str) -> None:
    """The banner's kiosk commands name programs that exist, its config holds the PIN it
    prints, and its browser command serves the kiosk page."""
    pin = _line(banner, "operator PIN").split()[0]
    terminal = shlex.split(_line(banner, "in a terminal"))
    assert (ROOT / terminal[0]).is_file(), terminal
    config = Path(terminal[terminal.index("--config") + 1])
    assert _config(config)["pin"] == pin
    browser = shlex.split(_line(banner, "in a browser").split("  then open")[0])
    assert (ROOT / browser[0]).is_file(), browser
    port = free_port()
    page = subprocess.Popen(
        [str(ROOT / browser[0]), *browser[1:], "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # bounded: until the page answers or the deadline passes
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert page.poll() is None, "the kiosk page server exited"
                assert time.monotonic() < deadline, "the kiosk page never answered"
                time.sleep(0.1)
    finally:
        page.terminate()
        page.wait(timeout=10)


def _get(url: str, token: str | None = None) -> object:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    return out


async def _room(port: int, state: dict[str, object]) -> dict[str, object]:
    """The demo session as the dashboard sees it, once its kiosk has taken a queued disc."""
    sid = state["session_id"]
    url = f"ws://127.0.0.1:{port}/ws/{sid}"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_json({"action": "auth", "token": state["admin_credential"]})
        # Subscribe first, then look: a burn that starts in between is seen either way.
        await ws.send_json({"action": "subscribe", "pattern": f"session.{sid}.burner.*"})
        await ws.send_json({"action": "snapshot"})
        burning = False
        async with asyncio.timeout(30):
            for _ in range(10_000):  # bounded: frames of a 30 s window
                frame = json.loads((await ws.receive()).data)
                if frame.get("action") == "snapshot":
                    room: dict[str, object] = frame["result"]
                    burners = room["burners"]
                    assert isinstance(burners, list)
                    if any(b["job"] for b in burners):
                        return room
                elif frame.get("action") == "message" and frame["data"].get("job") and not burning:
                    burning = True  # a burn started: the room as it is now has its kiosk
                    await ws.send_json({"action": "snapshot"})
    raise AssertionError("no burner of the demo kiosk started a queued disc")


def test_demo_serves_a_seeded_show_and_reuses_its_folder(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    port = free_port()
    proc = _start(data, port)
    try:
        banner = _wait_banner(proc)
        state = json.loads((data / "demo.json").read_text())
        assert state["admin_credential"] in banner
        _kiosk_commands_work(banner)
        base = f"http://127.0.0.1:{port}/api/v1"
        health = _get(base + "/health")
        assert isinstance(health, dict)
        assert (health["status"], health["role"]) == ("LISTENING", "all")
        shows = _get(base + "/shows", state["admin_credential"])
        assert isinstance(shows, dict)
        assert [s["name"] for s in shows["items"]] == ["burnstand demo"]
        # The dashboard's first view: the demo kiosk, burning the discs the demo queued.
        assert "Queued 12 discs of burnstand-demo-live-amd64.iso" in _until(proc, "Queued")
        room = asyncio.run(_room(port, state))
        kiosks = room["kiosks"]
        assert isinstance(kiosks, list)
        assert [(k["name"], k["link"]) for k in kiosks] == [("demo kiosk", "online")]
        # Every take's URL serves exactly the image whose size the catalog records.
        for take in state["takes"]:
            url = f"http://127.0.0.1:{port}/demo-images/{take['name']}"
            with urllib.request.urlopen(url, timeout=10) as resp:
                assert len(resp.read()) == (data / "images" / take["name"]).stat().st_size
    finally:
        assert "demo stopped." in _stop(proc)

    # A second run reuses the folder: same admin credential, no second seeding.
    proc = _start(data, port)
    try:
        banner = _wait_banner(proc)
        assert state["admin_credential"] in banner
        shows = _get(f"http://127.0.0.1:{port}/api/v1/shows", state["admin_credential"])
        assert isinstance(shows, dict)
        assert len(shows["items"]) == 1
    finally:
        _stop(proc)


async def _watch_queue_drain(
    port: int, state: dict[str, object]
) -> tuple[list[int], dict[str, int]]:
    """Follow the demo session until its kiosk has burned more discs than it has burners and
    one disc failed; returns the queue lengths seen and the totals at that point."""
    sid = state["session_id"]
    url = f"ws://127.0.0.1:{port}/ws/{sid}"
    lengths: list[int] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_json({"action": "auth", "token": state["admin_credential"]})
        await ws.send_json({"action": "subscribe", "pattern": f"session.{sid}.queue"})
        await ws.send_json({"action": "subscribe", "pattern": f"session.{sid}.stats"})
        await ws.send_json({"action": "snapshot"})
        totals = {"burned": 0, "failed": 0}
        async with asyncio.timeout(180):
            for _ in range(100_000):  # bounded: frames of a three-minute window
                frame = json.loads((await ws.receive()).data)
                if frame.get("action") == "snapshot":
                    totals = frame["result"]["totals"]
                    lengths.append(sum(r["count"] for r in frame["result"]["queue"]))
                elif frame.get("action") == "message":
                    data = frame["data"]
                    if "length" in data:
                        lengths.append(data["length"])
                    if "totals" in data:
                        totals = data["totals"]
                # Three burners: without a visitor swapping discs, three burns are all there is.
                if totals["burned"] >= 6 and totals["failed"] >= 1:
                    return lengths, totals
    raise AssertionError(f"the demo queue stood still: totals {totals}, queue {lengths}")


def test_demo_visitor_swaps_discs_so_the_queue_drains_with_some_failures(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    port = free_port()
    proc = _start(data, port, "--visitor-pause", "0.2")
    try:
        _wait_banner(proc)
        _until(proc, "Queued")
        state = json.loads((data / "demo.json").read_text())
        lengths, totals = asyncio.run(_watch_queue_drain(port, state))
        # The queue went down as the discs were made, further than one disc per burner.
        assert min(lengths) <= 12 - 6, lengths
        assert totals["failed"] >= 1  # a bad blank failed its verify
    finally:
        assert "demo stopped." in _stop(proc)


def test_demo_refuses_a_negative_visitor_pause(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "demo",
            "--data",
            str(tmp_path),
            "--visitor-pause",
            "-1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "-1 is not between 0 and 3600 seconds" in proc.stderr
