"""Harness side of the idle appliance-link benchmark (issue 5: "10,000 idle appliance links:
≤ 24 KiB each"): enrol the appliances, start a real coordinator (`python -m coordinator.cli
serve`), drive relaylib.linkgen against its `/link`, and read the coordinator's memory from /proc
around the measured links. The coordinator's own `/api/v1/health` must count every link before the
memory is read, so the figure is of links it really holds."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from .errors import BenchConfigError, BenchError, LoadGenError, ServerStartError
from .harness import START_TIMEOUT_S, LoadGenProcess, ServerProcess
from .procstat import read_rss_kib

MAX_LINKS = 50_000
WARM_LINKS = 10
HEALTH_POLL_S = 0.1
LINK_PATH = "/link"
HEALTH_PATH = "/api/v1/health"


@dataclass(frozen=True)
class LinkSpec:
    """One linkgen run: `warm` links opened and closed first, then `links` held idle.

    `tokens_file` holds one appliance credential a line (at least warm + links of them);
    `ack_wait_s` bounds the wait for the coordinator's ack of a hello (it acks on a timer);
    `seconds` bounds the whole generator run.
    """

    url: str
    tokens_file: str
    links: int
    warm: int = WARM_LINKS
    concurrency: int = 50
    reply_timeout_s: float = 20.0
    ack_wait_s: float = 30.0
    seconds: float = 900.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("ws://127.0.0.1:", "ws://[::1]:")):
            raise BenchConfigError(f"link url must be loopback ws://, got {self.url!r}")
        if not 1 <= self.links <= MAX_LINKS:
            raise BenchConfigError(f"links must be 1..{MAX_LINKS}, got {self.links}")
        if self.warm < 0 or self.concurrency < 1:
            raise BenchConfigError("warm must be >= 0 and concurrency >= 1")
        for name in ("reply_timeout_s", "ack_wait_s", "seconds"):
            value = getattr(self, name)
            if not 0 < value <= 3600:
                raise BenchConfigError(f"link spec {name} must be in (0, 3600], got {value}")

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> LinkSpec:
        try:
            raw = json.loads(text)
            return cls(
                url=str(raw["url"]),
                tokens_file=str(raw["tokens_file"]),
                links=int(raw["links"]),
                warm=int(raw.get("warm", WARM_LINKS)),
                concurrency=int(raw.get("concurrency", 50)),
                reply_timeout_s=float(raw.get("reply_timeout_s", 20.0)),
                ack_wait_s=float(raw.get("ack_wait_s", 30.0)),
                seconds=float(raw.get("seconds", 900.0)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchConfigError(f"malformed link spec {text[:200]!r}: {exc}") from exc


@dataclass(frozen=True)
class LinksResult:
    target: str
    links: int
    rss_before_kib: int
    rss_after_kib: int
    connect_s: float

    @property
    def kib_per_link(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / self.links


def links_reported(health: Mapping[str, Any]) -> int:
    """The number of connected appliance links in a coordinator's /api/v1/health body."""
    value = health.get("links")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BenchError(f"/api/v1/health has no link count: {dict(health)!r}")
    return value


def provision_links(conn: Any, now: float, count: int) -> list[str]:
    """Enrol `count` appliances in a new show; their credentials, in order (runs in the store)."""
    from coordinator.store.catalog import add_show
    from coordinator.store.people import create_appliance

    show = add_show(conn, now, "bench", {"name": "bench-links", "asset_root": "/bench"})["id"]
    return [
        str(create_appliance(conn, now, "bench", show, f"bench-link-{i}")["credential"])
        for i in range(count)
    ]


async def enrol(data: Path, count: int) -> list[str]:
    """Create the coordinator's database in `data` with `count` appliance credentials."""
    from coordinator.store import Store

    store = Store(data / "coordinator.db", read_threads=1)
    await store.open()
    try:
        now = time.time()
        tokens: list[str] = await store.write(lambda conn: provision_links(conn, now, count))
        return tokens
    finally:
        await store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def coordinator_argv(data: Path, port: int) -> list[str]:
    # --drain-seconds 0: nothing balances load onto this node, so stopping need not wait.
    return [
        sys.executable,
        "-m",
        "coordinator.cli",
        "serve",
        "--data",
        str(data),
        "--port",
        str(port),
        "--drain-seconds",
        "0",
    ]


async def fetch_health(session: aiohttp.ClientSession, port: int) -> dict[str, Any]:
    async with session.get(f"http://127.0.0.1:{port}{HEALTH_PATH}") as resp:
        body = await resp.json(content_type=None)
    if not isinstance(body, dict):
        raise BenchError(f"/api/v1/health answered {body!r}")
    return body


async def start_coordinator(data: Path, port: int) -> ServerProcess:
    """`coordinator.cli serve` on 127.0.0.1:`port`, returned once /api/v1/health answers."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by ServerProcess.stop
    process = await asyncio.create_subprocess_exec(
        *coordinator_argv(data, port),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log,
    )
    server = ServerProcess("coordinator", process, {}, (), log)
    try:
        await _wait_healthy(server, port)
    except BaseException:
        await server.stop()
        raise
    return server


async def _wait_healthy(server: ServerProcess, port: int) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(math.ceil(START_TIMEOUT_S / HEALTH_POLL_S)):
            if server.process.returncode is not None:
                raise ServerStartError(
                    f"{server.name} exited with {server.process.returncode}: {server.stderr_tail()}"
                )
            try:
                await fetch_health(session, port)
            except (aiohttp.ClientError, OSError, ValueError):
                await asyncio.sleep(HEALTH_POLL_S)
            else:
                return
    raise ServerStartError(f"{server.name}: /api/v1/health silent for {START_TIMEOUT_S:.0f} s")


async def _check_held(port: int, count: int) -> None:
    """The coordinator itself must count every link before its memory means anything."""
    async with aiohttp.ClientSession() as session:
        held = links_reported(await fetch_health(session, port))
    if held != count:
        raise BenchError(f"the coordinator's /api/v1/health counts {held} links, not {count}")


def _check_done(done: Mapping[str, Any]) -> None:
    if done.get("lost"):
        raise LoadGenError(
            f"{done['lost']} links were lost while the rest connected: {done.get('first_loss')}"
        )


async def run_links(count: int, seconds: float = 900.0) -> LinksResult:
    """Hold `count` idle appliance links on a fresh coordinator; its RSS before and after."""
    with tempfile.TemporaryDirectory(prefix="burnstand-bench-links-") as tmp:
        data = Path(tmp)
        tokens = await enrol(data, WARM_LINKS + count)
        tokens_file = data / "credentials.txt"
        tokens_file.write_text("\n".join(tokens) + "\n")
        port = free_port()
        server = await start_coordinator(data, port)
        try:
            spec = LinkSpec(
                f"ws://127.0.0.1:{port}{LINK_PATH}", str(tokens_file), count, seconds=seconds
            )
            gen = await LoadGenProcess.spawn("relaylib.linkgen", spec.to_json())
            try:
                await gen.expect("READY", START_TIMEOUT_S + WARM_LINKS * spec.ack_wait_s)
                before = read_rss_kib(server.process.pid)
                gen.send("GO")
                done = await gen.expect("DONE", seconds)
                _check_done(done)
                await _check_held(port, count)
                after = read_rss_kib(server.process.pid)
            except BenchError as exc:
                if server.process.returncode is not None:
                    raise BenchError(f"coordinator died: {server.stderr_tail()}") from exc
                raise
            finally:
                await gen.finish()
        finally:
            await server.stop()
    return LinksResult("coordinator", count, before, after, float(done.get("elapsed_s", 0.0)))
