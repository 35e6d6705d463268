"""The load generator, run as its own process: `python -m relaylib.loadgen '<LoadSpec JSON>'`.

Keeping it out of the server's process (and out of the harness) is what makes the server's CPU
per message readable from /proc. It speaks the line protocol in protocol.py: connect and warm up,
`READY`, wait for `GO`, run the bounded workload, `DONE` with counts and latencies, wait for
`CLOSE`. uvloop is used when importable (it makes the generator, not the server, faster)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import math
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
from aiohttp import WSMsgType

from .errors import BenchError, LoadGenError
from .procstat import raise_nofile_limit
from .protocol import LoadSpec, make_message, message_ids, percentile

COMMAND_TIMEOUT_S = 300.0
CLOSE_TIMEOUT_S = 10.0
MAX_FOREIGN_FRAMES = 10_000
_CLOSED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)

Ws = aiohttp.ClientWebSocketResponse


def loop_factory() -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """uvloop's loop when it is installed, else asyncio's; and the name to report."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return "asyncio", None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return "uvloop", factory


def _say(word: str, body: dict[str, Any]) -> None:
    sys.stdout.write(f"{word} {json.dumps(body)}\n")
    sys.stdout.flush()


class Commands:
    """Lines the harness writes to our stdin."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    async def expect(self, word: str) -> None:
        try:
            line = await asyncio.wait_for(self._reader.readline(), COMMAND_TIMEOUT_S)
        except TimeoutError as exc:
            raise LoadGenError(f"no {word} from the harness in {COMMAND_TIMEOUT_S:.0f} s") from exc
        if line.strip().decode() != word:
            raise LoadGenError(f"expected {word} from the harness, got {line[:80]!r}")


async def _stdin_commands() -> tuple[Commands, asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    return Commands(reader), transport


async def _receive(ws: Ws, what: str, wait_s: float) -> str | None:
    """The next text frame, or None for a non-text frame we ignore; closing is an error."""
    try:
        msg = await ws.receive(timeout=wait_s)
    except TimeoutError as exc:
        raise LoadGenError(f"no frame in {wait_s:g} s while waiting for {what}") from exc
    if msg.type is WSMsgType.TEXT:
        return str(msg.data)
    if msg.type in _CLOSED:
        raise LoadGenError(f"connection closed ({msg.type.name} {msg.data!r}) waiting for {what}")
    return None


async def connect_all(session: aiohttp.ClientSession, spec: LoadSpec, indices: range) -> list[Ws]:
    """Open one WebSocket per index (a bounded number at a time) and send its hello frames."""
    gate = asyncio.Semaphore(spec.connect_concurrency)

    async def one(index: int) -> Ws:
        async with gate:
            try:
                ws = await session.ws_connect(
                    spec.endpoint.url_for(index),
                    timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                    autoping=True,
                )
            except (aiohttp.ClientError, OSError) as exc:
                raise LoadGenError(f"client {index} could not connect: {exc!r}") from exc
            for frame in spec.endpoint.hello_for(index):
                await ws.send_str(frame)
            return ws

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(i)) for i in indices]
    return [t.result() for t in tasks]


async def close_all(sockets: list[Ws]) -> None:
    if sockets:
        await asyncio.wait(
            [asyncio.ensure_future(ws.close()) for ws in sockets], timeout=CLOSE_TIMEOUT_S
        )


# ---------------------------------------------------------------- echo


async def _echo_once(ws: Ws, client: int, seq: int, wait_s: float) -> None:
    text = make_message(client, seq)
    await ws.send_str(text)
    for _ in range(MAX_FOREIGN_FRAMES):
        reply = await _receive(ws, f"echo {seq} of client {client}", wait_s)
        # A bare echo returns the very text; a relay may re-serialise or wrap it.
        if reply is not None and (reply == text or message_ids(reply) == (client, seq)):
            return
    raise LoadGenError(f"client {client}: {MAX_FOREIGN_FRAMES} frames without echo {seq}")


async def _warm_up(ws: Ws, client: int, count: int, wait_s: float) -> None:
    # Negative sequence numbers: never confused with a measured message.
    for warm in range(count):
        await _echo_once(ws, client, -1 - warm, wait_s)


async def _echo_client(
    ws: Ws, client: int, count: int, deadline: float, latencies: list[float], wait_s: float
) -> None:
    for seq in range(count):
        if time.monotonic() >= deadline:
            return
        started = time.perf_counter()
        await _echo_once(ws, client, seq, wait_s)
        latencies.append(time.perf_counter() - started)


async def run_echo(session: aiohttp.ClientSession, spec: LoadSpec, commands: Commands) -> None:
    sockets = await connect_all(session, spec, range(spec.clients))
    try:
        async with asyncio.TaskGroup() as group:
            for client, ws in enumerate(sockets):
                group.create_task(_warm_up(ws, client, spec.warmup, spec.reply_timeout_s))
        _say("READY", {"clients": len(sockets)})
        await commands.expect("GO")
        latencies: list[float] = []
        started = time.perf_counter()
        deadline = time.monotonic() + spec.seconds
        async with asyncio.TaskGroup() as group:
            for client, ws in enumerate(sockets):
                group.create_task(
                    _echo_client(
                        ws, client, spec.messages, deadline, latencies, spec.reply_timeout_s
                    )
                )
        elapsed = time.perf_counter() - started
        latencies.sort()
        _say(
            "DONE",
            {
                "messages": len(latencies),
                "elapsed_s": elapsed,
                "p50_s": percentile(latencies, 0.50),
                "p99_s": percentile(latencies, 0.99),
            },
        )
        await commands.expect("CLOSE")
    finally:
        await close_all(sockets)


# ---------------------------------------------------------------- broadcast


class Fanout:
    """Counts deliveries per broadcast message; a message is complete when every receiver has it.

    A receiver that fails records its error and wakes every waiter, so the sender never waits on
    a dead room for longer than it takes to notice.
    """

    def __init__(self, receivers: int, window: int) -> None:
        self.receivers = receivers
        self.window_size = window
        self.window = asyncio.Semaphore(window)
        self.pending: dict[int, int] = {}
        self.sent_at: dict[int, float] = {}
        self.latencies: list[float] = []
        self.deliveries = 0
        self.completed = 0
        self.expected = -1
        self.all_done = asyncio.Event()
        self.warm = asyncio.Event()
        self.error: BaseException | None = None

    def delivered(self, seq: int) -> None:
        if seq < 0:
            # Warm-up message: only says every receiver is subscribed and the path is hot.
            left = self.pending.get(seq, self.receivers) - 1
            self.pending[seq] = left
            if left == 0:
                self.warm.set()
            return
        self.deliveries += 1
        left = self.pending.get(seq, self.receivers) - 1
        if left:
            self.pending[seq] = left
            return
        self.pending.pop(seq, None)
        self.latencies.append(time.perf_counter() - self.sent_at.pop(seq, time.perf_counter()))
        self.completed += 1
        self.window.release()
        if self.completed == self.expected:
            self.all_done.set()

    def sender_finished(self, sent: int) -> None:
        self.expected = sent
        if self.completed == sent:
            self.all_done.set()

    def failed(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.warm.set()
        self.all_done.set()
        for _ in range(self.window_size):
            self.window.release()

    async def wait(self, waiting: Awaitable[object], what: str, wait_s: float) -> None:
        """Await `waiting` for at most `wait_s`; raise if a receiver failed meanwhile."""
        try:
            async with asyncio.timeout(wait_s):
                await waiting
        except TimeoutError:
            raise LoadGenError(
                f"nothing arrived for {wait_s:g} s while waiting for {what}"
            ) from None
        if self.error is not None:
            raise LoadGenError(f"a receiver failed before {what}: {self.error}") from self.error


async def _receiver(ws: Ws, fan: Fanout, sender: int, frames: int, wait_s: float) -> None:
    try:
        for _ in range(frames):
            text = await _receive(ws, "a broadcast", wait_s)
            ids = message_ids(text) if text is not None else None
            if ids is not None and ids[0] == sender:
                fan.delivered(ids[1])
    except LoadGenError as exc:
        fan.failed(exc)


SLOW_RCVBUF = 4096
SLOW_IDLE_S = 2.0


def _small_rcvbuf_socket(addr_info: Any) -> socket.socket:
    """A client socket whose kernel receive buffer stays small, so a reader that stops reading
    pushes back on the server after a few KiB instead of after megabytes of autotuned window."""
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=type_, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
    return sock


async def slow_outcome(
    ws: Ws, budget: int, idle_s: float = SLOW_IDLE_S
) -> tuple[bool, int, int | None]:
    """(did the server close it, frames that had reached it, the close code it sent): read what
    piled up, bounded.

    A slow client never called `receive`, so aiohttp stopped reading its socket once 64 KiB
    were buffered; reading now empties that, the kernel buffers and whatever the server still
    queues, and ends at the server's close or after `idle_s` without a frame (still open).
    """
    frames = 0
    for _ in range(budget):
        try:
            msg = await ws.receive(timeout=idle_s)
        except TimeoutError:
            return False, frames, None
        if msg.type is WSMsgType.CLOSE:
            # The code the server sent; ws.close_code turns 1006 when our reply finds the
            # connection already gone.
            return True, frames, int(msg.data)
        if msg.type in _CLOSED:
            return True, frames, ws.close_code
        frames += 1
    return False, frames, None


WARM_RETRY_S = 1.0


async def warm_up_room(sender: Ws, fan: Fanout, sender_id: int, wait_s: float) -> None:
    """Broadcast warm-up messages until one has reached every receiver.

    A relay admits a member only once it has checked its auth frame, so on a busy machine the
    first warm-up can go out before the last receiver is in the room; another follows each
    second, for at most `wait_s`.
    """
    for attempt in range(max(1, math.ceil(wait_s / WARM_RETRY_S))):
        await sender.send_str(make_message(sender_id, -1 - attempt))
        try:
            async with asyncio.timeout(WARM_RETRY_S):
                await fan.warm.wait()
        except TimeoutError:
            continue
        if fan.error is not None:
            raise LoadGenError(f"a receiver failed during the warm-up: {fan.error}") from fan.error
        return
    raise LoadGenError(f"no warm-up broadcast reached every receiver within {wait_s:g} s")


async def run_broadcast(session: aiohttp.ClientSession, spec: LoadSpec, commands: Commands) -> None:
    receivers = await connect_all(session, spec, range(spec.clients))
    sender_id = spec.clients
    sockets = list(receivers)
    slow: list[Ws] = []
    wait_s = spec.reply_timeout_s
    slow_session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, socket_factory=_small_rcvbuf_socket)
    )
    try:
        sockets += await connect_all(session, spec, range(sender_id, sender_id + 1))
        sender = sockets[-1]
        # Members that join the room and then never read: the broadcasts pile up for them.
        slow = await connect_all(
            slow_session, spec, range(sender_id + 1, sender_id + 1 + spec.slow)
        )
        sockets += slow
        fan = Fanout(spec.clients, spec.window)
        frame_budget = spec.messages + 1 + MAX_FOREIGN_FRAMES
        listeners = [
            asyncio.create_task(_receiver(ws, fan, sender_id, frame_budget, wait_s))
            for ws in receivers
        ]
        try:
            await warm_up_room(sender, fan, sender_id, wait_s)
            _say("READY", {"clients": len(sockets)})
            await commands.expect("GO")
            started = time.perf_counter()
            deadline = time.monotonic() + spec.seconds
            sent = 0
            for seq in range(spec.messages):
                if time.monotonic() >= deadline:
                    break
                await fan.wait(fan.window.acquire(), f"a window slot for {seq}", wait_s)
                fan.sent_at[seq] = time.perf_counter()
                await sender.send_str(make_message(sender_id, seq))
                sent += 1
            fan.sender_finished(sent)
            await fan.wait(fan.all_done.wait(), "the last broadcasts", wait_s)
            elapsed = time.perf_counter() - started
        finally:
            for task in listeners:
                task.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)
        fan.latencies.sort()
        budget = spec.messages + 1 + MAX_FOREIGN_FRAMES
        outcomes = [await slow_outcome(ws, budget) for ws in slow]
        _say(
            "DONE",
            {
                "messages": fan.completed,
                "deliveries": fan.deliveries,
                "elapsed_s": elapsed,
                "p50_s": percentile(fan.latencies, 0.50),
                "p99_s": percentile(fan.latencies, 0.99),
                "slow_closed": sum(1 for closed, _, _ in outcomes if closed),
                "slow_close_codes": [code for _, _, code in outcomes if code is not None],
                "slow_frames": sum(frames for _, frames, _ in outcomes),
            },
        )
        await commands.expect("CLOSE")
    finally:
        await close_all(sockets)
        await slow_session.close()


# ---------------------------------------------------------------- idle


async def run_idle(session: aiohttp.ClientSession, spec: LoadSpec, commands: Commands) -> None:
    # Open and drop a few first, so one-time costs of the first upgrade (lazy imports, buffers)
    # land before the harness's "before" memory reading, not in the per-connection figure.
    warm = await connect_all(session, spec, range(min(spec.clients, 10)))
    await close_all(warm)
    _say("READY", {"clients": 0})
    await commands.expect("GO")
    sockets: list[Ws] = []
    try:
        started = time.perf_counter()
        sockets = await connect_all(session, spec, range(spec.clients))
        _say("DONE", {"connected": len(sockets), "elapsed_s": time.perf_counter() - started})
        await commands.expect("CLOSE")
    finally:
        await close_all(sockets)


RUNNERS = {"echo": run_echo, "broadcast": run_broadcast, "idle": run_idle}


async def amain(spec: LoadSpec) -> None:
    commands, transport = await _stdin_commands()
    connector = aiohttp.TCPConnector(limit=0)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.wait_for(
                RUNNERS[spec.mode](session, spec, commands),
                timeout=spec.seconds + 2 * COMMAND_TIMEOUT_S,
            )
    finally:
        transport.close()


def _flatten(exc: BaseException) -> BaseException:
    # TaskGroup wraps failures; the harness wants the first real one.
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def run_generator(
    module: str, argv: list[str] | None, prepare: Callable[[str], Coroutine[Any, Any, None]]
) -> int:
    """The `main` of a generator process: one spec argument, `prepare` turns it into the run
    (raising the open-file limit it needs first), and any failure becomes one ERROR line."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        _say("ERROR", {"kind": "bench", "message": f"usage: python -m {module} '<spec>'"})
        return 2
    try:
        run = prepare(args[0])
        _name, factory = loop_factory()
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(run)
    except BaseException as exc:  # one ERROR line the harness can quote, whatever it was
        real = _flatten(exc)
        if isinstance(real, KeyboardInterrupt | SystemExit):
            raise
        kind = "bench" if isinstance(real, BenchError) else type(real).__name__
        with contextlib.suppress(OSError):
            _say("ERROR", {"kind": kind, "message": str(real) or repr(real)})
        return 1
    return 0


def _prepare(text: str) -> Coroutine[Any, Any, None]:
    spec = LoadSpec.from_json(text)
    # Each client holds one socket; the margin covers the loop, pipes and stdio.
    raise_nofile_limit(spec.clients + 256)
    return amain(spec)


def main(argv: list[str] | None = None) -> int:
    return run_generator("relaylib.loadgen", argv, _prepare)


if __name__ == "__main__":
    sys.exit(main())
