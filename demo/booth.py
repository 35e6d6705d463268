"""The README's demo: a coordinator on the embedded SQLite default, seeded with a show to burn.

`make demo` runs `python -m demo --data demo-data`. On the first run it creates an
admin, generates a few small images and enters them in a show's catalog through the coordinator's
own REST API (the path a real operator takes, so the demo exercises it), and enrolls a kiosk
appliance in the show; later runs reuse the same folder. It then runs that kiosk's agent in the
same process — two simulated drives, plus a real `stdio:` pseudo-drive burned by cdrskin/xorriso
where one is installed — linked to the coordinator and serving its control socket in the data
folder, prints the URLs, the socket and how to open the kiosk, and stops it all on Ctrl-C.
A simulated visitor takes each finished disc out a few seconds later and puts a blank in (now
and then a bad one that fails its verify), and the demo queues more discs whenever the queue
runs dry, so the dashboard always shows a kiosk at work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from coordinator import __version__
from coordinator.app import make_app
from coordinator.config import CoordinatorConfig
from coordinator.store import Store
from coordinator.store.people import create_admin, create_appliance

log = logging.getLogger(__name__)

STATE_FILE = "demo.json"
IMAGES_ROUTE = "/demo-images/"
AGENT_SOCKET = "agent.sock"
KIOSK_NAME = "demo kiosk"
KIOSK_CONFIG = "kiosk.toml"
# The demo kiosk's operator PIN: printed in the banner, written to its kiosk.toml.
OPERATOR_PIN = "2468"
# Discs of the first take queued when the demo starts with an empty queue, so the dashboard
# shows the kiosk at work; at the simulated burners' speeds they keep it busy for a minute or so.
DEMO_BURNS = 12
# Seconds the simulated visitor waits before taking a finished disc out and putting a blank in.
VISITOR_PAUSE = 4.0
# Every this-many blanks the visitor puts in is a bad one that fails its verify.
BAD_DISC_EVERY = 5
# How long one operator sign-in of the demo's queue keeper lasts before it signs in afresh.
OPERATOR_SECONDS = 540


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


async def _enroll_kiosk(data: Path, state: dict[str, Any]) -> str:
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


def _take_entries(data: Path, base: str, state: dict[str, Any]) -> list[dict[str, Any]]:
    """The agent's catalog: the seeded takes with their digests (read back from the files)."""
    notes = {i.name: i.notes for i in IMAGES}
    takes = []
    for t in state["takes"]:
        path = data / "images" / t["name"]
        takes.append(
            {
                "sha256": t["sha256"],
                "md5": _md5_of(path),
                "size": path.stat().st_size,
                "name": t["name"],
                "notes": notes.get(t["name"], ""),
                "url": base + IMAGES_ROUTE + t["name"],
            }
        )
    return takes


@contextlib.asynccontextmanager
async def _operator(base: str, state: dict[str, Any]) -> AsyncIterator[Any]:
    """The demo's contributor on the session's WebSocket, signed in the way a browser is (a fresh
    credential joins the session, then authenticates on the socket)."""
    person = state["contributor"]
    async with aiohttp.ClientSession() as http:
        api = _Api(http, base + "/api/v1")
        entered = await api.post(
            "/join",
            None,
            {
                "user": person["email"],
                "show": state["show_id"],
                "duration": OPERATOR_SECONDS + 60,
                "secret": person["secret"],
            },
        )
        # Membership is per credential: this fresh one joins the session like a browser does.
        await api.post(f"/sessions/{state['session_id']}/join", entered["credential"], {})
        async with http.ws_connect(f"{base}/ws/{state['session_id']}") as ws:
            await ws.send_json({"action": "auth", "token": entered["credential"]})
            yield ws


async def _queue_demo_burns(base: str, data: Path, state: dict[str, Any]) -> str | None:
    """Queue `DEMO_BURNS` discs of the first take when the session's queue is empty, the way an
    operator does it (sign in, the session's WebSocket, `queue`); returns the take's name, or
    None when something was queued already (a restarted demo keeps its queue)."""
    first = state["takes"][0]
    md5 = await asyncio.to_thread(_md5_of, data / "images" / first["name"])
    async with _operator(base, state) as ws:
        snapshot = await _ask(ws, {"action": "snapshot"})
        if snapshot.get("result", {}).get("queue"):
            return None
        answer = await _ask(ws, {"action": "queue", "md5": md5, "count": DEMO_BURNS})
        if answer.get("status") is not True:
            raise RuntimeError(f"could not queue the demo burns: {answer.get('error')}")
    return str(first["name"])


