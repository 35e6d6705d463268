"""A catalog entry as one big tappable card: name, size and media, notes, drives that fit."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label

from appliance.control import DriveView, ImageView
from appliance.kiosk.i18n import _
from appliance.kiosk.messages import ImagePicked
from appliance.kiosk.model import media_text, size_text


class ImageCard(Vertical, can_focus=True):
    def __init__(
        self,
        image: ImageView,
        drives: list[DriveView],
        *,
        refused: list[tuple[DriveView, str]] | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id, classes="card")
        self.image = image
        self.drives = drives
        self.refused = refused or []

    def compose(self) -> ComposeResult:
        img = self.image
        yield Label(img["name"], classes="card-title")
        fits_on = _("fits on {media}").format(media=media_text(img))
        yield Label(f"{size_text(img)} · {fits_on}", classes="card-meta")
        if img["notes"]:
            yield Label(img["notes"], classes="card-notes")
        names = ", ".join(d["name"] for d in self.drives) or _("no burner here can take it")
        yield Label(_("Burners: {names}").format(names=names), classes="card-drives")
        for drive, why in self.refused:
            yield Label(
                _("Not on {burner}: {why}").format(burner=drive["name"], why=_(why)),
                classes="card-why-not",
            )

    def on_click(self, event: events.Click) -> None:
        event.stop()
        if self.drives:
            self.post_message(ImagePicked(self.image))

    def key_enter(self) -> None:
        if self.drives:
            self.post_message(ImagePicked(self.image))
