"""The README's demo: a coordinator on the embedded SQLite default, seeded with a show to burn.

`make demo` runs `python -m coordinator.demo --data demo-data`. On the first run it creates an
admin, generates a few small images and enters them in a show's catalog through the coordinator's
own REST API (the path a real operator takes, so the demo exercises it); later runs reuse the
same folder. It prints the URLs and credentials a visitor needs and stops cleanly on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from coordinator import __version__
from coordinator.app import make_app
from coordinator.config import CoordinatorConfig
from coordinator.store import Store
from coordinator.store.people import create_admin

STATE_FILE = "demo.json"
IMAGES_ROUTE = "/demo-images/"


@dataclass(frozen=True)
class DemoImage:
    name: str
    size: int
    notes: str


IMAGES = (
    DemoImage("burnstand-demo-live-amd64.iso", 3 * 1024 * 1024, "Live image, fits a CD-R"),
    DemoImage("burnstand-demo-server-arm64.img", 5 * 1024 * 1024, "SD card image for a Pi"),
    DemoImage("burnstand-demo-docs.iso", 1024 * 1024, "Offline documentation disc"),
)


def _generate(path: Path, size: int) -> tuple[str, str]:
    """Write a deterministic pseudo-random image and return its (sha256, md5)."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    block = hashlib.sha512(path.name.encode()).digest() * 2048  # 128 KiB, differs per image
    with path.open("wb") as out:
        left = size
        while left:
            chunk = block[: min(left, len(block))]
            out.write(chunk)
            sha.update(chunk)
            md5.update(chunk)
            left -= len(chunk)
    return sha.hexdigest(), md5.hexdigest()


async def _create_admin(data: Path) -> str:
    store = Store(data / "coordinator.db", read_threads=1)
    await store.open()
    try:
        return await store.write(
            lambda c: create_admin(c, time.time(), "demo", "Demo Admin", "admin@demo.invalid")
        )
    finally:
        await store.close()


class _Api:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base

    async def post(self, path: str, token: str | None, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.post(self.base + path, json=body, headers=headers) as resp:
            payload: dict[str, Any] = await resp.json(content_type=None)
            if resp.status >= 400:
                raise RuntimeError(f"POST {path}: {resp.status} {payload.get('detail', payload)}")
            return payload


async def _seed(data: Path, base: str) -> dict[str, Any]:
    """First run only: an admin, a show with its catalog, a show admin and a contributor."""
    admin = await _create_admin(data)
    images = data / "images"
    async with aiohttp.ClientSession() as http:
        api = _Api(http, base + "/api/v1")
        show = await api.post(
            "/shows", admin, {"name": "burnstand demo", "asset_root": f"file://{images}/"}
        )
        sam = await api.post(
            f"/shows/{show['id']}/admins",
            admin,
            {"name": "Sam Showadmin", "email": "sam@demo.invalid"},
        )
        sam_cred = await api.post(
            "/join",
            None,
            {
                "user": "sam@demo.invalid",
                "show": show["id"],
                "duration": 3600,
                "secret": sam["secret"],
            },
        )
        episode = await api.post(
            f"/shows/{show['id']}/episodes", sam_cred["credential"], {"name": "1.0"}
        )
        sequence = await api.post(
            f"/episodes/{episode['id']}/sequences", sam_cred["credential"], {"name": "Demo"}
        )
        cleo = await api.post(
            f"/shows/{show['id']}/contributors",
            sam_cred["credential"],
            {"name": "Cleo Contributor", "email": "cleo@demo.invalid"},
        )
        cleo_cred = await api.post(
            "/join",
            None,
            {
                "user": "cleo@demo.invalid",
                "show": show["id"],
                "duration": 3600,
                "secret": cleo["secret"],
            },
        )
        takes = []
        for image in IMAGES:
            path = images / image.name
            sha256, md5 = await asyncio.to_thread(_generate, path, image.size)
            shot = await api.post(
                f"/sequences/{sequence['id']}/shots",
                cleo_cred["credential"],
                {"name": image.name, "direction_notes": image.notes},
            )
            take = await api.post(
                f"/shots/{shot['id']}/takes",
                cleo_cred["credential"],
                {
                    "name": image.name,
                    "size": image.size,
                    "sha256": sha256,
                    "md5": md5,
                    "url": base + IMAGES_ROUTE + image.name,
                },
            )
            takes.append({"id": take["id"], "name": image.name, "sha256": sha256})
    state = {
        "admin_credential": admin,
        "show_id": show["id"],
        "show_admin": {"email": "sam@demo.invalid", "secret": sam["secret"]},
        "contributor": {"email": "cleo@demo.invalid", "secret": cleo["secret"]},
        "takes": takes,
    }
    state_path = data / STATE_FILE
    state_path.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    state_path.chmod(0o600)  # it holds credentials
    return state


def _banner(base: str, data: Path, state: dict[str, Any]) -> str:
    lines = [
        "",
        f"burnstand demo {__version__} is running.",
        f"  coordinator API   {base}/api/v1/  (health: {base}/api/v1/health)",
        f"  OpenAPI document  {base}/api/v1/openapi.json",
        f"  data folder       {data}  (SQLite: {data / 'coordinator.db'})",
        f"  admin credential  {state['admin_credential']}",
        f"  demo show         id {state['show_id']} with {len(state['takes'])} images:",
        *(f"                      take {t['id']}: {t['name']}" for t in state["takes"]),
        "",
        "Try it:",
        f"  curl -s {base}/api/v1/shows -H 'Authorization: Bearer {state['admin_credential']}'",
        f"Credentials and secrets are in {data / STATE_FILE}. Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


async def run(data: Path, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve until `stop` is set; `data` must exist and be absolute."""
    config = CoordinatorConfig(data_dir=data, host=host, port=port)
    app = make_app(config)
    # The demo's takes point here until images are uploaded to the coordinator's own store.
    app.router.add_static(IMAGES_ROUTE, data / "images")
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        base = f"http://{host}:{port}"
        state_path = data / STATE_FILE
        if state_path.exists():
            state = json.loads(state_path.read_text(encoding="utf-8"))
        else:
            state = await _seed(data, base)
        print(_banner(base, data, state), flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m coordinator.demo",
        description="Run the burnstand demo: a coordinator on the embedded SQLite default.",
    )
    parser.add_argument("--data", type=Path, default=Path("demo-data"), help="data folder")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("BURNSTAND_DEMO_PORT", "8080"))
    )
    args = parser.parse_args(argv)
    data: Path = args.data.resolve()
    (data / "images").mkdir(parents=True, exist_ok=True)

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(data, args.host, args.port, stop)

    try:
        asyncio.run(_main())
    except OSError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    with contextlib.suppress(Exception):
        print("demo stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