async def _keep_queue_filled(base: str, data: Path, state: dict[str, Any]) -> None:
    """Queue another `DEMO_BURNS` discs whenever the queue runs dry, so the demo keeps burning for
    as long as it runs. Each watch lasts at most `OPERATOR_SECONDS` (the credential's life), then
    signs in afresh."""
    channel = f"session.{state['session_id'].lower()}.queue"
    while True:
        empty = False
        async with _operator(base, state) as ws:
            await _ask(ws, {"action": "subscribe", "pattern": channel})
            snapshot = await _ask(ws, {"action": "snapshot"})
            empty = not snapshot.get("result", {}).get("queue")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(OPERATOR_SECONDS):
                    while not empty:
                        msg = await ws.receive()
                        if msg.type is not aiohttp.WSMsgType.TEXT:
                            raise RuntimeError(f"the session socket closed: {msg.type.name}")
                        frame = json.loads(msg.data)
                        if frame.get("action") == "message" and frame.get("channel") == channel:
                            empty = frame["data"].get("length") == 0
        if empty:
            await _queue_demo_burns(base, data, state)


class Visitor:
    """Plays the people at the stand: `pause` seconds after a burner hands out a disc, they take
    it and put a blank in; every `bad_every`-th blank is a bad one (a simulated drive writes it
    but its verify fails), so the dashboard shows the odd red failure."""

    def __init__(self, agent: Any, pause: float, bad_every: int = BAD_DISC_EVERY) -> None:
        self.agent, self.pause, self.bad_every = agent, pause, bad_every
        self.blanks = 0  # blanks put into simulated drives so far

    async def run(self) -> None:
        finished: asyncio.Queue[str] = asyncio.Queue()

        def on_event(event: dict[str, Any]) -> None:
            if event.get("event") == "finished":
                finished.put_nowait(str(event["drive"]))

        remove = self.agent.add_listener(on_event)
        swaps: set[asyncio.Task[None]] = set()
        try:
            while True:
                uid = await finished.get()
                task = asyncio.create_task(self._swap(uid), name=f"visitor-{uid}")
                swaps.add(task)
                task.add_done_callback(swaps.discard)
        finally:
            remove()
            for task in swaps:
                task.cancel()
            await asyncio.gather(*swaps, return_exceptions=True)

    async def _swap(self, uid: str) -> None:
        from appliance.drives.base import BurnError
        from appliance.drives.simulated import SimulatedDrive

        await asyncio.sleep(self.pause)  # a person looks at the disc before taking it
        slot = self.agent.slots.get(uid)
        if slot is None or slot.busy:
            return
        try:
            if isinstance(slot.drive, SimulatedDrive):
                self.blanks += 1  # only a simulated drive can be handed a bad disc
                await slot.drive.swap_disc(bad=self.blanks % self.bad_every == 0)
            else:
                await slot.drive.close_tray()  # the pseudo-drive's file is blank to cdrskin
            await self.agent.media_changed(uid)
        except BurnError as exc:
            log.warning("the demo visitor could not swap the disc drive=%s error=%s", uid, exc)


async def _ask(ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> dict[str, Any]:
    """Send a command and return its reply (pushes in between are skipped; bounded)."""
    await ws.send_json(frame)
    async with asyncio.timeout(30):
        for _ in range(1000):
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"the session socket closed: {msg.type.name} {msg.extra}")
            reply: dict[str, Any] = json.loads(msg.data)
            if reply.get("action") == frame["action"]:
                return reply
    raise RuntimeError(f"no reply to {frame['action']}")


def _md5_of(path: Path) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            md5.update(chunk)
    return md5.hexdigest()


def _agent_config(data: Path, base: str, credential: str) -> Any:
    from appliance.config import AgentConfig, OpticalDriveConfig, SimulatedDriveConfig

    optical: tuple[OpticalDriveConfig, ...] = ()
    if shutil.which("cdrskin") or shutil.which("xorriso"):
        disc = data / "agent" / "pseudo-disc.iso"
        optical = (OpticalDriveConfig(f"stdio:{disc}", "Pseudo burner (libburn)"),)
    return AgentConfig(
        name=KIOSK_NAME,
        coordinator_url=base,
        credential=credential,
        state_dir=data / "agent",
        cache_dir=data / "agent" / "cache",
        cache_size=256 * 1024 * 1024,
        simulated=(
            SimulatedDriveConfig(
                # ~4x CD speed: a 3 MiB disc takes seconds, long enough to watch it progress.
                "Left burner",
                "sim:left",
                "optical",
                6e5,
                700 * 1024 * 1024,
                frozenset({"CDR"}),
            ),
            SimulatedDriveConfig(
                "USB slot", "sim:usb", "block", 1e6, 8 * 1024**3, frozenset({"BLOCK"})
            ),
        ),
        optical=optical,
        socket=data / AGENT_SOCKET,
    )


def _kiosk_config(data: Path) -> Path:
    """The demo kiosk's config: its socket and the operator PIN the banner prints."""
    path = data / KIOSK_CONFIG
    path.write_text(
        f'[kiosk]\nsocket = "{data / AGENT_SOCKET}"\npin = "{OPERATOR_PIN}"\n', encoding="utf-8"
    )
    path.chmod(0o600)  # it holds the PIN
    return path


