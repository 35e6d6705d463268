"""REST endpoints of image transfer: upload a take's image, download (resumable), appliance push.

Who may move which image follows the catalog: a contributor (or show admin, or admin) uploads the
image of a take of their show; an appliance may push an image only when a take of its show has
that SHA-256; anyone of a show may download an image some take of their show has (admins any).
For everyone else an image of another show does not exist (404), so hashes do not leak across
shows. Downloads are aiohttp ``FileResponse``s, which answer ``Range``/``If-Range`` with 206, so an
interrupted download resumes with ``Range: bytes=N-``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator

from aiohttp import web

from coordinator.errors import BadRequest, Invalid, NotFound
from coordinator.images.blobs import BMAP_SUFFIX, ImageStore, Received, is_sha256
from coordinator.images.catalog import IMAGES_DIRNAME, ImageInfo, find_by_sha256, find_take
from coordinator.images.derive import derive
from coordinator.images.events import IMAGE_EVENTS, ImageEvents
from coordinator.images.fetch import FETCHER
from coordinator.keys import CONFIG, STORE
from coordinator.rendezvous import schemas
from coordinator.rendezvous.endpoint import PREFIX, Endpoint
from coordinator.rendezvous.http import authorized, caller, ok, path_id, read, require
from coordinator.store.records import ROLES, Role

# The image store logs under its own name wherever its endpoints live (operators filter on it).
log = logging.getLogger("coordinator.images.http")

IMAGES = web.AppKey("images", ImageStore)

UPLOADERS: tuple[Role, ...] = ("admin", "show_admin", "contributor")
PUSHERS: tuple[Role, ...] = ("appliance",)
IMAGE_ROUTE = "/images/{sha256}"

IMAGE_OUT = schemas.record("sha256", "md5", "size", "created")
UPLOAD_OUT = schemas.record("take_id", "name", "sha256", "size", "offset", "present", "fetch")
_CONTENT_RANGE = re.compile(r"^bytes (\d{1,19})-(\d{1,19})/(\d{1,19})$")


def image_sha256(request: web.Request) -> str:
    text = request.match_info["sha256"]
    if not is_sha256(text.lower()):
        raise BadRequest(f"{text!r} is not a SHA-256 (64 hex digits)", field="sha256")
    return text.lower()


def _declared_size(request: web.Request, info: ImageInfo) -> None:
    # Refuse before reading a byte when the client already says the size is wrong.
    declared = request.content_length
    if declared is not None and declared != info.size:
        raise Invalid(
            f"upload has {declared} bytes (Content-Length) but the take's size is {info.size}",
            field="size",
        )


async def _store_upload(request: web.Request, info: ImageInfo, actor: str) -> web.Response:
    images = request.app[IMAGES]
    out = {"sha256": info.sha256, "md5": info.md5, "size": info.size, "take_id": info.take_id}
    if info.present:
        return ok({**out, "created": False})
    _declared_size(request, info)

    # iter_chunked hands out at most chunk_size bytes: the body is never held whole.
    body = request.content.iter_chunked(images.chunk_size)
    received: Received = await images.receive(body, info.expected)
    if received.created:
        await derive(images, request.app[STORE], info, received)
        await request.app[IMAGE_EVENTS].stored(info)
    log.info(
        "image stored",
        extra={
            "sha256": received.sha256,
            "size": received.size,
            "chunks": received.chunks,
            "largest_chunk": received.largest_chunk,
            "new_file": received.created,
            "actor": actor,
        },
    )
    return ok({**out, "created": received.created}, 201 if received.created else 200)


def _content_range(text: str, info: ImageInfo) -> tuple[int, int]:
    match = _CONTENT_RANGE.fullmatch(text.strip())
    if match is None:
        raise BadRequest(
            f"Content-Range {text!r} is not 'bytes START-END/SIZE'", field="Content-Range"
        )
    start, end, total = (int(g) for g in match.groups())
    if total != info.size:
        raise Invalid(
            f"Content-Range names a {total}-byte image but the take's size is {info.size}",
            field="size",
        )
    if not start <= end < total:
        raise BadRequest(
            f"Content-Range bytes {start}-{end} do not lie within 0-{total - 1}",
            field="Content-Range",
        )
    return start, end


async def _store_range(request: web.Request, info: ImageInfo, actor: str) -> web.Response:
    """A resumable upload: bytes START-END of the image; what arrives is kept across drops."""
    images = request.app[IMAGES]
    out = {"take_id": info.take_id, "name": info.name, "sha256": info.sha256, "size": info.size}
    if info.present:
        return ok({**out, "offset": info.size, "present": True})
    start, end = _content_range(request.headers["Content-Range"], info)
    declared = request.content_length
    if declared is not None and declared != end - start + 1:
        raise Invalid(
            f"Content-Length is {declared} but Content-Range names {end - start + 1} bytes",
            field="size",
        )
    body = request.content.iter_chunked(images.chunk_size)
    got = await images.receive_range(body, info.expected, start, end)
    if isinstance(got, int):
        return ok({**out, "offset": got, "present": False}, 202)
    if got.created:
        await derive(images, request.app[STORE], info, got)
        await request.app[IMAGE_EVENTS].stored(info)
    log.info(
        "image stored",
        extra={"sha256": got.sha256, "size": got.size, "resumed": start > 0, "actor": actor},
    )
    return ok({**out, "offset": info.size, "present": True}, 201 if got.created else 200)


async def _uploadable(request: web.Request, flow: str) -> tuple[ImageInfo, str]:
    who = await authorized(request, UPLOADERS, flow)
    take_id = path_id(request, "take_id")
    images = request.app[IMAGES]
    info = await read(request, lambda c: find_take(c, images, take_id))
    if info is None:
        raise NotFound(f"take {take_id} not found")
    require(who, UPLOADERS, flow, info.show_id)
    return info, who.actor


async def upload_take_image(request: web.Request) -> web.Response:
    info, actor = await _uploadable(request, "uploading the image of a take")
    if "Content-Range" in request.headers:
        return await _store_range(request, info, actor)
    return await _store_upload(request, info, actor)


async def upload_progress(request: web.Request) -> web.Response:
    info, _ = await _uploadable(request, "reading the progress of an upload")
    images = request.app[IMAGES]
    if info.present:
        offset = info.size
    else:
        offset = await asyncio.get_running_loop().run_in_executor(
            None, images.resume_offset, info.sha256
        )
    return ok(
        {
            "take_id": info.take_id,
            "name": info.name,
            "sha256": info.sha256,
            "size": info.size,
            "offset": offset,
            "present": info.present,
            "fetch": _fetch_state(request, info),
        }
    )


def _fetch_state(request: web.Request, info: ImageInfo) -> dict[str, object] | None:
    """How the coordinator's fetch of a URL-only take stands (None: no fetch on this node)."""
    fetcher = request.app.get(FETCHER)
    state = None if fetcher is None or not info.url else fetcher.state(info.sha256)
    return None if state is None else state.to_json()


