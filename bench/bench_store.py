"""REST throughput of the coordinator on PostgreSQL against the embedded SQLite file, same run.

Two `burnstand-coordinator serve` processes are started one after the other on this host, the
first on SQLite (the baseline), the second on a PostgreSQL server (Debian's, in a temp dir). Each
is given the same catalog, then 50 concurrent clients run the REST mix for a fixed time: join
(a contributor enters the system), list sessions, create a take, create a session (and leave it,
so the master never fills up). The figure is requests per second; the target is PostgreSQL at
**>= 0.7x** SQLite. PostgreSQL runs with `synchronous_commit = off`, which is what SQLite's WAL
with `synchronous = NORMAL` gives: a commit survives the process dying, not a power cut.

    .venv/bin/python bench/bench_store.py
    BENCH_SECONDS=5 BENCH_CLIENTS=20 .venv/bin/python bench/bench_store.py   # quick look
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from pgserver import (  # noqa: E402  # the tests' PostgreSQL starter, shared
    LIKE_SQLITE_NORMAL,
    PostgresMissing,
    loopback_port,
    remove_postgres,
    start_postgres,
)

CLI = [sys.executable, "-m", "coordinator.cli"]
SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "50"))
TARGET = 0.7
MD5 = "cd" * 16
SHA = "ab" * 32


def _env(database: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "BURNSTAND_DATABASE"}
    if database:
        env["BURNSTAND_DATABASE"] = database
    return env


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes used so far (0 for any that is gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def _database_pids() -> list[int]:
    """The PostgreSQL server's processes (this host runs only the benchmark's own)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@contextmanager
def coordinator(data: Path, database: str | None) -> Iterator[tuple[str, str, int]]:
    """A serve process; yields its base URL, an admin credential and its pid."""
    admin = subprocess.run(
        [*CLI, "admin", "create", "--data", str(data), "--name", "B", "--email", "b@e.org"],
        env=_env(database),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = loopback_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--data", str(data), "--port", str(port), "--log-level", "warning"],
        env=_env(database),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None  # PIPE was asked for
        for _ in range(200):  # bounded: the ready line comes within a few lines
            line = proc.stderr.readline()
            if not line or "listening on" in line:
                break
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}")
        # The server's warnings and errors stay visible, and its pipe never fills up.
        threading.Thread(
            target=shutil.copyfileobj, args=(proc.stderr, sys.stderr), daemon=True
        ).start()
        yield f"http://127.0.0.1:{port}/api/v1", admin, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def _call(
    http: aiohttp.ClientSession, method: str, url: str, token: str | None, body: Any = None
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, json=body, headers=headers) as resp:
        if resp.status >= 300:
            raise RuntimeError(f"{method} {url}: {resp.status} {await resp.text()}")
        return await resp.json(content_type=None) if resp.status != 204 else None


async def _world(http: aiohttp.ClientSession, base: str, admin: str) -> dict[str, Any]:
    show = (await _call(http, "POST", f"{base}/shows", admin, {"name": "S", "asset_root": "/s"}))[
        "id"
    ]
    sa = await _call(
        http, "POST", f"{base}/shows/{show}/admins", admin, {"name": "A", "email": "sa@e.org"}
    )
    show_admin = await _join(http, base, show, "sa@e.org", sa["secret"])
    people = []
    for i in range(CLIENTS):
        person = await _call(
            http,
            "POST",
            f"{base}/shows/{show}/contributors",
            show_admin,
            {"name": f"p{i}", "email": f"p{i}@e.org"},
        )
        people.append((f"p{i}@e.org", person["secret"]))
    first = await _join(http, base, show, *people[0])
    ep = (await _call(http, "POST", f"{base}/shows/{show}/episodes", show_admin, {"name": "E"}))[
        "id"
    ]
    seq = (await _call(http, "POST", f"{base}/episodes/{ep}/sequences", show_admin, {"name": "Q"}))[
        "id"
    ]
    shot = (await _call(http, "POST", f"{base}/sequences/{seq}/shots", first, {"name": "D"}))["id"]
    return {"show": show, "people": people, "episode": ep, "shot": shot}


