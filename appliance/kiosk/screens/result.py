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
        with Vertical(id="verdict"):
            if r["ok"]:
                yield Label(f"✔  Your {self.thing} is ready", id="headline")
                yield Label(f"{r['image_name']} was written and checked.", id="detail")
                yield Label(f"Take your {self.thing} from the {self.drive_name}.", id="next-step")
            else:
                yield Label("✘  That didn't work", id="headline")
                yield Label(reason_text(r), id="detail")
                yield Label(
                    f"Take the {self.thing} from the {self.drive_name}, then try another one.",
                    id="next-step",
                )
        with Horizontal(classes="actions"):
            if r["ok"]:
                yield Button("Done", id="done", variant="success")
            else:
                yield Button("Try another disc", id="retry", variant="warning")
                yield Button("Start over", id="done")
                if r["message"].strip():
                    yield Button("Details", id="details")

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
