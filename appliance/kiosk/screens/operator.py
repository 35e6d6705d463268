"""The operator screen: drive names, cancel/eject per drive, eject all, cache use, link state."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Input, Label

from appliance.control import MAX_NAME, AgentStatus, DriveView
from appliance.kiosk.i18n import N_, _
from appliance.kiosk.messages import OperatorCommanded
from appliance.kiosk.model import KioskModel, human_size
from appliance.kiosk.widgets.drive_progress import progress_line

# One human label per link state the agent reports (appliance.agent.LinkState, which includes
# appliance.link's); tests/appliance/kiosk fails when a new state has none.
LINK_NAMES = {
    "online": N_("online"),
    "connecting": N_("connecting…"),
    "offline": N_("offline — burning from the cache"),
    "pending": N_("waiting for a show admin to accept this kiosk"),
    "rejected": N_("enrollment refused — burning offline; this kiosk needs a new code"),
}


def status_text(status: AgentStatus | None, enrollment_code: str | None = None) -> str:
    if status is None:
        return _("Agent status unknown")
    link = _(LINK_NAMES[status["link"]]) if status["link"] in LINK_NAMES else status["link"]
    if enrollment_code is not None and status["link"] != "online":
        link += " " + _("(enrollment code {code})").format(code=enrollment_code)
    return _("Coordinator: {link}   ·   Cache: {used} of {size}   ·   Agent {version}").format(
        link=link,
        used=human_size(status["cache_used"]),
        size=human_size(status["cache_max"]),
        version=status["version"],
    )


class DriveRow(Horizontal):
    def __init__(self, drive: DriveView, index: int) -> None:
        super().__init__(id=f"row-{index}", classes="drive-row")
        self.drive = drive

    def compose(self) -> ComposeResult:
        yield Input(
            self.drive["name"],
            max_length=MAX_NAME,
            placeholder=_("Friendly name"),
            classes="name",
        )
        yield Button(_("Save"), classes="save")
        yield Label(progress_line(self.drive), classes="state")
        yield Button(_("Cancel"), classes="cancel", variant="error")
        yield Button(_("Eject"), classes="eject")

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
        yield Label(_("Operator"), classes="screen-title")
        yield Label(status_text(self.model.status, self.model.enrollment_code), id="agent-status")
        with VerticalScroll(id="drive-rows"):
            for n, drive in enumerate(self.model.drives.values()):
                yield DriveRow(drive, n)
        yield Label("", id="operator-message")
        with Horizontal(classes="actions"):
            yield Button(_("Eject all"), id="eject-all", variant="warning")
            yield Button(_("Close"), id="close")

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
