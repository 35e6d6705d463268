"""Helpers for the link tests: a TCP proxy whose connections can be cut, a wake-up signal, a
recording link handler, and a hand-driven clock for the grace period."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestServer

from coordinator.links import Appliance, Link, LinkHub
from coordinator.store import Store
from wire import link as wl

WAIT = 10.0


class Signal:
    """Something changed: waiters re-check their condition (no sleeping, bounded by WAIT)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def pulse(self, *_: object) -> None:
        self._event.set()

    async def until(self, predicate: Callable[[], bool], within: float = WAIT) -> None:
        async with asyncio.timeout(within):
            while True:
                self._event.clear()
                if predicate():
                    return
                await self._event.wait()


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CutProxy:
    """Loopback TCP proxy in front of the coordinator: `cut()` aborts every connection (the
    processes stay up), `blocked` makes new connections close at once."""

    def __init__(self, target_port: int, signal: Signal | None = None) -> None:
        self.target_port = target_port
        self.blocked = False
        self.accepted = 0
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._signal = signal

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def open_pairs(self) -> int:
        return len(self._pairs)

    def cut(self) -> int:
        cut = 0
        for down, up in list(self._pairs):
            down.transport.abort()
            up.transport.abort()
            cut += 1
        self._pairs.clear()
        return cut

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blocked:
            writer.transport.abort()
            if self._signal is not None:
                self._signal.pulse()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        self.accepted += 1
        a = asyncio.create_task(_pipe(reader, up_writer))
        b = asyncio.create_task(_pipe(up_reader, writer))
        self._tasks.update((a, b))
        try:
            await asyncio.gather(a, b)
        finally:
            self._tasks.difference_update((a, b))
            self._pairs.discard(pair)
            for w in pair:
                w.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        for _ in range(10_000_000):  # bounded: far more chunks than any test moves
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


class Recorder:
    """A `LinkHandler` that keeps every payload and event, for testing the transport alone."""

    def __init__(self, signal: Signal) -> None:
        self.signal = signal
        self.payloads: list[Any] = []
        self.opens: list[tuple[str, bool]] = []
        self.ends: list[tuple[str, bool]] = []
        self.suspends: list[str] = []
        self.links: dict[str, Link] = {}

    async def admit(self, appliance: Appliance) -> str | None:
        return None

    async def opened(self, link: Link, *, resumed: bool) -> None:
        self.links[link.token] = link
        self.opens.append((link.token, resumed))
        self.signal.pulse()

    async def received(self, link: Link, payload: wl.JsonValue) -> None:
        self.payloads.append(payload)
        self.signal.pulse()

    async def suspended(self, link: Link) -> None:
        self.suspends.append(link.token)
        self.signal.pulse()

    async def closed(self, link: Link, *, formal: bool, unacked: tuple[wl.JsonValue, ...]) -> None:
        self.links.pop(link.token, None)
        self.ends.append((link.token, formal))
        self.signal.pulse()


@dataclass
class Transport:
    """A coordinator whose links are recorded (no session logic), and a cuttable proxy to it."""

    server: TestServer
    hub: LinkHub
    recorder: Recorder
    signal: Signal
    proxy: CutProxy
    proxy_port: int
    store: Store
    credential: str
    admin: str

    @property
    def direct_url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/link"

    @property
    def proxied_url(self) -> str:
        return f"ws://127.0.0.1:{self.proxy_port}/link"
