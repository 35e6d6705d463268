"""Pick an image: one card per catalog entry, with its size, notes and the burners that fit it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Label

from appliance.kiosk.i18n import _
from appliance.kiosk.model import KioskModel
from appliance.kiosk.widgets.image_card import ImageCard


class PickImageScreen(Screen[None]):
    AUTO_FOCUS = None

    def __init__(self, model: KioskModel) -> None:
        super().__init__(id="pick-image-screen")
        self.model = model
        self._shown = self._key()

    def _key(self) -> tuple[object, ...]:
        # Only a change in what the cards say rebuilds them (and resets the scroll position).
        return (
            tuple(i["sha256"] for i in self.model.images),
            tuple((d["uid"], d["name"]) for d in self.model.drives.values()),
        )

    def compose(self) -> ComposeResult:
        yield Label(_("Pick an image"), classes="screen-title")
        with VerticalScroll(id="cards"):
            if not self.model.images:
                yield Label(_("The catalog is empty. Please ask an operator."), classes="empty")
            for n, image in enumerate(self.model.images):
                yield ImageCard(
                    image,
                    self.model.drives_for(image),
                    refused=self.model.drives_refused(image),
                    id=f"image-{n}",
                )
        with Horizontal(classes="actions"):
            yield Button(_("Back"), id="back")

    def on_mount(self) -> None:
        self.watch(self.app, "revision", self._sync, init=False)

    async def _sync(self) -> None:
        if self._key() != self._shown:
            self._shown = self._key()
            await self.recompose()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "back":
            self.dismiss()
