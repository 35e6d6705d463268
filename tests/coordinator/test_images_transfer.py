"""Image transfer against a real app on a real SQLite file and a real image folder: uploads that
match their take are stored under their SHA-256, every mismatch, a full disk and a vanished client
leave nothing behind, downloads resume with Range, and only the right roles and shows get through.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import random
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from rv_helpers import Client, FakeClock, MakeClient, World, bearer, call, make_world

from appliance.images.bmap import RangeChecker, load_bmap
from coordinator.config import CoordinatorConfig
from coordinator.images.blobs import CHUNK_SIZE, PARTIAL_PREFIX
from coordinator.images.catalog import lookup_md5, lookup_sha256
from coordinator.keys import STORE
from coordinator.rendezvous.images import IMAGES
from coordinator.store.catalog import LEVELS, add_child
from coordinator.store.people import create_appliance

MiB = 1024 * 1024
WAIT = 10.0


def blob(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def digests(data: bytes) -> dict[str, Any]:
    return {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),  # noqa: S324  # the catalog's MD5, not security
    }


async def add_take(
    client: Client, shot: int, name: str, facts: dict[str, Any], notes: str = ""
) -> int:
    body = {**facts, "name": name, "url": f"https://example.org/{name}", "notes": notes}
    store = client.app[STORE]
    take = await store.write(lambda c: add_child(c, 1.0, "test", LEVELS["take"], shot, body))
    return int(take["id"])


async def other_show_shot(client: Client, world: World) -> int:
    """A shot in the world's second show, built straight in the store."""
    store = client.app[STORE]

    def build(c: Any) -> int:
        ep = add_child(c, 1.0, "test", LEVELS["episode"], world.other_show, {"name": "E"})
        seq = add_child(c, 1.0, "test", LEVELS["sequence"], ep["id"], {"name": "Q"})
        shot = add_child(c, 1.0, "test", LEVELS["shot"], seq["id"], {"name": "H"})
        return int(shot["id"])

    return await store.write(build)


def images_dir(config: CoordinatorConfig) -> Path:
    return config.data_dir / "images"


def listing(config: CoordinatorConfig) -> list[str]:
    """The image files, and the chunk manifests (``manifests/<sha256>.json``) stored with them."""
    root = images_dir(config)
    names = [n for n in os.listdir(root) if n != "manifests"]
    if (root / "manifests").is_dir():
        names += [f"manifests/{n}" for n in os.listdir(root / "manifests")]
    return sorted(names)


async def put(
    client: Client, path: str, token: str | None, data: Any, **headers: str
) -> tuple[int, Any]:
    resp = await client.put("/api/v1" + path, data=data, headers={**bearer(token), **headers})
    return resp.status, await resp.json(content_type=None)


async def stream(data: bytes, piece: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A chunked request body (no Content-Length), so only the streamed checks can catch it."""
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


class LogWatch(logging.Handler):
    """Collects the image store's log records and lets a test wait for one (bounded)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.changed.set()

    async def wait_for(self, message: str) -> logging.LogRecord:
        async with asyncio.timeout(WAIT):
            while True:
                for record in self.records:
                    if record.getMessage() == message:
                        return record
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
def logs() -> Iterator[LogWatch]:
    logger = logging.getLogger("coordinator.images")
    watch = LogWatch()
    old = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(watch)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)
        logger.setLevel(old)


# --- upload ---------------------------------------------------------------------------------


async def test_upload_stores_the_image_under_its_sha256(
    client: Client, world: World, config: CoordinatorConfig
) -> None:
    data = blob(300_000)
    facts = digests(data)
    take = await add_take(client, world.shot, "a.iso", facts)
    status, body = await put(client, f"/takes/{take}/image", world.contributor, data)
    assert status == 201, body
    assert body == {**facts, "take_id": take, "created": True}
    stored = images_dir(config) / facts["sha256"]
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == facts["sha256"]
    assert listing(config) == [facts["sha256"], f"manifests/{facts['sha256']}.json"]