async def _join(http: aiohttp.ClientSession, base: str, show: int, email: str, secret: str) -> str:
    body = {"user": email, "show": show, "secret": secret, "duration": 3600}
    return str((await _call(http, "POST", f"{base}/join", None, body))["credential"])


async def _mix(base: str, admin: str, pid: int) -> float:
    """Requests per second of the REST mix with CLIENTS concurrent clients; prints the CPU
    time each request cost the coordinator and the database server (steadier than the rate
    on a busy machine)."""
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(connector=connector) as http:
        world = await _world(http, base, admin)
        tokens = [await _join(http, base, world["show"], *p) for p in world["people"]]
        done = 0
        spent = [0.0] * 4  # seconds per kind of request, to see which one is slow
        stop = time.monotonic() + SECONDS

        async def client(i: int) -> None:
            nonlocal done
            token = tokens[i]
            for step in range(10**9):  # bounded by the clock below
                if time.monotonic() >= stop:
                    return
                kind = step % 4
                began = time.monotonic()
                if kind == 0:
                    token = await _join(http, base, world["show"], *world["people"][i])
                elif kind == 1:
                    await _call(http, "GET", f"{base}/sessions?limit=20", token)
                elif kind == 2:
                    # No URL: a take with one has the coordinator fetch its image at once,
                    # which is not what this measures (and this host reaches no outside URL).
                    take = {
                        "name": f"t-{secrets.token_hex(8)}.iso",
                        "size": 10,
                        "sha256": SHA,
                        "md5": MD5,
                    }
                    await _call(http, "POST", f"{base}/shots/{world['shot']}/takes", token, take)
                else:
                    made = await _call(
                        http,
                        "POST",
                        f"{base}/sessions",
                        token,
                        {"name": "b", "episode_id": world["episode"]},
                    )
                    await _call(http, "POST", f"{base}/sessions/{made['id']}/leave", token)
                    done += 1
                done += 1
                spent[kind] += time.monotonic() - began

        # Per process: the pool opens more connections (server processes) as the load grows.
        db_before = {p: _cpu_seconds([p]) for p in _database_pids()}
        coord_before = _cpu_seconds([pid])
        started = time.monotonic()
        await asyncio.gather(*(client(i) for i in range(CLIENTS)))
        rate = done / (time.monotonic() - started)
        coord_ms = (_cpu_seconds([pid]) - coord_before) / done * 1000
        db_cpu = sum(_cpu_seconds([p]) - db_before.get(p, 0.0) for p in _database_pids())
        db_ms = db_cpu / done * 1000
        print(f"    CPU per request: coordinator {coord_ms:.2f} ms, database server {db_ms:.2f} ms")
        total = sum(spent) or 1.0
        names = ("join", "list sessions", "create take", "create+leave session")
        print(
            "    share of client time: "
            + ", ".join(f"{name} {t / total:.0%}" for name, t in zip(names, spent, strict=True))
        )
        return rate


def main() -> int:
    try:
        server = start_postgres(LIKE_SQLITE_NORMAL)
    except PostgresMissing as exc:
        print(f"bench_store: {exc}", file=sys.stderr)
        return 1
    try:
        with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
            root = Path(tmp)
            with coordinator(root / "sqlite", None) as (base, admin, pid):
                sqlite_rps = asyncio.run(_mix(base, admin, pid))
            database = server.new_database()
            with coordinator(root / "pg", database) as (base, admin, pid):
                pg_rps = asyncio.run(_mix(base, admin, pid))
    finally:
        remove_postgres(server)
    ratio = pg_rps / sqlite_rps
    print(f"REST mix, {CLIENTS} clients, {SECONDS:g} s each:")
    print(f"  SQLite (embedded)  {sqlite_rps:8.1f} req/s   (baseline)")
    verdict = "ok" if ratio >= TARGET else f"below the {TARGET}x target"
    print(f"  PostgreSQL         {pg_rps:8.1f} req/s   {ratio:.2f}x  {verdict}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
