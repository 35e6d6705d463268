"""The attract screen: what a passer-by sees; one huge "Tap to start" and a small operator door.

Until the kiosk is enrolled it also shows its enrollment code and whether a show admin has
accepted it yet, so the admin can match it against the dashboard's Pending kiosks list.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Label

from appliance.kiosk.enrollment import enrollment_notice
from appliance.kiosk.i18n import LANGUAGES, _, language, next_language, ngettext
from appliance.kiosk.messages import LanguageChosen, OperatorRequested, VisitorArrived
from appliance.kiosk.model import KioskModel


def _summary(model: KioskModel) -> str:
    if not model.drives:
        return _("Waiting for the burners…")
    ready = sum(1 for d in model.drives.values() if d["state"] == "idle" and d["job"] is None)
    busy = len(model.busy_drives())
    total = len(model.drives)
    parts = [
        ngettext(
            "{ready} of {total} burner ready", "{ready} of {total} burners ready", total
        ).format(ready=ready, total=total)
    ]
    if busy:
        parts.append(_("{busy} burning").format(busy=busy))
    return " · ".join(parts)


def _enrollment(model: KioskModel) -> str | None:
    link = model.status["link"] if model.status is not None else None
    return enrollment_notice(link, model.enrollment_code)


class AttractScreen(Screen[None]):
    AUTO_FOCUS = None

    def __init__(self, model: KioskModel) -> None:
        super().__init__(id="attract-screen")
        self.model = model

    def compose(self) -> ComposeResult:
        with Vertical(id="attract"):
            yield Label("Burnstand", id="brand")
            yield Label(
                _("Linux on a disc or USB stick — burned and verified while you wait."),
                id="tagline",
            )
            yield Button(_("Tap to start"), id="start", variant="primary")
            yield Label(_summary(self.model), id="summary")
            # Until the show admin accepts this kiosk they compare this code with the dashboard's.
            notice = _enrollment(self.model)
            enrollment = Label(notice or "", id="enrollment")
            enrollment.display = notice is not None
            yield enrollment
        with Horizontal(id="corner"):
            # The next language, named in itself, so a visitor finds theirs by tapping.
            yield Button(LANGUAGES[next_language(language())], id="language", classes="small")
            yield Button(_("Operator"), id="operator", classes="small")

    def on_mount(self) -> None:
        self.watch(self.app, "revision", self._sync, init=False)

    def _sync(self) -> None:
        self.query_one("#summary", Label).update(_summary(self.model))
        notice = _enrollment(self.model)
        enrollment = self.query_one("#enrollment", Label)
        enrollment.update(notice or "")
        enrollment.display = notice is not None

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "start":
            self.post_message(VisitorArrived())
        elif event.button.id == "operator":
            self.post_message(OperatorRequested())
        elif event.button.id == "language":
            self.post_message(LanguageChosen(next_language(language())))