async def test_upload_again_answers_200_and_does_not_rewrite(
    client: Client, world: World, config: CoordinatorConfig
) -> None:
    data = blob(50_000)
    facts = digests(data)
    take = await add_take(client, world.shot, "a.iso", facts)
    assert (await put(client, f"/takes/{take}/image", world.contributor, io.BytesIO(data)))[
        0
    ] == 201
    before = (images_dir(config) / facts["sha256"]).stat()
    status, body = await put(client, f"/takes/{take}/image", world.contributor2, data)
    assert (status, body["created"]) == (200, False)
    after = (images_dir(config) / facts["sha256"]).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.parametrize(
    ("wrong", "chunked"),
    [("size", False), ("size", True), ("bigger", True), ("sha256", False), ("md5", True)],
)
async def test_mismatched_upload_is_refused_and_nothing_is_kept(
    client: Client, world: World, config: CoordinatorConfig, wrong: str, chunked: bool
) -> None:
    data = blob(200_000)
    facts = digests(data)
    sent = data
    field = wrong
    if wrong == "size":
        sent = data[:-1]
    elif wrong == "bigger":
        sent, field = data + b"x", "size"
    elif wrong == "sha256":
        sent = bytes([data[0] ^ 1]) + data[1:]
    else:  # the take's MD5 is wrong while size and SHA-256 are right
        facts = {**facts, "md5": hashlib.md5(b"other").hexdigest()}  # noqa: S324
    take = await add_take(client, world.shot, "a.iso", facts)
    status, body = await put(
        client, f"/takes/{take}/image", world.contributor, stream(sent) if chunked else sent
    )
    assert status == 422, body
    assert body["field"] == field
    assert field in body["detail"].lower().replace("-", "")
    assert listing(config) == []


