"""The baseline servers the relay is measured against, each run as its own process:
`python -m relaylib.servers echo|broadcast|idle`. They are the plainest aiohttp code that does the
job (no auth, no envelopes, default asyncio loop, like the coordinator) so a ratio against them
shows what the relay costs on top of aiohttp itself. Each binds 127.0.0.1 port 0, prints its ready
line (see protocol.py) and serves until SIGTERM, stdin closing, or `--max-seconds`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import stat
import sys
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from .procstat import raise_nofile_limit
from .protocol import Endpoint, ready_line

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_SOCKETS = web.AppKey("open_sockets", set[web.WebSocketResponse])
ROOMS = web.AppKey("rooms", dict[str, set[web.WebSocketResponse]])
CLOSE_TIMEOUT_S = 3.0


async def _open(request: web.Request) -> web.WebSocketResponse:
    # compress=False: permessage-deflate is not what we measure (the generator never offers it).
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    request.app[OPEN_SOCKETS].add(ws)
    return ws


async def echo_handler(request: web.Request) -> web.StreamResponse:
    ws = await _open(request)
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
    finally:
        request.app[OPEN_SOCKETS].discard(ws)
    return ws


async def broadcast_handler(request: web.Request) -> web.StreamResponse:
    """A room: whatever one member sends goes to every other member, one send after another."""
    ws = await _open(request)
    room = request.app[ROOMS].setdefault(request.match_info["room"], set())
    room.add(ws)
    try:
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            data = msg.data
            # A copy: members may join or leave while a send awaits the socket.
            for peer in tuple(room):
                if peer is not ws and not peer.closed:
                    with contextlib.suppress(ConnectionResetError):
                        await peer.send_str(data)
    finally:
        room.discard(ws)
        request.app[OPEN_SOCKETS].discard(ws)
    return ws


async def idle_handler(request: web.Request) -> web.StreamResponse:
    """Accept and hold: what an idle client connection costs the server and nothing more."""
    ws = await _open(request)
    try:
        async for _msg in ws:
            pass
    finally:
        request.app[OPEN_SOCKETS].discard(ws)
    return ws


HANDLERS: dict[str, Handler] = {
    "echo": echo_handler,
    "broadcast": broadcast_handler,
    "idle": idle_handler,
}


def build_app(kind: str) -> web.Application:
    app = web.Application()
    app[OPEN_SOCKETS] = set()
    app[ROOMS] = {}
    app.router.add_get("/ws/{room}", HANDLERS[kind])
    return app


async def _close_all(app: web.Application) -> None:
    open_sockets = app[OPEN_SOCKETS]
    sockets = [*open_sockets]
    if sockets:
        await asyncio.wait(
            [asyncio.ensure_future(ws.close(code=1001)) for ws in sockets],
            timeout=CLOSE_TIMEOUT_S,
        )


async def _watch_stdin(stop: asyncio.Event) -> None:
    """Stop when the harness goes away (its end of our stdin closes), so no server is orphaned."""
    mode = os.fstat(sys.stdin.fileno()).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        # Run by hand (a terminal, /dev/null): nothing to watch; SIGTERM/SIGINT still stop us.
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    try:
        # Bounded: the harness never writes to a server's stdin, so this ends at EOF.
        for _ in range(1_000_000):
            if not await reader.read(4096):
                break
    finally:
        transport.close()
        stop.set()


async def serve(kind: str, max_seconds: float) -> None:
    app = build_app(kind)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    # A deep backlog so a burst of 1,000 connects is not dropped and retried a second later.
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096, shutdown_timeout=1.0)
    await site.start()
    port = int(runner.addresses[0][1])
    endpoint = Endpoint(f"ws://127.0.0.1:{port}/ws/{kind}")
    print(ready_line({kind: endpoint}), flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_watch_stdin(stop))
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max_seconds)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await _close_all(app)
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=sorted(HANDLERS))
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--max-conns", type=int, default=20_000)
    args = parser.parse_args(argv)
    raise_nofile_limit(args.max_conns + 256)
    asyncio.run(serve(args.kind, args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
