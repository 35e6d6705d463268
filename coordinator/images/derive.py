"""What the image store derives from an image once its bytes are in and proven (an upload, or the
first fetch of a take's URL): what a compressed image unpacks to (recorded on every take that
carries it), its media, and its block map when it has empty space worth one.

`derive` is the one path for both ways in: an image that does not unpack to one sound image, or
not to the one the take declares, is removed again (with the chunk manifest made with it) and
refused with `Invalid`, so nothing unproven stays in the store.
"""

from __future__ import annotations

import asyncio
from functools import partial

from coordinator.errors import Invalid
from coordinator.images.blobs import ImageStore, Received
from coordinator.images.bmaps import BmapBuilder, map_raw
from coordinator.images.catalog import ImageInfo, record_contents
from coordinator.images.contents import NotAnImage, inspect, media_of_file
from coordinator.store import Store


async def derive(images: ImageStore, store: Store, info: ImageInfo, received: Received) -> None:
    """Unpack a compressed image once (worker thread) and record what it unpacks to; a raw
    image is its own image: only its media (disk, iso, hybrid) is recorded. An image with
    empty space gets a block map (`bmaps`), served beside it."""
    loop = asyncio.get_running_loop()
    bmap = BmapBuilder()
    try:
        found = await loop.run_in_executor(None, partial(inspect, received.path, bmap=bmap))
    except NotAnImage as exc:
        await loop.run_in_executor(None, _remove, images, received)
        raise Invalid(f"not a burnable image: {exc}; nothing was kept") from exc
    if found is None:
        media = await loop.run_in_executor(None, media_of_file, received.path)
        await _keep_bmap(images, received, await loop.run_in_executor(None, map_raw, received.path))
        await store.write(lambda c: record_contents(c, received.sha256, None, None, media))
        return
    for field, declared, got in (
        ("extracted_size", info.extracted_size, found.extracted_size),
        ("extracted_sha256", info.extracted_sha256, found.extracted_sha256),
    ):
        if declared is not None and declared != got:
            await loop.run_in_executor(None, _remove, images, received)
            raise Invalid(
                f"the image unpacks to {field} {got} but the take declares {declared}; "
                "nothing was kept",
                field=field,
            )
    await _keep_bmap(images, received, bmap.finish())
    await store.write(
        lambda c: record_contents(
            c, received.sha256, found.extracted_size, found.extracted_sha256, found.media
        )
    )


async def _keep_bmap(images: ImageStore, received: Received, text: str | None) -> None:
    if text is not None:
        await asyncio.get_running_loop().run_in_executor(
            None, images.save_bmap, received.sha256, text
        )


def _remove(images: ImageStore, received: Received) -> None:
    """An image refused after it was stored: the file and the chunk manifest made with it."""
    received.path.unlink(missing_ok=True)
    images.manifest_path(received.sha256).unlink(missing_ok=True)
