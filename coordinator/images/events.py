"""Who hears that an image entered the coordinator's store, uploaded or fetched from its take's
URL: the appliance links, which send their kiosks the new catalog (the take now comes from the
store, with the chunk manifest the kiosks share it by) without waiting for a reconnect.

`ImageEvents` lives under `IMAGE_EVENTS` in the app; a listener that fails is logged and the
others are still told, so a broken listener never fails the upload that stored the image.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from coordinator.images.catalog import ImageInfo

log = logging.getLogger(__name__)

OnStored = Callable[[ImageInfo], Awaitable[None]]


class ImageEvents:
    def __init__(self) -> None:
        self.listeners: list[OnStored] = []

    async def stored(self, image: ImageInfo) -> None:
        """`image` (as its take describes it) is now in the store, proven."""
        for listener in self.listeners:
            try:
                await listener(image)
            except Exception:
                log.exception("image stored listener failed", extra={"sha256": image.sha256})


IMAGE_EVENTS = web.AppKey("image_events", ImageEvents)
