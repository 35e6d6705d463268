"""REST endpoints of image sharing among kiosks: chunk manifests and the show's swarm view.

Kiosks of a show fetch an image chunk by chunk from each other (``wire.swarm``); the manifest is
what they check every chunk against. Who may read it follows the image download: anyone of a show
whose takes have the image (admins any); for everyone else it does not exist (404). The swarm
view is the tracker's picture of a show (``coordinator.swarm``): each kiosk's progress per image,
the bytes it got from the origin and from peers, and the latest bad-peer reports.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from coordinator.errors import NotFound
from coordinator.rendezvous import schemas
from coordinator.rendezvous.endpoint import Endpoint
from coordinator.rendezvous.http import authorized, ok, path_id, read
from coordinator.rendezvous.images import IMAGE_ROUTE, IMAGES, present_image
from coordinator.store.catalog import get_show
from coordinator.store.records import ROLES, Role
from coordinator.swarm import TRACKER

WATCHERS: tuple[Role, ...] = ("admin", "show_admin", "contributor")

MANIFEST_OUT = schemas.record("size", "sha256", "chunk_size", "chunks")


async def get_manifest(request: web.Request) -> web.Response:
    sha256, info = await present_image(request)  # the image download's rules, and its 404s
    images = request.app[IMAGES]
    # Made from the image on first ask when it predates manifests: hashing, so a thread.
    manifest = await asyncio.get_running_loop().run_in_executor(None, images.manifest, sha256)
    if manifest is None:
        raise NotFound(
            f"image {sha256} (take {info.take_id}, {info.name!r}) has not been uploaded yet"
        )
    return ok(manifest.to_json())


async def get_swarm(request: web.Request) -> web.Response:
    show_id = path_id(request, "show_id")
    await authorized(request, WATCHERS, "watching the kiosks share images", show_id)
    await read(request, lambda c: get_show(c, show_id))  # 404 for a show that does not exist
    tracker = request.app.get(TRACKER)
    if tracker is None:
        return ok({"images": [], "reports": []})  # a node without appliance links
    return ok(tracker.snapshot(show_id))


_SWARM_DOC = (
    "What the tracker knows of the show's kiosks sharing images: for each image, each kiosk's "
    "`chunks` held of `count`, its peer `address` (`null` when it does not serve), and how many "
    "bytes it got from the origin (`origin_bytes`: coordinator or URL) and from other kiosks "
    "(`peer_bytes`); `reports` are the latest bad-peer reports (`reporter`, `peer`, `sha256`, "
    "`reason`, `at`). In memory: empty after a restart until the kiosks report again."
)

_DOC = (
    "The image's chunk manifest: `size`, whole-file `sha256`, `chunk_size` (4 MiB) and `chunks`, "
    "the SHA-256 of each chunk in order (the last one shorter). Kiosks check every chunk they "
    "fetch from each other against it. The link's `catalog` names it by the SHA-256 of its "
    "canonical JSON (keys sorted, no spaces), its `manifest` field."
)

ENDPOINTS = [
    Endpoint(
        "GET",
        IMAGE_ROUTE + "/manifest",
        get_manifest,
        "The chunk manifest of an image (per-chunk SHA-256), for sharing among kiosks",
        ROLES,
        response=MANIFEST_OUT,
        errors=(400, 404),
        tag="images",
        extra_doc={"description": _DOC},
    ),
    Endpoint(
        "GET",
        r"/shows/{show_id:\d+}/swarm",
        get_swarm,
        "Image sharing among the show's kiosks: progress and where the bytes came from",
        WATCHERS,
        response=schemas.record("images", "reports"),
        errors=(404,),
        tag="images",
        extra_doc={"description": _SWARM_DOC},
    ),
]
