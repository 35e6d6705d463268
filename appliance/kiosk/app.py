"""The kiosk app (`burnstand-kiosk`): screens, navigation and the link to the agent.

The app owns one `ControlClient` and one `KioskModel`. A long-lived worker connects to the
agent, subscribes, loads a snapshot and feeds events into the model, bumping `revision` so the
screens re-read it; when the agent goes away it shows "Reconnecting to the burner…" over
whatever was on screen and keeps retrying with backoff. Screens post past-tense messages and
the handlers here decide the next screen and make the agent calls, each in a worker so the UI
never waits on the socket.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App
from textual.reactive import reactive
from textual.screen import Screen

from appliance import __version__
from appliance.config import DEFAULT_STATE_DIR
from appliance.control import DEFAULT_SOCKET, AgentUnavailable, ControlClient, RequestFailed
from appliance.kiosk import i18n
from appliance.kiosk.enrollment import read_enrollment_code
from appliance.kiosk.i18n import _, ngettext
from appliance.kiosk.messages import (
    BurnFinished,
    BurnRefused,
    BurnStarted,
    DrivePicked,
    ImagePicked,
    LanguageChosen,
    OperatorCommanded,
    OperatorRequested,
    OperatorUnlocked,
    ResultAcknowledged,
    VisitorArrived,
)
from appliance.kiosk.model import KioskModel, VisitorBurn
from appliance.kiosk.pinlock import PinLock
from appliance.kiosk.screens.attract import AttractScreen
from appliance.kiosk.screens.operator import OperatorScreen
from appliance.kiosk.screens.pick_drive import PickDriveScreen
from appliance.kiosk.screens.pick_image import PickImageScreen
from appliance.kiosk.screens.pin import PinScreen
from appliance.kiosk.screens.progress import ProgressScreen
from appliance.kiosk.screens.reconnecting import ReconnectingScreen
from appliance.kiosk.screens.result import ResultScreen

log = logging.getLogger(__name__)

RECONNECT_FIRST = 0.1
RECONNECT_MAX = 2.0


class KioskApp(App[None]):
    CSS_PATH = "kiosk.tcss"
    TITLE = "Burnstand"
    ENABLE_COMMAND_PALETTE = False

    revision: reactive[int] = reactive(0, init=False)

    def __init__(
        self,
        socket_path: Path = DEFAULT_SOCKET,
        *,
        pin: str = "",
        state_dir: Path | None = None,
        language: str | None = None,
    ) -> None:
        super().__init__()
        # The language a visitor is greeted in: given here, else the agent's config says.
        self.default_language = language
        i18n.set_language(language or i18n.SOURCE)
        self.model = KioskModel()
        self.client = ControlClient(socket_path, timeout=5.0)
        self.pin = pin
        self.pin_lock = PinLock()  # outlives each PIN screen, so reopening it resets nothing
        # The agent's state directory, where first boot leaves the enrollment code to show;
        # None: never show one (a kiosk pointed at a demo agent).
        self.state_dir = state_dir

    def get_default_screen(self) -> Screen[Any]:
        return AttractScreen(self.model)

    def on_mount(self) -> None:
        self.push_screen(ReconnectingScreen(first=True))
        self._link()

    async def on_unmount(self) -> None:
        await self.client.close()

    # --- the link to the agent ---------------------------------------------------------------

    def _bump(self) -> None:
        self.revision = self.model.revision

    @work(exclusive=True, group="link", exit_on_error=False)
    async def _link(self) -> None:
        delay = RECONNECT_FIRST
        # Runs for the app's lifetime (the worker is cancelled on exit); each pass is one
        # connection, and the waits between passes back off to RECONNECT_MAX.
        while True:
            try:
                await self.client.connect()
                await self.client.subscribe()
                drives = await self.client.request("drives")
                images = await self.client.request("images")
                status = await self.client.request("status")
                missed = self.model.load(drives, images, status)
                if self.default_language is None:
                    self.default_language = i18n.checked(status.get("language", i18n.SOURCE))
                    await self._speak(self.default_language)
                await self._read_enrollment_code()
                delay = RECONNECT_FIRST
                self._bump()
                await self._hide_reconnecting()
                log.info("kiosk connected to the agent", extra={"socket": str(self.client.path)})
                if missed is not None:
                    self.post_message(BurnFinished(missed))
                async for event in self.client.events():
                    result = self.model.apply(event)
                    if event.get("event") == "status":
                        # The link state moved (pending, accepted, rejected): the code may
                        # have been made, spent or replaced meanwhile.
                        await self._read_enrollment_code()
                    self._bump()
                    if result is not None:
                        self.post_message(BurnFinished(result))
            except (AgentUnavailable, RequestFailed) as exc:
                log.info("kiosk lost the agent", extra={"reason": str(exc)})
            if self.model.connected:
                self.model.disconnected()
                self._bump()
                self._show_reconnecting()
            await asyncio.sleep(delay)
            delay = min(RECONNECT_MAX, delay * 2)

    async def _read_enrollment_code(self) -> None:
        if self.state_dir is None:
            return
        code = await asyncio.to_thread(read_enrollment_code, self.state_dir)
        if code != self.model.enrollment_code:
            self.model.enrollment_code = code
            self.model.revision += 1

    def _show_reconnecting(self) -> None:
        if not isinstance(self.screen, ReconnectingScreen):
            self.push_screen(ReconnectingScreen())

    async def _hide_reconnecting(self) -> None:
        if isinstance(self.screen, ReconnectingScreen):
            await self.pop_screen()

    async def _reset_to(self, *screens: Screen[Any]) -> None:
        """Back to the attract screen, then push `screens` on it."""
        while len(self.screen_stack) > 1:
            await self.pop_screen()
        for screen in screens:
            await self.push_screen(screen)

    # --- visitor flow --------------------------------------------------------------------------

    async def on_visitor_arrived(self, message: VisitorArrived) -> None:
        await self.push_screen(PickImageScreen(self.model))

    async def on_image_picked(self, message: ImagePicked) -> None:
        await self.push_screen(PickDriveScreen(self.model, message.image))

    def on_drive_picked(self, message: DrivePicked) -> None:
        self._start_burn(message)

    @work(exclusive=True, group="burn", exit_on_error=False)
    async def _start_burn(self, picked: DrivePicked) -> None:
        screen = self.screen
        try:
            accepted = await self.client.request(
                "burn", image=picked.image["sha256"], drive=picked.drive
            )
        except RequestFailed as exc:
            screen.post_message(BurnRefused(exc.code, exc.message))
            return
        except AgentUnavailable:
            return  # the reconnecting screen is already telling the visitor
        self.post_message(BurnStarted(accepted["job_id"], accepted["drive"], picked.image))

    async def on_burn_started(self, message: BurnStarted) -> None:
        self.model.burn = VisitorBurn(message.job_id, message.drive, message.image)
        await self._reset_to(ProgressScreen(self.model))
        # A very short burn can end before this message is handled; the drive remembers it.
        missed = self.model.missed_result()
        if missed is not None:
            self.post_message(BurnFinished(missed))

    async def on_burn_finished(self, message: BurnFinished) -> None:
        burn = self.model.burn
        if burn is None:
            return
        drive = self.model.drives.get(burn.drive)
        name = drive["name"] if drive else _("burner")
        thing = "USB stick" if drive and "BLOCK" in drive["capabilities"] else "disc"
        await self._reset_to(
            ProgressScreen(self.model),
            ResultScreen(message.result, name, burn.image, thing=thing),
        )

    async def on_result_acknowledged(self, message: ResultAcknowledged) -> None:
        self.model.burn = None
        if message.retry and message.image is not None:
            await self._reset_to(
                PickImageScreen(self.model), PickDriveScreen(self.model, message.image)
            )
        else:
            await self._reset_to()
            # The next visitor is greeted in the kiosk's own language again.
            await self._speak(self.default_language or i18n.SOURCE)

    async def on_language_chosen(self, message: LanguageChosen) -> None:
        await self._speak(message.language)

    async def _speak(self, language: str) -> None:
        """Speak `language` from now on; the screen on show is drawn again in it."""
        if language == i18n.language():
            return
        i18n.set_language(language)
        for screen in list(self.screen_stack):
            await screen.recompose()

    # --- operator ------------------------------------------------------------------------------

    async def on_operator_requested(self, message: OperatorRequested) -> None:
        await self.push_screen(PinScreen(self.pin, self.pin_lock))

    async def on_operator_unlocked(self, message: OperatorUnlocked) -> None:
        await self.switch_screen(OperatorScreen(self.model))

    def on_operator_commanded(self, message: OperatorCommanded) -> None:
        self._operator(message)

    @work(group="operator", exit_on_error=False)
    async def _operator(self, command: OperatorCommanded) -> None:
        args: dict[str, str] = {}
        if command.drive is not None:
            args["drive"] = command.drive
        if command.name is not None:
            args["name"] = command.name
        try:
            result = await self.client.request(command.cmd, **args)
        except RequestFailed as exc:
            text = _("Refused: {why}").format(why=exc.message)
        except AgentUnavailable:
            return
        else:
            text = _operator_report(command, result, self.model)
        if isinstance(self.screen, OperatorScreen):
            self.screen.report(text)


def _operator_report(command: OperatorCommanded, result: Any, model: KioskModel) -> str:
    drive = model.drives.get(command.drive or "")
    name = drive["name"] if drive else _("the drive")
    match command.cmd:
        case "eject_all":
            n = len(result["ejected"])
            return ngettext("Ejected {n} drive", "Ejected {n} drives", n).format(n=n)
        case "name":
            return _("Renamed to {name}").format(name=result["name"])
        case "cancel":
            return _("Cancelled the burn on {drive}").format(drive=name)
        case "eject":
            return _("Ejected {drive}").format(drive=name)
    return _("Done")


# --- command line ---------------------------------------------------------------------------


class KioskConfigError(Exception):
    pass


def _config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KioskConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise KioskConfigError(f"{path} is not valid TOML: {exc}") from exc
    kiosk = data.get("kiosk", {})
    if not isinstance(kiosk, dict):
        raise KioskConfigError(f"{path}: [kiosk] must be a table")
    for key in ("pin", "socket"):
        if key in kiosk and not isinstance(kiosk[key], str):
            raise KioskConfigError(f"{path}: kiosk.{key} must be a string")
    pin = kiosk.get("pin")
    if pin is not None and not pin.isdigit():
        raise KioskConfigError(f"{path}: kiosk.pin must be digits only (it is typed on a keypad)")
    return kiosk


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="burnstand-kiosk", description="The burn kiosk's touchscreen app."
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--socket", type=Path, help=f"agent control socket (default {DEFAULT_SOCKET})")
    p.add_argument("--config", type=Path, help="TOML file with a [kiosk] table (pin, socket)")
    p.add_argument("--pin", help="operator PIN (digits); prefer --config or BURNSTAND_KIOSK_PIN")
    p.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="the agent's state directory, whose enrollment-code file is shown until the agent "
        "is enrolled (default %(default)s)",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="run against a built-in simulated agent (no hardware, no coordinator)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        conf = _config(args.config)
    except KioskConfigError as exc:
        print(f"burnstand-kiosk: {exc}", file=sys.stderr)
        return 2
    pin = args.pin or os.environ.get("BURNSTAND_KIOSK_PIN") or conf.get("pin", "")
    if pin and not pin.isdigit():
        print("burnstand-kiosk: the PIN must be digits only", file=sys.stderr)
        return 2
    socket = args.socket or Path(conf.get("socket", DEFAULT_SOCKET))
    if args.demo:
        from appliance.kiosk.demo import DemoAgent

        with DemoAgent(socket if args.socket else None, realtime=True) as agent:
            KioskApp(agent.path, pin=pin or "1234").run()
        return 0
    KioskApp(socket, pin=pin, state_dir=args.state_dir).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
