"""The demo's first run: an admin, generated images entered in a show's catalog through the
coordinator's own REST API (the path a real operator takes), a show admin, a contributor, a
session, and an enrolled kiosk appliance."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from coordinator.store import Store
from coordinator.store.people import create_admin, create_appliance

STATE_FILE = "demo.json"
IMAGES_ROUTE = "/demo-images/"
KIOSK_NAME = "demo kiosk"


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


class Api:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base

    async def post(self, path: str, token: str | None, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.post(self.base + path, json=body, headers=headers) as resp:
            payload: dict[str, Any] = await resp.json(content_type=None)
            if resp.status >= 400:
                raise RuntimeError(f"POST {path}: {resp.status} {payload.get('detail', payload)}")
            return payload


async def seed_demo(data: Path, base: str) -> dict[str, Any]:
    """First run only: an admin, a show with its catalog, a show admin and a contributor."""
    admin = await _create_admin(data)
    images = data / "images"
    async with aiohttp.ClientSession() as http:
        api = Api(http, base + "/api/v1")
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
        # A live session for the demo kiosk to join, so the dashboard has something to show.
        session = await api.post(
            "/sessions",
            cleo_cred["credential"],
            {"name": "Demo booth", "episode_id": episode["id"], "sequence_id": sequence["id"]},
        )
    state = {
        "admin_credential": admin,
        "show_id": show["id"],
        "show_admin": {"email": "sam@demo.invalid", "secret": sam["secret"]},
        "contributor": {"email": "cleo@demo.invalid", "secret": cleo["secret"]},
        "takes": takes,
        "session_id": session["id"],
    }
    state_path = data / STATE_FILE
    state_path.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    state_path.chmod(0o600)  # it holds credentials
    return state


async def enroll_kiosk(data: Path, state: dict[str, Any]) -> str:
    """The demo kiosk's appliance credential, created once through the store and kept."""
    if "appliance_credential" in state:
        return str(state["appliance_credential"])
    store = Store(data / "coordinator.db", read_threads=1)
    await store.open()
    try:
        appliance = await store.write(
            lambda c: create_appliance(c, time.time(), "demo", int(state["show_id"]), KIOSK_NAME)
        )
    finally:
        await store.close()
    state["appliance_credential"] = appliance["credential"]
    state_path = data / STATE_FILE
    state_path.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    state_path.chmod(0o600)
    return str(appliance["credential"])


def take_entries(data: Path, base: str, state: dict[str, Any]) -> list[dict[str, Any]]:
    """The agent's catalog: the seeded takes with their digests (read back from the files)."""
    notes = {i.name: i.notes for i in IMAGES}
    takes = []
    for t in state["takes"]:
        path = data / "images" / t["name"]
        takes.append(
            {
                "sha256": t["sha256"],
                "md5": md5_of(path),
                "size": path.stat().st_size,
                "name": t["name"],
                "notes": notes.get(t["name"], ""),
                "url": base + IMAGES_ROUTE + t["name"],
            }
        )
    return takes


def md5_of(path: Path) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            md5.update(chunk)
    return md5.hexdigest()
