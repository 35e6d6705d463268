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

The first run's seeding is `demo.seed`; the queue keeper and the visitor are `demo.activity`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from coordinator import __version__
from coordinator.app import make_app
from coordinator.config import CoordinatorConfig
from demo.activity import DEMO_BURNS, VISITOR_PAUSE, Visitor, keep_queue_filled, queue_demo_burns
from demo.seed import IMAGES_ROUTE, KIOSK_NAME, STATE_FILE, enroll_kiosk, seed_demo, take_entries

log = logging.getLogger(__name__)

AGENT_SOCKET = "agent.sock"
KIOSK_CONFIG = "kiosk.toml"
# The demo kiosk's operator PIN: printed in the banner, written to its kiosk.toml.
OPERATOR_PIN = "2468"


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
            state = await seed_demo(data, base)
        if not kiosk:
            print(_banner(base, data, state, kiosk=False), flush=True)
            await stop.wait()
            return
        credential = await enroll_kiosk(data, state)
        await asyncio.to_thread(_kiosk_config, data)
        agent = await _start_agent(data, base, state, credential)
        try:
            agent.extra.append(asyncio.create_task(Visitor(agent.agent, visitor_pause).run()))
            queued = await queue_demo_burns(base, data, state) if burns else None
            print(_banner(base, data, state), flush=True)
            if queued is not None:
                print(f"Queued {DEMO_BURNS} discs of {queued} for the demo kiosk.\n", flush=True)
            if burns:
                agent.extra.append(asyncio.create_task(keep_queue_filled(base, data, state)))
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
            takes = await asyncio.to_thread(take_entries, data, base, state)
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
