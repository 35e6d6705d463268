"""`burnstand-coordinator serve` under systemd's Type=notify: READY=1, watchdog pings, STOPPING=1.

Without READY=1 the unit stays "activating" and systemd restarts it; without pings the
watchdog kills it. The coordinator runs as a real process on a free loopback port with a real
notify socket; the test waits for the datagrams themselves, each with a bounded timeout.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port

RECV_TIMEOUT = 30.0


def _states(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_serve_reports_ready_feeds_the_watchdog_and_says_stopping(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(RECV_TIMEOUT)
    sock.bind(str(tmp_path / "notify"))
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(tmp_path / "notify"),
        "WATCHDOG_USEC": "300000",  # 0.3 s: pings every 0.15 s
    }
    env.pop("WATCHDOG_PID", None)
    port = free_port()
    cmd = [sys.executable, "-m", "coordinator.cli", "serve", "--data", str(tmp_path / "d")]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        seen: list[str] = []
        for _ in range(50):  # bounded: READY comes first, then pings
            seen += _states(sock)
            if "READY=1" in seen and seen.count("WATCHDOG=1") >= 2:
                break
        assert "READY=1" in seen
        assert seen.index("READY=1") < seen.index("WATCHDOG=1")
        assert seen.count("WATCHDOG=1") >= 2
        proc.send_signal(signal.SIGTERM)
        for _ in range(200):
            if "STOPPING=1" in _states(sock):
                break
        else:
            raise AssertionError("no STOPPING=1 after SIGTERM")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
