"""Pass or fail, in words a visitor can act on: take your disc, or try another one and why.

A failure is one sentence from `wire.failures` (what happened, what to do); what the burning
tool itself said is one tap away behind "Details", for the operator the visitor calls over.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Label

from appliance.control import ImageView, ResultView
from appliance.kiosk.i18n import _
from appliance.kiosk.messages import ResultAcknowledged
from appliance.kiosk.model import reason_text


class ResultScreen(Screen[None]):
    AUTO_FOCUS = None

    def __init__(
        self, result: ResultView, drive_name: str, image: ImageView | None, *, thing: str = "disc"
    ) -> None:
        super().__init__(id="result-screen")
        self.result = result
        self.drive_name = drive_name
        self.thing = thing  # "disc" or "USB stick"
        self.image = image
        self.set_class(result["ok"], "passed")
        self.set_class(not result["ok"], "failed")

    def compose(self) -> ComposeResult:
        r = self.result
        stick = self.thing != "disc"
        where = {"drive": self.drive_name}
        with Vertical(id="verdict"):
            if r["ok"]:
                ready = _("✔  Your USB stick is ready") if stick else _("✔  Your disc is ready")
                take = (
                    _("Take your USB stick from the {drive}.")
                    if stick
                    else _("Take your disc from the {drive}.")
                )
                yield Label(ready, id="headline")
                yield Label(
                    _("{image} was written and checked.").format(image=r["image_name"]),
                    id="detail",
                )
                yield Label(take.format(**where), id="next-step")
            else:
                again = (
                    _("Take the USB stick from the {drive}, then try another one.")
                    if stick
                    else _("Take the disc from the {drive}, then try another one.")
                )
                yield Label(_("✘  That didn't work"), id="headline")
                yield Label(reason_text(r), id="detail")
                yield Label(again.format(**where), id="next-step")
        with Horizontal(classes="actions"):
            if r["ok"]:
                yield Button(_("Done"), id="done", variant="success")
            else:
                yield Button(_("Try another disc"), id="retry", variant="warning")
                yield Button(_("Start over"), id="done")
                if r["message"].strip():
                    yield Button(_("Details"), id="details")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "details":
            shown = self.query("#tool-detail")
            if shown:
                shown.remove()
            else:
                tool = Label(self.result["message"].strip(), id="tool-detail")
                self.query_one("#verdict", Vertical).mount(tool)
            return
        retry = event.button.id == "retry"
        self.post_message(ResultAcknowledged(retry=retry, image=self.image if retry else None))