async def push_image(request: web.Request) -> web.Response:
    flow = "pushing an image"
    who = await authorized(request, PUSHERS, flow)
    sha256 = image_sha256(request)
    images = request.app[IMAGES]
    info = await read(request, lambda c: find_by_sha256(c, images, sha256, who.show_id))
    if info is None:
        raise NotFound(f"no take of show {who.show_id} has image {sha256}")
    return await _store_upload(request, info, who.actor)


async def present_image(request: web.Request) -> tuple[str, ImageInfo]:
    """The requested image, if the caller may read it and it was uploaded (else 404)."""
    who = await caller(request)
    sha256 = image_sha256(request)
    images = request.app[IMAGES]
    scope = None if who.role == "admin" else who.show_id
    info = await read(request, lambda c: find_by_sha256(c, images, sha256, scope))
    if info is None:
        where = "any take" if scope is None else f"a take of show {scope}"
        raise NotFound(f"image {sha256} is not {where}")
    if not info.present:
        raise NotFound(
            f"image {sha256} (take {info.take_id}, {info.name!r}) has not been uploaded yet"
        )
    return sha256, info


async def download_image(request: web.Request) -> web.StreamResponse:
    sha256, info = await present_image(request)
    images = request.app[IMAGES]
    return web.FileResponse(
        images.path(sha256),
        chunk_size=images.chunk_size,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{_safe_filename(info.name)}"',
            "Cache-Control": "private, max-age=31536000, immutable",
        },
    )


async def download_bmap(request: web.Request) -> web.StreamResponse:
    sha256, _ = await present_image(request)
    images = request.app[IMAGES]
    path = images.bmap_path(sha256)
    if not await asyncio.get_running_loop().run_in_executor(None, path.is_file):
        raise NotFound(f"image {sha256} has no block map (it has no empty space worth one)")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "application/xml",
            "Cache-Control": "private, max-age=31536000, immutable",
        },
    )


def _safe_filename(name: str) -> str:
    return "".join(
        ch if ch.isascii() and ch.isprintable() and ch not in '"\\/' else "_" for ch in name
    )


