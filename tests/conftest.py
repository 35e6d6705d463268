"""Fixtures shared by every test package: free loopback ports, a real Redis server, real
PostgreSQL servers, the coordinator nodes a test starts, an HTTP client, CI guards."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest
from pgserver import PostgresMissing, PostgresServer, remove_postgres, start_postgres

if TYPE_CHECKING:
    from tests.nodes import Node  # tests.nodes imports this module

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on loopback a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@pytest.fixture
def unused_port() -> int:
    return free_port()


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


def start_redis(
    workdir: Path, port: int | None = None, host: str = "127.0.0.1", prefix: Sequence[str] = ()
) -> RedisServer:
    """Start a real redis-server on ``host`` (loopback unless a test's own network namespace,
    entered with ``prefix``) and wait until it answers PING."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (make test installs it)")
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            *prefix,
            exe,
            "--bind",
            host,
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            # On a test's own namespaced host, the other hosts are its clients (no password).
            *(["--protected-mode", "no"] if host != "127.0.0.1" else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Wait for the server by connecting, bounded in attempts; no fixed sleep.
    for _ in range(500):
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return RedisServer(host, port, proc)
        except OSError:
            time.sleep(0.01)  # poll backoff between bounded connection attempts
    proc.kill()
    raise RuntimeError("redis-server did not answer PING")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)


def _postgres() -> Iterator[PostgresServer]:
    try:
        server = start_postgres()
    except PostgresMissing as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        remove_postgres(server)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole run (a cluster in a temp dir), removed after."""
    yield from _postgres()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of the test's own: it is stopped and started while others may use theirs."""
    yield from _postgres()


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    """Coordinator processes a test starts (`tests.nodes.Node`): stopped after it, whatever
    happened."""
    started: list[Node] = []
    yield started
    for node in started:
        node.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a run that executed no test, or skipped any, fails loudly."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    passed = len(reporter.stats.get("passed", []))
    skipped = len(reporter.stats.get("skipped", []))
    if exitstatus == 0 and passed == 0:
        reporter.write_line("ERROR: no test ran", red=True)
        session.exitstatus = 1
    elif exitstatus == 0 and IN_CI and skipped:
        reporter.write_line(
            f"ERROR: {skipped} test(s) skipped in CI; nothing may skip here", red=True
        )
        session.exitstatus = 1
