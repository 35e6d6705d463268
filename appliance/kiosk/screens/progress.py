"""Live progress of every drive, the visitor's marked: bar, percent, speed, time left, verifying."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Label

from appliance.kiosk.i18n import _
from appliance.kiosk.model import KioskModel
from appliance.kiosk.widgets.drive_progress import DriveProgress


class ProgressScreen(Screen[None]):
    AUTO_FOCUS = None

    def __init__(self, model: KioskModel) -> None:
        super().__init__(id="progress-screen")
        self.model = model

    def compose(self) -> ComposeResult:
        name = self.model.burn.image["name"] if self.model.burn else _("your image")
        yield Label(_("Burning {name}").format(name=name), classes="screen-title")
        yield Label(
            _("Please wait. The tray opens by itself when your disc is written and checked."),
            classes="screen-sub",
        )
        mine = self.model.burn.drive if self.model.burn else None
        with VerticalScroll(id="drives"):
            for drive in self.model.drives.values():
                yield DriveProgress(drive, mine=drive["uid"] == mine)

    def on_mount(self) -> None:
        self.watch(self.app, "revision", self._sync, init=False)

    def _sync(self) -> None:
        for widget in self.query(DriveProgress):
            drive = self.model.drives.get(widget.drive["uid"])
            if drive is not None:
                widget.show(drive)
