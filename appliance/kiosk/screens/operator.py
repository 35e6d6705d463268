"""The operator screen: drive names, cancel/eject per drive, eject all, cache use, link state."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Input, Label

from appliance.control import MAX_NAME, AgentStatus, DriveView
from appliance.kiosk.messages import OperatorCommanded
from appliance.kiosk.model import KioskModel, human_size
from appliance.kiosk.widgets.drive_progress import progress_line

# One human label per link state the agent reports (appliance.agent.LinkState, which includes
# appliance.link's); tests/appliance/kiosk fails when a new state has none.
LINK_NAMES = {
    "online": "online",
    "connecting": "connecting…",
    "offline": "offline — burning from the cache",
    "pending": "waiting for a show admin to accept this kiosk",
    "rejected": "enrollment refused — burning offline; this kiosk needs a new code",
}


def status_text(status: AgentStatus | None, enrollment_code: str | None = None) -> str:
    if status is None:
        return "Agent status unknown"
    link = LINK_NAMES.get(status["link"], status["link"])
    if enrollment_code is not None and status["link"] != "online":
        link += f" (enrollment code {enrollment_code})"
    cache = f"{human_size(status['cache_used'])} of {human_size(status['cache_max'])}"
    return f"Coordinator: {link}   ·   Cache: {cache}   ·   Agent {status['version']}"


class DriveRow(Horizontal):
    def __init__(self, drive: DriveView, index: int) -> None:
        super().__init__(id=f"row-{index}", classes="drive-row")
        self.drive = drive

    def compose(self) -> ComposeResult:
        yield Input(
            self.drive["name"],
            max_length=MAX_NAME,
            placeholder="Friendly name",
            classes="name",
        )
        yield Button("Save", classes="save")
        yield Label(progress_line(self.drive), classes="state")
        yield Button("Cancel", classes="cancel", variant="error")
        yield Button("Eject", classes="eject")

    def on_mount(self) -> None:
        self.show(self.drive)

    def show(self, drive: DriveView) -> None:
        self.drive = drive
        self.query_one(".state", Label).update(progress_line(drive))
        self.query_one(".cancel", Button).disabled = drive["job"] is None
        self.query_one(".eject", Button).disabled = drive["job"] is not None

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        uid = self.drive["uid"]
        if event.button.has_class("save"):
            name = self.query_one(Input).value.strip()
            self.post_message(OperatorCommanded("name", drive=uid, name=name))
        elif event.button.has_class("cancel"):
            self.post_message(OperatorCommanded("cancel", drive=uid))
        elif event.button.has_class("eject"):
            self.post_message(OperatorCommanded("eject", drive=uid))


class OperatorScreen(Screen[None]):
    AUTO_FOCUS = None

    def __init__(self, model: KioskModel) -> None:
        super().__init__(id="operator-screen")
        self.model = model
        self._uids = list(model.drives)

    def compose(self) -> ComposeResult:
        yield Label("Operator", classes="screen-title")
        yield Label(status_text(self.model.status, self.model.enrollment_code), id="agent-status")
        with VerticalScroll(id="drive-rows"):
            for n, drive in enumerate(self.model.drives.values()):
                yield DriveRow(drive, n)
        yield Label("", id="operator-message")
        with Horizontal(classes="actions"):
            yield Button("Eject all", id="eject-all", variant="warning")
            yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.watch(self.app, "revision", self._sync, init=False)

    async def _sync(self) -> None:
        self.query_one("#agent-status", Label).update(
            status_text(self.model.status, self.model.enrollment_code)
        )
        if list(self.model.drives) != self._uids:
            self._uids = list(self.model.drives)
            await self.recompose()
            return
        for row in self.query(DriveRow):
            drive = self.model.drives.get(row.drive["uid"])
            if drive is not None:
                row.show(drive)

    def report(self, text: str) -> None:
        self.query_one("#operator-message", Label).update(text)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "eject-all":
            self.post_message(OperatorCommanded("eject_all"))
        elif event.button.id == "close":
            self.dismiss()