_DOWNLOAD_DOC = (
    "The image bytes (`application/octet-stream`). `HEAD` answers the same headers without the "
    "body. `Range: bytes=N-` (or `N-M`) answers 206 with that slice, so an interrupted download "
    "resumes; `If-Range` with the ETag keeps a resume from mixing two files."
)
_BMAP_DOC = (
    "When an uploaded image (unpacked, for a compressed one) holds at least 1 MiB of zeros, the "
    "image store writes its block map: which 4 KiB blocks hold data, with a SHA-256 per range "
    "and for the file (`bmaptool copy --bmap` reads it too). The link catalog names it in a "
    "take's `bmap`; a kiosk writes only the mapped ranges to a USB stick or SD card, has the "
    "device zero the rest, and reads the whole target back. 404 when the image has none."
)
_UPLOAD_DOC = (
    "The request body is the raw image (`application/octet-stream`, with `Content-Length` or "
    "chunked). It is streamed to disk and hashed on the way; it is stored only if its size, "
    "SHA-256 and MD5 match the take (otherwise 422 whose `field` names the mismatch, and "
    "nothing is kept). A compressed image (xz, gzip, bzip2, zstd, a zip of one image) is then "
    "unpacked once: its `extracted_size`/`extracted_sha256` are recorded on the take (422 with "
    "`field` naming the one that differs from what the take declared, or when it does not "
    "unpack to one sound image), and its media (disk image, ISO, hybrid ISO) for every image. "
    "201 when stored, 200 when the image was already present (not rewritten). "
    "With `Content-Range: bytes START-END/SIZE` the upload is resumable: START must be the "
    "offset `GET /takes/{take_id}/image/upload` reports (else 409), what arrives is kept when "
    "the connection breaks, 202 answers the new offset while bytes are missing, and the body "
    "answers `offset` and `present` instead of `md5` and `created`."
)

ENDPOINTS = [
    Endpoint(
        "PUT",
        r"/takes/{take_id:\d+}/image",
        upload_take_image,
        "Upload the image of a take into the coordinator's image store",
        UPLOADERS,
        ok=201,
        response=IMAGE_OUT,
        errors=(200, 202, 400, 404, 408, 409, 422, 507),
        tag="images",
        seed_flow="push/get: contributor pushes an image",
        extra_doc={"description": _UPLOAD_DOC, "request": "application/octet-stream"},
    ),
    Endpoint(
        "GET",
        r"/takes/{take_id:\d+}/image/upload",
        upload_progress,
        "How much of a take's image a resumable upload holds (where to resume)",
        UPLOADERS,
        response=UPLOAD_OUT,
        errors=(404,),
        tag="images",
    ),
    Endpoint(
        "GET",
        IMAGE_ROUTE,
        download_image,
        "Download an image by SHA-256 (resumable with Range); HEAD too",
        ROLES,
        errors=(206, 400, 404, 416),
        tag="images",
        seed_flow="push/get: appliance gets an image",
        extra_doc={"description": _DOWNLOAD_DOC, "content": "application/octet-stream"},
    ),
    Endpoint(
        "GET",
        IMAGE_ROUTE + BMAP_SUFFIX,
        download_bmap,
        "The block map of an image with empty space (bmap 2.0, as bmaptool writes)",
        ROLES,
        errors=(400, 404),
        tag="images",
        extra_doc={"description": _BMAP_DOC, "content": "application/xml"},
    ),
    Endpoint(
        "PUT",
        IMAGE_ROUTE,
        push_image,
        "Appliance pushes an image the coordinator lacks (a take of its show must have it)",
        PUSHERS,
        ok=201,
        response=IMAGE_OUT,
        errors=(200, 400, 404, 408, 422, 507),
        tag="images",
        seed_flow="push/get: appliance pushes an image",
        extra_doc={
            "description": _UPLOAD_DOC.replace("the take", "the show's take"),
            "request": "application/octet-stream",
        },
    ),
]


async def _images_ctx(app: web.Application) -> AsyncIterator[None]:
    images = app[IMAGES]
    removed = await asyncio.get_running_loop().run_in_executor(None, images.prepare)
    if removed:
        log.info("removed half-written uploads", extra={"count": removed, "root": images.root})
    yield


def setup(app: web.Application) -> None:
    """Give ``app`` its image store; the routes come with the rendezvous ENDPOINTS list."""
    app[IMAGES] = ImageStore(app[CONFIG].data_dir / IMAGES_DIRNAME)
    app[IMAGE_EVENTS] = ImageEvents()
    # aiohttp adds HEAD only through add_get; the route table registers GET alone.
    app.router.add_route("HEAD", PREFIX + IMAGE_ROUTE, download_image)
    app.cleanup_ctx.append(_images_ctx)
