"""The appliance-link load generator, run as its own process:
`python -m relaylib.linkgen '<LinkSpec JSON>'`.

Each link is what an agent opens (appliance/link.py) reduced to what the memory figure needs: a
WebSocket to the coordinator's `/link` with an appliance credential as `Authorization: Bearer`,
the token-merge handshake driven by `wire.link.LinkNode`, the agent's `hello` (no drives) sent
once the coordinator's first message arrived, and then nothing but acks. A link counts as idle
once the coordinator has acknowledged its hello, which also means the coordinator has read every
frame the link sent. Each link keeps a reader so heartbeat pings are answered. It speaks the same
lines as loadgen.py: warm-up links (opened, settled, closed), `READY`, `GO`, open the measured
links, `DONE`, hold them until `CLOSE`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSMsgType

from wire import agentmsg as am
from wire import link as wl

from .errors import LoadGenError
from .links import LinkSpec
from .loadgen import _CLOSED, Commands, _say, _stdin_commands, close_all, run_generator
from .procstat import raise_nofile_limit

MAX_SETTLE_FRAMES = 1_000
MAX_HELD_FRAMES = 1_000_000


class IdleLink:
    """One appliance link: its socket, its `LinkNode`, and what arrived on it."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, index: int) -> None:
        self.ws = ws
        self.index = index
        self.node = wl.LinkNode(wl.Role.CLIENT)
        self.connected = False
        self.messages = 0
        self.lost: str | None = None
        self.reader: asyncio.Task[None] | None = None

    async def send(self, frames: Iterable[str]) -> None:
        for frame in frames:
            await self.ws.send_str(frame)

    def _feed(self, text: str) -> None:
        for event in self.node.receive(text):
            if isinstance(event, wl.Connected):
                self.connected = True
            elif isinstance(event, wl.Message):
                self.messages += 1
            elif isinstance(event, wl.ProtocolViolation | wl.Refused | wl.Disconnected):
                raise LoadGenError(f"link {self.index}: the coordinator's side said {event!r}")

    async def settle(self, done: Callable[[], bool], what: str, wait_s: float) -> None:
        """Read and answer frames until `done()`; a close or `wait_s` of silence is an error."""
        for _ in range(MAX_SETTLE_FRAMES):
            if done():
                return
            try:
                msg = await self.ws.receive(timeout=wait_s)
            except TimeoutError:
                raise LoadGenError(
                    f"link {self.index}: nothing for {wait_s:g} s before {what}"
                ) from None
            if msg.type in _CLOSED:
                raise LoadGenError(
                    f"link {self.index}: closed ({self.ws.close_code} {msg.extra!r}) before {what}"
                )
            if msg.type is WSMsgType.TEXT:
                self._feed(str(msg.data))
                await self.send(self.node.data_to_send())
        raise LoadGenError(f"link {self.index}: {MAX_SETTLE_FRAMES} frames without {what}")

    async def hold(self) -> None:
        """Stay idle: answer pings (aiohttp does, inside `receive`) and ack what arrives."""
        try:
            for _ in range(MAX_HELD_FRAMES):
                msg = await self.ws.receive()
                if msg.type in _CLOSED:
                    self.lost = f"closed by the coordinator ({self.ws.close_code})"
                    return
                if msg.type is WSMsgType.TEXT:
                    self._feed(str(msg.data))
                    await self.send([*self.node.data_to_send(), *self.node.pending_ack()])
        except (LoadGenError, ConnectionError) as exc:
            self.lost = str(exc)


def hello_payload(index: int) -> wl.JsonValue:
    """The agent's hello of an appliance with no drives (an idle kiosk between burns)."""
    payload: wl.JsonValue = am.Hello(am.ApplianceInfo(f"bench-link-{index}", "bench"), ()).to_json()
    return payload


async def open_link(
    session: aiohttp.ClientSession, spec: LinkSpec, token: str, index: int
) -> IdleLink:
    """Connect, handshake, and send the hello once the coordinator's first message is in."""
    try:
        ws = await session.ws_connect(
            spec.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
            autoping=True,
        )
    except aiohttp.WSServerHandshakeError as exc:
        raise LoadGenError(f"link {index} refused: HTTP {exc.status} {exc.message}") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise LoadGenError(f"link {index} could not connect: {exc!r}") from exc
    link = IdleLink(ws, index)
    try:
        await link.send(link.node.start())
        await link.settle(
            lambda: link.connected and link.messages > 0,
            "the handshake and the first message",
            spec.reply_timeout_s,
        )
        # Its data frame carries the ack of everything received so far.
        await link.send(link.node.send(hello_payload(index)))
    except BaseException:
        await ws.close()
        raise
    return link


async def open_all(
    session: aiohttp.ClientSession, spec: LinkSpec, tokens: list[str], indices: range
) -> list[IdleLink]:
    """Open links `indices` (a bounded number connecting at a time) and let each go idle."""
    gate = asyncio.Semaphore(spec.concurrency)
    opened: list[IdleLink] = []

    async def one(index: int) -> None:
        async with gate:
            link = await open_link(session, spec, tokens[index], index)
        opened.append(link)
        # Outside the gate: the coordinator acks on its timer, and waiting for that must not
        # hold up the next connects.
        await link.settle(lambda: not link.node.unacked, "the ack of its hello", spec.ack_wait_s)
        await link.send(link.node.pending_ack())
        # Reading from here on: the coordinator's heartbeat pings must be answered while the
        # other links are still connecting.
        link.reader = asyncio.create_task(link.hold())

    try:
        async with asyncio.TaskGroup() as group:
            for i in indices:
                group.create_task(one(i))
    except BaseException:
        await close_links(opened)
        raise
    return opened


async def close_links(links: list[IdleLink]) -> None:
    readers = [link.reader for link in links if link.reader is not None]
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    await close_all([link.ws for link in links])


def read_tokens(path: Path, needed: int) -> list[str]:
    tokens = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(tokens) < needed:
        raise LoadGenError(f"{path} holds {len(tokens)} credentials, {needed} needed")
    return tokens


async def run(spec: LinkSpec, commands: Commands) -> None:
    tokens = read_tokens(Path(spec.tokens_file), spec.warm + spec.links)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm-up links land their one-time costs (imports, caches) before the "before" reading.
        warm = await open_all(session, spec, tokens, range(spec.warm))
        await close_links(warm)
        _say("READY", {"warm": len(warm)})
        await commands.expect("GO")
        links: list[IdleLink] = []
        try:
            started = time.perf_counter()
            links = await open_all(session, spec, tokens, range(spec.warm, spec.warm + spec.links))
            elapsed = time.perf_counter() - started
            lost = [link.lost for link in links if link.lost is not None]
            _say(
                "DONE",
                {
                    "connected": len(links),
                    "lost": len(lost),
                    "first_loss": lost[0] if lost else None,
                    "elapsed_s": elapsed,
                },
            )
            await commands.expect("CLOSE")
        finally:
            await close_links(links)


async def amain(spec: LinkSpec) -> None:
    commands, transport = await _stdin_commands()
    try:
        await asyncio.wait_for(run(spec, commands), timeout=spec.seconds)
    finally:
        transport.close()


def _prepare(text: str) -> Coroutine[Any, Any, None]:
    spec = LinkSpec.from_json(text)
    raise_nofile_limit(spec.warm + spec.links + 256)
    return amain(spec)


def main(argv: list[str] | None = None) -> int:
    return run_generator("relaylib.linkgen", argv, _prepare)


if __name__ == "__main__":
    sys.exit(main())