async def test_client_that_disconnects_mid_upload_leaves_nothing(
    client: Client, world: World, config: CoordinatorConfig, logs: LogWatch
) -> None:
    data = blob(4 * MiB)
    take = await add_take(client, world.shot, "a.iso", digests(data))
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    head = (
        f"PUT /api/v1/takes/{take}/image HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {world.contributor}\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    writer.write(head.encode() + data[: len(data) // 2])
    await writer.drain()
    started = await logs.wait_for("image upload started")
    partial = Path(started.partial).name  # type: ignore[attr-defined]
    assert partial.startswith(PARTIAL_PREFIX)
    assert listing(config) == [partial]
    writer.close()
    await writer.wait_closed()
    abandoned = await logs.wait_for("image upload abandoned")
    assert 0 < abandoned.received < len(data)  # type: ignore[attr-defined]
    assert listing(config) == []
    assert await reader.read() == b""


async def test_stalled_upload_is_given_up_and_leaves_nothing(
    client: Client, world: World, config: CoordinatorConfig, logs: LogWatch
) -> None:
    data = blob(100_000)
    take = await add_take(client, world.shot, "a.iso", digests(data))
    client.app[IMAGES].stall_seconds = 0.2
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    head = (
        f"PUT /api/v1/takes/{take}/image HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {world.contributor}\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    writer.write(head.encode() + data[:1000])
    await writer.drain()
    try:
        status_line = await asyncio.wait_for(reader.readline(), WAIT)
        assert status_line.startswith(b"HTTP/1.1 408 ")
        await logs.wait_for("image upload abandoned")
        assert listing(config) == []
    finally:
        writer.close()
        await writer.wait_closed()


async def test_concurrent_uploads_of_one_image_store_it_once(
    client: Client, world: World, config: CoordinatorConfig
) -> None:
    data = blob(3 * MiB, seed=11)
    facts = digests(data)
    take = await add_take(client, world.shot, "a.iso", facts)
    results = await asyncio.gather(
        put(client, f"/takes/{take}/image", world.contributor, stream(data)),
        put(client, f"/takes/{take}/image", world.contributor2, stream(data)),
    )
    assert sorted(status for status, _ in results) == [200, 201]
    assert listing(config) == [facts["sha256"], f"manifests/{facts['sha256']}.json"]


async def test_upload_is_read_in_bounded_chunks(
    client: Client, world: World, config: CoordinatorConfig, logs: LogWatch
) -> None:
    total, piece = 64 * MiB, MiB
    sha, md5 = hashlib.sha256(), hashlib.md5()  # noqa: S324
    for i in range(total // piece):
        block = blob(piece, seed=i)
        sha.update(block)
        md5.update(block)
    facts: dict[str, Any] = {"size": total, "sha256": sha.hexdigest(), "md5": md5.hexdigest()}
    take = await add_take(client, world.shot, "big.iso", facts)

    async def body() -> AsyncIterator[bytes]:
        # Generated piece by piece on this side too: neither end holds 64 MiB.
        for i in range(total // piece):
            yield blob(piece, seed=i)

    status, out = await put(client, f"/takes/{take}/image", world.contributor, body())
    assert status == 201, out
    stored = await logs.wait_for("image stored")
    assert stored.largest_chunk <= CHUNK_SIZE  # type: ignore[attr-defined]
    assert stored.chunks >= total // CHUNK_SIZE  # type: ignore[attr-defined]
    assert (images_dir(config) / facts["sha256"]).stat().st_size == total


async def test_upload_checks_role_and_show(
    client: Client, world: World, config: CoordinatorConfig
) -> None:
    data = blob(1000)
    take = await add_take(client, world.shot, "a.iso", digests(data))
    path = f"/takes/{take}/image"
    assert (await put(client, path, None, data))[0] == 401
    assert (await put(client, path, "forged", data))[0] == 401
    status, body = await put(client, path, world.other_show_admin, data)
    assert status == 403
    assert f"not show {world.show}" in body["detail"]
    assert (await put(client, path, world.appliance, data))[0] == 403
    assert (await put(client, "/takes/999/image", world.contributor, data))[0] == 404
    assert listing(config) == []


async def test_leftover_partial_uploads_are_removed_at_start(
    make_client: MakeClient, config: CoordinatorConfig
) -> None:
    images_dir(config).mkdir(parents=True)
    (images_dir(config) / f"{PARTIAL_PREFIX}dead{'.part'}").write_bytes(b"half")
    (images_dir(config) / ("ef" * 32)).write_bytes(b"kept")
    await make_client()
    assert listing(config) == ["ef" * 32]


# --- full disk ------------------------------------------------------------------------------


@pytest.fixture
def tiny_images(config: CoordinatorConfig) -> Iterator[Path]:
    """DIR/images on a 1 MiB tmpfs, so the disk really fills up."""
    where = images_dir(config)
    where.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(where)], check=True, timeout=WAIT
    )
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True, timeout=WAIT)


async def test_full_disk_answers_507_and_keeps_nothing(
    tiny_images: Path, make_client: MakeClient, clock: FakeClock, config: CoordinatorConfig
) -> None:
    client = await make_client()
    world = await make_world(client, clock)
    big, small = blob(2 * MiB), blob(100_000, seed=2)
    big_take = await add_take(client, world.shot, "big.iso", digests(big))
    small_take = await add_take(client, world.shot, "small.iso", digests(small))
    status, body = await put(client, f"/takes/{big_take}/image", world.contributor, io.BytesIO(big))
    assert status == 507, body
    assert body["title"] == "Not enough space in the image store"
    assert "nothing was kept" in body["detail"]
    assert listing(config) == []
    assert os.statvfs(tiny_images).f_bfree == os.statvfs(tiny_images).f_blocks
    # The space is really back: an image that fits is stored afterwards.
    assert (await put(client, f"/takes/{small_take}/image", world.contributor, small))[0] == 201


# --- download -------------------------------------------------------------------------------


@pytest.fixture
async def stored(client: Client, world: World) -> tuple[bytes, str]:
    data = blob(1_000_000, seed=7)
    facts = digests(data)
    take = await add_take(client, world.shot, "ubuntu 26.04.iso", facts)
    assert (await put(client, f"/takes/{take}/image", world.contributor, io.BytesIO(data)))[
        0
    ] == 201
    return data, facts["sha256"]


async def test_range_download_gives_the_exact_slice(
    client: Client, world: World, stored: tuple[bytes, str]
) -> None:
    data, sha = stored
    resp = await client.get(
        f"/api/v1/images/{sha}", headers={**bearer(world.appliance), "Range": "bytes=1000-1999"}
    )
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    assert await resp.read() == data[1000:2000]


async def test_interrupted_download_resumes_from_where_it_stopped(
    client: Client, world: World, stored: tuple[bytes, str]
) -> None:
    _, sha = stored
    first = await client.get(f"/api/v1/images/{sha}", headers=bearer(world.appliance))
    assert first.status == 200
    assert first.headers["Content-Disposition"] == 'attachment; filename="ubuntu 26.04.iso"'
    etag = first.headers["ETag"]
    head = await first.content.readexactly(123_457)
    first.close()  # the connection drops mid-download
    rest = await client.get(
        f"/api/v1/images/{sha}",
        headers={**bearer(world.appliance), "Range": f"bytes={len(head)}-", "If-Range": etag},
    )
    assert rest.status == 206
    assert hashlib.sha256(head + await rest.read()).hexdigest() == sha


async def test_head_and_unsatisfiable_range(
    client: Client, world: World, stored: tuple[bytes, str]
) -> None:
    data, sha = stored
    head = await client.head(f"/api/v1/images/{sha}", headers=bearer(world.contributor2))
    assert head.status == 200
    assert int(head.headers["Content-Length"]) == len(data)
    assert await head.read() == b""
    past = await client.get(
        f"/api/v1/images/{sha}",
        headers={**bearer(world.appliance), "Range": f"bytes={len(data) + 10}-"},
    )
    assert past.status == 416


async def test_download_roles(client: Client, world: World, stored: tuple[bytes, str]) -> None:
    _, sha = stored
    url = f"/api/v1/images/{sha}"
    assert (await client.get(url)).status == 401
    other = await client.get(url, headers=bearer(world.other_show_admin))
    assert other.status == 404
    assert f"show {world.other_show}" in (await other.json(content_type=None))["detail"]
    for token in (world.admin, world.show_admin, world.contributor):
        assert (await client.get(url, headers=bearer(token))).status == 200
    bad = await client.get("/api/v1/images/not-a-hash", headers=bearer(world.admin))
    assert bad.status == 400
    missing = await client.get(f"/api/v1/images/{'0' * 64}", headers=bearer(world.admin))
    assert missing.status == 404


async def test_download_of_a_take_not_uploaded_yet_is_404(client: Client, world: World) -> None:
    body = await call(client, "GET", f"/images/{'ab' * 32}", world.appliance, expect=404)
    assert "has not been uploaded yet" in body["detail"]


# --- appliance push -------------------------------------------------------------------------


async def test_appliance_pushes_an_image_of_its_show(
    client: Client, world: World, config: CoordinatorConfig
) -> None:
    data = blob(70_000, seed=3)
    facts = digests(data)
    await add_take(client, world.shot, "p.iso", facts)
    status, body = await put(client, f"/images/{facts['sha256']}", world.appliance, stream(data))
    assert (status, body["created"]) == (201, True)
    assert (images_dir(config) / facts["sha256"]).read_bytes() == data
    again = await put(client, f"/images/{facts['sha256'].upper()}", world.appliance, data)
    assert again == (200, {**facts, "take_id": body["take_id"], "created": False})


async def test_appliance_push_is_refused_outside_its_show_or_with_wrong_bytes(
    client: Client, world: World, config: CoordinatorConfig
) -> None:
    theirs = blob(5000, seed=4)
    await add_take(client, await other_show_shot(client, world), "t.iso", digests(theirs))
    sha = digests(theirs)["sha256"]
    status, body = await put(client, f"/images/{sha}", world.appliance, theirs)
    assert status == 404
    assert f"show {world.show}" in body["detail"]
    ours = blob(5000, seed=5)
    await add_take(client, world.shot, "o.iso", digests(ours))
    wrong = await put(
        client, f"/images/{digests(ours)['sha256']}", world.appliance, blob(5000, seed=6)
    )
    assert (wrong[0], wrong[1]["field"]) == (422, "sha256")
    assert (await put(client, f"/images/{sha}", world.contributor, theirs))[0] == 403
    assert (await put(client, f"/images/{sha}", None, theirs))[0] == 401
    assert listing(config) == []


# --- lookups for WHATIS/INFO -----------------------------------------------------------------


async def test_lookup_by_md5_and_sha256(client: Client, world: World, clock: FakeClock) -> None:
    store = client.app[STORE]
    data = blob(4096, seed=9)
    facts = digests(data)
    shot = await store.write(
        lambda c: add_child(
            c,
            clock(),
            "test",
            LEVELS["shot"],
            world.sequence,
            {"name": "USB", "direction_notes": "Label: Desktop amd64\nmin 8 GB"},
        )
    )
    take = await add_take(client, shot["id"], "d.img", facts, notes="release candidate 2")
    info = await lookup_md5(store, facts["md5"].upper())
    assert info is not None
    assert (info.name, info.size, info.sha256, info.take_id, info.present) == (
        "d.img",
        4096,
        facts["sha256"],
        take,
        False,
    )
    assert info.description == "Label: Desktop amd64\nmin 8 GB\nrelease candidate 2"
    assert (await put(client, f"/takes/{take}/image", world.contributor, io.BytesIO(data)))[
        0
    ] == 201
    now_present = await lookup_sha256(store, facts["sha256"])
    assert now_present is not None
    assert now_present.present
    assert await lookup_md5(store, facts["md5"], show_id=world.other_show) is None
    assert await lookup_md5(store, "0" * 32) is None
    assert await lookup_sha256(store, "nonsense") is None


async def test_appliance_created_in_store_can_download(
    client: Client, world: World, clock: FakeClock, stored: tuple[bytes, str]
) -> None:
    store = client.app[STORE]
    other = await store.write(
        lambda c: create_appliance(c, clock(), "test", world.other_show, "kiosk-x")
    )
    _, sha = stored
    resp = await client.get(f"/api/v1/images/{sha}", headers=bearer(other["credential"]))
    assert resp.status == 404


# --- what a compressed upload unpacks to ------------------------------------------------------


def disk_image(size: int = 2 * MiB) -> bytes:
    """A raw disk image: random bytes with an MBR signature, half zeros so it packs well."""
    data = bytearray(blob(size // 2) + bytes(size - size // 2))
    data[510:512] = b"\x55\xaa"
    return bytes(data)


def packed(data: bytes, program: str) -> bytes:
    return subprocess.run([program, "-c"], input=data, capture_output=True, check=True).stdout


async def listed_take(client: Client, world: World, take: int) -> dict[str, Any]:
    page = await call(client, "GET", f"/shots/{world.shot}/takes", world.contributor, expect=200)
    return next(t for t in page["items"] if t["id"] == take)


@pytest.mark.parametrize("program", ["xz", "gzip", "zstd", "bzip2"])
async def test_compressed_upload_records_what_it_unpacks_to(
    client: Client, world: World, program: str
) -> None:
    raw = disk_image()
    data = packed(raw, program)
    take = await add_take(client, world.shot, f"pi.img.{program}", digests(data))
    status, body = await put(client, f"/takes/{take}/image", world.contributor, io.BytesIO(data))
    assert status == 201, body
    listed = await listed_take(client, world, take)
    assert listed["size"] == len(data)
    assert listed["extracted_size"] == len(raw)
    assert listed["extracted_sha256"] == hashlib.sha256(raw).hexdigest()
    assert listed["media"] == "disk"


async def test_raw_upload_records_its_media_only(client: Client, world: World) -> None:
    iso = bytearray(blob(64 * 1024))
    iso[510:512] = b"\0\0"
    iso[32769:32774] = b"CD001"
    take = await add_take(client, world.shot, "live.iso", digests(bytes(iso)))
    assert (await put(client, f"/takes/{take}/image", world.contributor, bytes(iso)))[0] == 201
    listed = await listed_take(client, world, take)
    assert (listed["media"], listed["extracted_size"], listed["extracted_sha256"]) == (
        "iso",
        None,
        None,
    )


@pytest.mark.parametrize("field", ["extracted_size", "extracted_sha256"])
async def test_upload_unpacking_to_another_image_than_declared_is_refused(
    client: Client, world: World, config: CoordinatorConfig, field: str
) -> None:
    raw = disk_image()
    data = packed(raw, "gzip")
    declared = {
        "extracted_size": len(raw) + 512,
        "extracted_sha256": hashlib.sha256(b"another image").hexdigest(),
    }
    facts = {**digests(data), field: declared[field]}
    take = await add_take(client, world.shot, "pi.img.gz", facts)
    status, body = await put(client, f"/takes/{take}/image", world.contributor, io.BytesIO(data))
    assert status == 422, body
    assert body["field"] == field
    assert listing(config) == []


async def test_damaged_compressed_upload_is_refused(
    client: Client, world: World, config: CoordinatorConfig
) -> None:
    data = packed(disk_image(), "xz")[:-100]  # cut: the xz index is gone
    take = await add_take(client, world.shot, "cut.img.xz", digests(data))
    status, body = await put(client, f"/takes/{take}/image", world.contributor, io.BytesIO(data))
    assert status == 422, body
    assert "not a sound xz file" in body["detail"]
    assert listing(config) == []


# --- block maps of images with empty space ----------------------------------------------------


@pytest.mark.parametrize("program", ["gzip", None])
async def test_an_upload_with_empty_space_gets_a_block_map_the_kiosk_reads(
    client: Client, world: World, tmp_path: Path, program: str | None
) -> None:
    raw = disk_image(4 * MiB)  # its second half is zeros
    data = raw if program is None else packed(raw, program)
    take = await add_take(client, world.shot, "pi.img", digests(data))
    assert (await put(client, f"/takes/{take}/image", world.contributor, io.BytesIO(data)))[
        0
    ] == 201
    sha = hashlib.sha256(data).hexdigest()
    resp = await client.get(f"/api/v1/images/{sha}/bmap", headers=bearer(world.appliance))
    assert resp.status == 200
    assert resp.content_type == "application/xml"
    path = tmp_path / "pi.bmap"
    path.write_bytes(await resp.read())
    # The kiosk's own reader accepts it (its checksum too), and it describes the unpacked image:
    # every byte outside its ranges is zero, each range's SHA-256 holds.
    bmap = load_bmap(path)
    assert bmap.image_size == len(raw)
    mapped = sum(r.end - r.start for r in bmap.ranges)
    assert 0 < mapped <= len(raw) // 2
    pos = 0
    for r in bmap.ranges:
        assert raw[pos : r.start].count(0) == r.start - pos
        pos = r.end
    assert raw[pos:].count(0) == len(raw) - pos
    RangeChecker(bmap, "pi.img").feed(0, memoryview(raw))


async def test_an_upload_without_empty_space_has_no_block_map(client: Client, world: World) -> None:
    data = blob(2 * MiB, 9)
    take = await add_take(client, world.shot, "full.img", digests(data))
    assert (await put(client, f"/takes/{take}/image", world.contributor, io.BytesIO(data)))[
        0
    ] == 201
    sha = hashlib.sha256(data).hexdigest()
    resp = await client.get(f"/api/v1/images/{sha}/bmap", headers=bearer(world.appliance))
    assert resp.status == 404
    assert "no block map" in (await resp.json())["detail"]


async def test_a_zip_with_macos_leftovers_is_read_as_the_kiosk_reads_it(
    client: Client, world: World, tmp_path: Path
) -> None:
    # The kiosk burns the one image of such a zip (plumbing.unpack's rule): the store must agree.
    raw = disk_image()
    (tmp_path / "__MACOSX").mkdir()
    (tmp_path / "__MACOSX" / "._pi.img").write_bytes(b"\0\5\26\7 resource fork")
    (tmp_path / "pi.img").write_bytes(raw)
    argv = ["zip", "-q", "pi.zip", "pi.img", "__MACOSX/._pi.img"]
    await asyncio.to_thread(subprocess.run, argv, cwd=tmp_path, check=True)
    data = (tmp_path / "pi.zip").read_bytes()
    take = await add_take(client, world.shot, "pi.zip", digests(data))
    status, body = await put(client, f"/takes/{take}/image", world.contributor, io.BytesIO(data))
    assert status == 201, body
    listed = await listed_take(client, world, take)
    assert listed["extracted_sha256"] == hashlib.sha256(raw).hexdigest()
