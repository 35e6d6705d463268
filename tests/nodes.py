"""Coordinator processes for the tests that need several: `serve` nodes on loopback, their REST
API, an admin credential made with the CLI, and the client socket's ask/reply. Shared by the
scale-out and split-mode tests."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]
WAIT = 20.0


class Node:
    """One `burnstand-coordinator serve` process; its stderr is kept for failure messages."""

    def __init__(
        self, data: Path, *args: str, host: str = "127.0.0.1", prefix: Sequence[str] = ()
    ) -> None:
        """``host`` is the address it listens on; ``prefix`` runs it inside something else
        (``ip netns exec HOST`` for a test's own network namespaces)."""
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        self.log = data.parent / f"node-{self.port}.log"
        data.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(
            [
                *prefix,
                sys.executable,
                "-m",
                "coordinator.cli",
                "serve",
                "--data",
                str(data),
                "--host",
                host,
                "--port",
                str(self.port),
                *args,
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )

    async def health(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        """The node's health once it answers (it may still be binding its port)."""
        for _ in range(400):
            if self.proc.poll() is not None:
                raise AssertionError(self.log.read_text())
            try:
                async with http.get(self.url + "/api/v1/health") as resp:
                    body: dict[str, Any] = await resp.json()
                    return body
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)  # poll backoff while the process binds its port
        raise AssertionError(f"node did not come up: {self.log.read_text()}")

    async def until_health(self, http: aiohttp.ClientSession, key: str, value: object) -> None:
        for _ in range(400):
            if (await self.health(http)).get(key) == value:
                return
            await asyncio.sleep(0.05)  # poll backoff between bounded health checks
        raise AssertionError(f"health never had {key}={value}: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=WAIT)
        self._log.close()


async def api(
    http: aiohttp.ClientSession,
    node: Node,
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
) -> Any:
    """One REST call that must succeed; its JSON body."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, node.url + "/api/v1" + path, json=body, headers=headers) as r:
        out = await r.json(content_type=None)
        assert r.status < 300, (path, r.status, out)
        return out


def admin_token(data: Path) -> str:
    """An admin credential, made with `burnstand-coordinator admin create` as an operator does."""
    return _cli(
        "admin", "create", "--data", str(data), "--name", "Ada", "--email", "ada@example.org"
    )


def appliance_token(data: Path, show: int, name: str) -> str:
    """A kiosk's credential in `show`, made with `burnstand-coordinator appliance create`."""
    return _cli("appliance", "create", "--data", str(data), "--show", str(show), "--name", name)


def _cli(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "coordinator.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=WAIT,
    )
    return out.stdout.strip()


async def until(ws: aiohttp.ClientWebSocketResponse, action: str) -> dict[str, Any]:
    """The next frame of `action` on a client socket (pushes in between are skipped; bounded)."""
    for _ in range(50):
        msg = await ws.receive(timeout=WAIT)
        assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
        frame: dict[str, Any] = json.loads(msg.data)
        if frame.get("action") == action:
            return frame
    raise AssertionError(f"no {action} frame")


async def ask(ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> dict[str, Any]:
    """Send a command frame and return its reply."""
    await ws.send_str(json.dumps(frame))
    return await until(ws, str(frame["action"]))
