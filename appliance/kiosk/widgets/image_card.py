"""A catalog entry as one big tappable card: name, size and media, notes, drives that fit."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label

from appliance.control import DriveView, ImageView
from appliance.kiosk.i18n import _
from appliance.kiosk.messages import ImagePicked
from appliance.kiosk.model import human_size, media_text


class ImageCard(Vertical, can_focus=True):
    def __init__(self, image: ImageView, drives: list[DriveView], *, id: str | None = None) -> None:
        super().__init__(id=id, classes="card")
        self.image = image
        self.drives = drives

    def compose(self) -> ComposeResult:
        img = self.image
        yield Label(img["name"], classes="card-title")
        fits_on = _("fits on {media}").format(media=media_text(img))
        yield Label(f"{human_size(img['size'])} · {fits_on}", classes="card-meta")
        if img["notes"]:
            yield Label(img["notes"], classes="card-notes")
        names = ", ".join(d["name"] for d in self.drives) or _("no burner here can take it")
        yield Label(_("Burners: {names}").format(names=names), classes="card-drives")

    def on_click(self, event: events.Click) -> None:
        event.stop()
        if self.drives:
            self.post_message(ImagePicked(self.image))

    def key_enter(self) -> None:
        if self.drives:
            self.post_message(ImagePicked(self.image))
