"""Issue 23 case 9: the kiosk page on loopback answers only the touchscreen's browser user.

The real `python -m appliance.kiosk.serve --display-user USER` runs on a free loopback port; a
client running as that user gets the page, a client running as any other local user gets 403.
Users are switched with `setpriv` (the tests run as root, like `make test`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.kiosk.peer import _address
from tests.conftest import free_port

NOBODY = 65534
GET = (
    "import sys, urllib.request, urllib.error\n"
    "try:\n"
    "    print(urllib.request.urlopen(sys.argv[1], timeout=10).status)\n"
    "except urllib.error.HTTPError as e:\n"
    "    print(e.code)\n"
)


def _get(url: str, uid: int) -> int:
    argv = [sys.executable, "-c", GET, url]
    if uid != os.getuid():
        argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    return int(done.stdout.strip())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("switching users needs root and setpriv (make test runs as root)")
    port = free_port()
    display = pwd.getpwuid(NOBODY).pw_name
    proc = subprocess.Popen(  # the command the unit runs, with the display user of this machine
        [
            sys.executable,
            "-m",
            "appliance.kiosk.serve",
            "--socket",
            str(tmp_path / "agent.sock"),
            "--port",
            str(port),
            "--display-user",
            display,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        for _ in range(3000):  # until it listens (any answer), bounded by the deadline
            try:
                _get(url, os.getuid())
                break
            except (subprocess.CalledProcessError, ValueError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_only_the_display_user_gets_the_kiosk_page(served: str) -> None:
    assert _get(served, NOBODY) == 200
    assert _get(served, os.getuid()) == 403  # root, or anyone else logged in on the Pi
    assert _get(served + "static/css/xterm.css", os.getuid()) == 403


def test_proc_net_addresses_are_read_in_host_order() -> None:
    assert _address("0100007F:1F91") == (_address("0100007F:1F91")[0], 8081)
    assert str(_address("0100007F:1F91")[0]) == "127.0.0.1"
    assert str(_address("00000000000000000000000001000000:0050")[0]) == "::1"
    assert str(_address("0000000000000000FFFF00000100007F:0050")[0]) == "127.0.0.1"
