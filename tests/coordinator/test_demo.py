"""The README's demo command starts a real coordinator, seeds a show, and stops cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conftest import free_port


def _start(data: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "coordinator.demo", "--data", str(data), "--port", str(port)],
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


def test_demo_serves_a_seeded_show_and_reuses_its_folder(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    port = free_port()
    proc = _start(data, port)
    try:
        banner = _wait_banner(proc)
        state = json.loads((data / "demo.json").read_text())
        assert state["admin_credential"] in banner
        base = f"http://127.0.0.1:{port}/api/v1"
        health = _get(base + "/health")
        assert isinstance(health, dict)
        assert (health["status"], health["role"]) == ("LISTENING", "all")
        shows = _get(base + "/shows", state["admin_credential"])
        assert isinstance(shows, dict)
        assert [s["name"] for s in shows["items"]] == ["burnstand demo"]
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