def _kiosk_lines(data: Path) -> list[str]:
    config = data / KIOSK_CONFIG
    browser = (
        f"  in a browser      .venv/bin/python -m appliance.kiosk.serve --config {config}"
        f"  then open http://127.0.0.1:8081/"
        if importlib.util.find_spec("textual_serve") is not None
        else "  in a browser      .venv/bin/pip install textual-serve, then "
        f".venv/bin/python -m appliance.kiosk.serve --config {config}"
    )
    return [
        "",
        f"  kiosk agent       socket {data / AGENT_SOCKET}",
        "",
        "Open the kiosk:",
        f"  in a terminal     .venv/bin/burnstand-kiosk --config {config}",
        browser,
        f"  operator PIN      {OPERATOR_PIN}  (tap Operator on the kiosk's first screen)",
        f"  agent status      .venv/bin/burnstand-agent status --socket {data / AGENT_SOCKET}",
    ]


def _banner(base: str, data: Path, state: dict[str, Any], *, kiosk: bool = True) -> str:
    lines = [
        "",
        f"burnstand demo {__version__} is running.",
        f"  dashboard         {base}/  (sign in with the admin credential below)",
        *(
            [f"  live session      {base}/#/live/{state['session_id']}/display"]
            if "session_id" in state
            else []
        ),
        f"  coordinator API   {base}/api/v1/  (health: {base}/api/v1/health)",
        f"  OpenAPI document  {base}/api/v1/openapi.json",
        f"  data folder       {data}  (SQLite: {data / 'coordinator.db'})",
        f"  admin credential  {state['admin_credential']}",
        f"  demo show         id {state['show_id']} with {len(state['takes'])} images:",
        *(f"                      take {t['id']}: {t['name']}" for t in state["takes"]),
        *(_kiosk_lines(data) if kiosk else ["", "  (no kiosk agent: started with --no-kiosk)"]),
        "",
        "Try it:",
        f"  curl -s {base}/api/v1/shows -H 'Authorization: Bearer {state['admin_credential']}'",
        f"Credentials and secrets are in {data / STATE_FILE}. Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


async def run(
    data: Path,
    host: str,
    port: int,
    stop: asyncio.Event,
    *,
    kiosk: bool = True,
    burns: bool = True,
    visitor_pause: float = VISITOR_PAUSE,
) -> None:
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
        if not kiosk:
            print(_banner(base, data, state, kiosk=False), flush=True)
            await stop.wait()
            return
        credential = await _enroll_kiosk(data, state)
        await asyncio.to_thread(_kiosk_config, data)
        agent = await _start_agent(data, base, state, credential)
        try:
            agent.extra.append(asyncio.create_task(Visitor(agent.agent, visitor_pause).run()))
            queued = await _queue_demo_burns(base, data, state) if burns else None
            print(_banner(base, data, state), flush=True)
            if queued is not None:
                print(f"Queued {DEMO_BURNS} discs of {queued} for the demo kiosk.\n", flush=True)
            if burns:
                agent.extra.append(asyncio.create_task(_keep_queue_filled(base, data, state)))
            await _until_stopped(stop, agent.extra)
        finally:
            await agent.stop()
    finally:
        await runner.cleanup()


async def _until_stopped(stop: asyncio.Event, helpers: list[asyncio.Task[None]]) -> None:
    """Wait for Ctrl-C; a helper task that fails ends the demo with its error instead of leaving
    a demo that silently stopped burning."""
    stopping = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([stopping, *helpers], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    for task in done:
        if task is not stopping:
            task.result()


async def _start_agent(data: Path, base: str, state: dict[str, Any], credential: str) -> Any:
    from appliance.agent import serve

    config = _agent_config(data, base, credential)
    running = await serve(config)
    try:
        # Until the coordinator sends its own catalog over the link, the kiosk shows the
        # seeded takes (the coordinator's catalog replaces it when the link is up).
        if not running.agent.catalog:
            takes = await asyncio.to_thread(_take_entries, data, base, state)
            await running.agent.set_catalog(takes)
    except BaseException:
        await running.stop()
        raise
    return running


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 3600 seconds")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="Run the burnstand demo: a coordinator on the embedded SQLite default and "
        "a simulated kiosk agent linked to it.",
    )
    parser.add_argument("--data", type=Path, default=Path("demo-data"), help="data folder")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("BURNSTAND_DEMO_PORT", "8080"))
    )
    parser.add_argument(
        "--no-burns",
        action="store_true",
        help=f"do not queue discs (by default {DEMO_BURNS} whenever the queue runs dry)",
    )
    parser.add_argument(
        "--visitor-pause",
        type=_seconds,
        default=VISITOR_PAUSE,
        metavar="SECONDS",
        help="seconds the simulated visitor waits before swapping a finished disc for a blank",
    )
    parser.add_argument(
        "--no-kiosk",
        action="store_true",
        help="run only the coordinator, without the simulated kiosk agent",
    )
    args = parser.parse_args(argv)
    data: Path = args.data.resolve()
    (data / "images").mkdir(parents=True, exist_ok=True)

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(
            data,
            args.host,
            args.port,
            stop,
            kiosk=not args.no_kiosk,
            burns=not args.no_burns,
            visitor_pause=args.visitor_pause,
        )

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
