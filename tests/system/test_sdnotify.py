"""sd_notify as systemd sees it: datagrams arriving on a real notify socket from a real process.

The child process uses `plumbing.sdnotify` exactly as a daemon's run loop does (READY=1, then the
watchdog task, STOPPING=1 on SIGTERM), under a socket bound here both as a path and as an abstract
'@' name, and with WATCHDOG_USEC set small so pings come quickly. Nothing is timed: the test waits
for the datagrams themselves, with a bounded socket timeout.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from plumbing import sdnotify
from plumbing.sdnotify import NotifyError

REPO = Path(__file__).resolve().parents[2]
RECV_TIMEOUT = 20.0

DAEMON = """
import asyncio, signal
from plumbing import sdnotify

async def main() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    sdnotify.ready("serving")
    pinger = asyncio.create_task(sdnotify.watchdog_loop(lambda: True))
    await stop.wait()
    sdnotify.stopping("bye")
    pinger.cancel()

asyncio.run(main())
"""


def _receive(sock: socket.socket) -> list[str]:
    data = sock.recv(4096)
    return data.decode().split("\n")


@pytest.fixture(params=["path", "abstract"])
def notify_socket(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(RECV_TIMEOUT)
    if request.param == "path":
        path = tmp_path / "notify"
        sock.bind(str(path))
        env_value = str(path)
    else:
        name = f"burnstand-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        env_value = "@" + name
    try:
        yield sock, env_value
    finally:
        sock.close()


def test_daemon_sends_ready_then_watchdog_pings_then_stopping(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, address = notify_socket
    env = {
        **os.environ,
        "NOTIFY_SOCKET": address,
        "WATCHDOG_USEC": "200000",
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.Popen([sys.executable, "-c", DAEMON], env=env, cwd=REPO)
    try:
        first = _receive(sock)
        assert first == ["READY=1", "STATUS=serving"]
        pings = 0
        for _ in range(50):  # bounded: two pings are due within one 200 ms period
            if _receive(sock) == ["WATCHDOG=1"]:
                pings += 1
            if pings >= 2:
                break
        assert pings >= 2
        proc.send_signal(signal.SIGTERM)
        seen: list[str] = []
        for _ in range(50):  # pings may still be in flight before STOPPING=1
            seen = _receive(sock)
            if seen != ["WATCHDOG=1"]:
                break
        assert seen == ["STOPPING=1", "STATUS=bye"]
        assert proc.wait(timeout=RECV_TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=RECV_TIMEOUT)


async def test_unhealthy_daemon_gets_no_pings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    health = iter([True, False, False, True])
    checked = asyncio.Event()
    calls = 0

    def is_healthy() -> bool:
        nonlocal calls
        calls += 1
        if calls == 4:
            checked.set()
        return next(health)

    task = asyncio.create_task(sdnotify.watchdog_loop(is_healthy, interval=0.02))
    try:
        await asyncio.wait_for(checked.wait(), RECV_TIMEOUT)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    received = []
    while True:
        try:
            received.append(sock.recv(4096))
        except BlockingIOError:
            break
    sock.close()
    # Four health checks, two of them passing: exactly two pings.
    assert received == [b"WATCHDOG=1", b"WATCHDOG=1"]


def test_outside_systemd_everything_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert sdnotify.ready() is False
    assert sdnotify.status("idle") is False
    assert sdnotify.watchdog() is False
    assert sdnotify.stopping() is False
    assert sdnotify.watchdog_interval() is None


async def test_watchdog_loop_returns_when_watchdog_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    await asyncio.wait_for(sdnotify.watchdog_loop(lambda: True), RECV_TIMEOUT)


def test_watchdog_interval_belongs_to_the_named_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.watchdog_interval() == 30.0
    # A child that inherited its parent's environment must not ping for the parent.
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert sdnotify.watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_PID")
    assert sdnotify.watchdog_interval() == 30.0


@pytest.mark.parametrize(
    ("usec", "pid", "message"),
    [
        ("abc", None, "not a number of microseconds"),
        ("0", None, "must be positive"),
        ("-5", None, "must be positive"),
        ("1000", "me", "not a process id"),
    ],
)
def test_malformed_watchdog_settings_are_typed_errors(
    monkeypatch: pytest.MonkeyPatch, usec: str, pid: str | None, message: str
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is None:
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
    else:
        monkeypatch.setenv("WATCHDOG_PID", pid)
    with pytest.raises(NotifyError, match=message):
        sdnotify.watchdog_interval()


def test_relative_notify_socket_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "run/notify")
    with pytest.raises(NotifyError, match="neither an absolute path"):
        sdnotify.ready()


def test_unreachable_notify_socket_is_a_typed_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    with pytest.raises(NotifyError, match="cannot notify systemd"):
        sdnotify.ready()


@pytest.mark.parametrize("state", ["READY", "STATUS=two\nlines", "=1x\n"])
def test_malformed_state_is_refused_before_sending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    with pytest.raises(NotifyError, match="KEY=VALUE"):
        sdnotify.notify(state)
    with pytest.raises(BlockingIOError):
        sock.recv(4096)
    sock.close()


def test_oversized_message_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    with pytest.raises(NotifyError, match="exceeds"):
        sdnotify.status("x" * 5000)


async def test_failed_ping_is_logged_and_the_loop_keeps_going(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # systemd gone for a moment (socket missing): the daemon must not die of it.
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    checked = asyncio.Event()
    calls = 0

    def is_healthy() -> bool:
        nonlocal calls
        calls += 1
        if calls == 3:
            checked.set()
        return True

    task = asyncio.create_task(sdnotify.watchdog_loop(is_healthy, interval=0.02))
    try:
        await asyncio.wait_for(checked.wait(), RECV_TIMEOUT)
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [r.message for r in caplog.records].count("watchdog ping failed") >= 2


async def test_non_positive_interval_is_a_typed_error() -> None:
    with pytest.raises(NotifyError, match="must be positive"):
        await sdnotify.watchdog_loop(lambda: True, interval=0)
