"""The relay under benchmark: `python -m relaylib.relayserve --mode embedded|split`.

Started by `bench/bench_relay.py` (see bench/README-relay.md). It provisions a throw-away data
directory (an admin credential, a show, two live sessions), runs the real coordinator app —
embedded (balancer and master in this process) or split (this process is the balancer; a child
process started with `--mode master` is the session master, reached over the relay WebSocket) —
and prints the one ready line. The master answers frames that are not browser commands with the
benchmark's workloads: in the echo session it sends the frame back to its sender, in the room
session it broadcasts it. Everything else (auth-first, credential check, envelopes, batching,
send queues) is the production path. Exits on SIGTERM or when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from coordinator.app import make_app
from coordinator.balancer.host import HostLink
from coordinator.config import CoordinatorConfig
from coordinator.keys import STORE
from coordinator.live import LIVE
from coordinator.store.catalog import add_show
from coordinator.store.people import create_admin

ECHO_ROOM = "bench-echo"
BROADCAST_ROOM = "bench-room"
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def workload(
    hl: HostLink, room: str, conn_id: str, message: dict[str, Any], raw: str | None
) -> None:
    text = raw if raw is not None else _dumps(message)
    if room == BROADCAST_ROOM:
        hl.link.broadcast(room, text)
    else:
        hl.link.to_client(room, conn_id, text)


def _provision(conn: Any, master_url: str) -> str:
    now = time.time()
    token = create_admin(conn, now, "bench", "Bench", "bench@example.org")
    show = add_show(conn, now, "bench", {"name": "bench", "asset_root": "/b"})["id"]
    conn.execute("INSERT INTO episodes (show_id, name, created_at) VALUES (?, 'e', ?)", (show, now))
    episode = conn.execute("SELECT id FROM episodes WHERE show_id = ?", (show,)).fetchone()[0]
    master = conn.execute("SELECT id FROM masters WHERE url = ?", (master_url,)).fetchone()[0]
    for sid in (ECHO_ROOM, BROADCAST_ROOM):
        conn.execute(
            "INSERT INTO sessions (id, name, show_id, episode_id, master_id, state, created_at) "
            "VALUES (?, ?, ?, ?, ?, 'live', ?)",
            (sid, sid, show, episode, master, now),
        )
    return token


async def _until_stopped() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def stdin_closed() -> None:
        while await reader.read(4096):
            pass
        stop.set()

    watcher = asyncio.create_task(stdin_closed())
    await stop.wait()
    watcher.cancel()


async def _start(config: CoordinatorConfig) -> tuple[web.Application, web.AppRunner]:
    app = make_app(config)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.host, config.port).start()
    return app, runner


async def run_master(data: Path, port: int, master_port: int) -> None:
    config = CoordinatorConfig(
        data_dir=data,
        port=port,
        role="master",
        master_port=master_port,
        register_local_master=False,
    )
    app, runner = await _start(config)
    host = app[LIVE].host
    assert host is not None
    host.fallback = workload
    print("ready", flush=True)
    try:
        await _until_stopped()
    finally:
        await runner.cleanup()


async def run(mode: str) -> None:
    with tempfile.TemporaryDirectory(prefix="burnstand-bench-") as tmp:
        data = Path(tmp)
        port = _free_port()
        pids: list[int] = []
        child: asyncio.subprocess.Process | None = None
        if mode == "embedded":
            config = CoordinatorConfig(data_dir=data, port=port)
            app, runner = await _start(config)
            live = app[LIVE]
            assert live.host is not None
            live.host.fallback = workload
            master_url = live.master_url
        else:
            master_port = _free_port()
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "relaylib.relayserve",
                "--mode",
                "master",
                "--data",
                str(data),
                "--port",
                str(_free_port()),
                "--master-port",
                str(master_port),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 60)
            if line.strip() != b"ready":
                raise SystemExit(f"bench master did not start: {line!r}")
            pids.append(child.pid)
            master_url = f"http://127.0.0.1:{master_port}"
            config = CoordinatorConfig(
                data_dir=data,
                port=port,
                role="balancer",
                register_local_master=False,
                discovery_interval=0.2,
            )
            app, runner = await _start(config)
        token = await app[STORE].write(lambda conn: _provision(conn, master_url))
        if mode != "embedded":
            connector = app[LIVE].connector
            assert connector is not None
            for _ in range(600):
                if connector.connected:
                    break
                await asyncio.sleep(0.05)
        hello = [json.dumps({"action": "auth", "token": token})]
        base = f"ws://127.0.0.1:{port}/ws/"
        endpoints = {
            "echo": {"url": base + ECHO_ROOM, "hello": hello},
            "broadcast": {"url": base + BROADCAST_ROOM, "hello": hello},
            "idle": {"url": base + ECHO_ROOM, "hello": hello},
        }
        print(json.dumps({"bench_ready": 1, "endpoints": endpoints, "pids": pids}), flush=True)
        try:
            await _until_stopped()
        finally:
            await runner.cleanup()
            if child is not None:
                with contextlib.suppress(ProcessLookupError):
                    child.terminate()
                await child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="relayserve")
    parser.add_argument("--mode", choices=("embedded", "split", "master"), required=True)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--port", type=int)
    parser.add_argument("--master-port", type=int)
    args = parser.parse_args()
    if args.mode == "master":
        asyncio.run(run_master(args.data, args.port, args.master_port))
    else:
        asyncio.run(run(args.mode))


if __name__ == "__main__":
    main()
