"""Pick a drive for the chosen image, or let the kiosk pick; says why a burner cannot be used."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Label

from appliance.control import DriveView, ImageView
from appliance.kiosk.i18n import _
from appliance.kiosk.messages import BurnRefused, DrivePicked
from appliance.kiosk.model import KioskModel, human_size, state_name


def _free(drive: DriveView) -> bool:
    return drive["state"] == "idle" and drive["job"] is None


def _label(drive: DriveView) -> str:
    state = _("burning") if drive["job"] is not None else state_name(drive["state"])
    return f"{drive['name']} — {state}"


class PickDriveScreen(Screen[None]):
    AUTO_FOCUS = None

    def __init__(self, model: KioskModel, image: ImageView) -> None:
        super().__init__(id="pick-drive-screen")
        self.model = model
        self.image = image
        self._uids = [d["uid"] for d in model.drives_for(image)]

    def compose(self) -> ComposeResult:
        yield Label(_("Where should it go?"), classes="screen-title")
        yield Label(
            f"{self.image['name']} · {human_size(self.image['size'])}", classes="screen-sub"
        )
        with VerticalScroll(id="drive-buttons"):
            yield Button(_("Pick a burner for me"), id="auto", variant="primary")
            for n, uid in enumerate(self._uids):
                yield Button(_label(self.model.drives[uid]), id=f"drive-{n}", name=uid)
        yield Label("", id="refusal")
        with Horizontal(classes="actions"):
            yield Button(_("Back"), id="back")

    def on_mount(self) -> None:
        self.watch(self.app, "revision", self._sync)

    def _sync(self) -> None:
        drives = [self.model.drives[u] for u in self._uids if u in self.model.drives]
        self.query_one("#auto", Button).disabled = not any(_free(d) for d in drives)
        for button in self.query(Button):
            if button.name not in self.model.drives:
                continue
            drive = self.model.drives[button.name]
            button.label = _label(drive)
            button.disabled = not _free(drive)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "back":
            self.dismiss()
        elif event.button.id == "auto":
            self.post_message(DrivePicked(self.image, "auto"))
        elif event.button.name:
            self.post_message(DrivePicked(self.image, event.button.name))

    def on_burn_refused(self, message: BurnRefused) -> None:
        message.stop()
        self.query_one("#refusal", Label).update(_("Sorry — {why}").format(why=message.message))
