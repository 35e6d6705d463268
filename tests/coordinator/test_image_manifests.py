"""Chunk manifests of the image store, through the REST API on a real store: an upload (plain or
resumed in pieces) leaves a manifest whose chunks are the image's, an image stored before
manifests existed gets one on first ask, and only the image's show may read it."""

from __future__ import annotations

import hashlib
import io

from rv_helpers import Client, World, bearer, call
from test_images_transfer import add_take, blob, digests, images_dir, put

from coordinator.config import CoordinatorConfig
from wire import swarm as sw

MiB = 1024 * 1024


def chunks_of(data: bytes) -> list[str]:
    step = sw.CHUNK_SIZE
    return [hashlib.sha256(data[i : i + step]).hexdigest() for i in range(0, len(data), step)]


async def test_an_upload_leaves_a_manifest_of_its_chunks(client: Client, world: World) -> None:
    data = blob(9 * MiB + 5, seed=21)
    facts = digests(data)
    take = await add_take(client, world.shot, "a.iso", facts)
    assert (await put(client, f"/takes/{take}/image", world.contributor, io.BytesIO(data)))[
        0
    ] == 201
    body = await call(client, "GET", f"/images/{facts['sha256']}/manifest", world.appliance)
    assert body == {
        "size": len(data),
        "sha256": facts["sha256"],
        "chunk_size": sw.CHUNK_SIZE,
        "chunks": chunks_of(data),
    }


async def test_a_resumed_upload_leaves_a_manifest_too(client: Client, world: World) -> None:
    data = blob(5 * MiB, seed=22)
    facts = digests(data)
    take = await add_take(client, world.shot, "r.iso", facts)
    half = len(data) // 2
    first = await put(
        client,
        f"/takes/{take}/image",
        world.contributor,
        io.BytesIO(data[:half]),
        **{"Content-Range": f"bytes 0-{half - 1}/{len(data)}"},
    )
    assert first[0] == 202
    second = await put(
        client,
        f"/takes/{take}/image",
        world.contributor,
        io.BytesIO(data[half:]),
        **{"Content-Range": f"bytes {half}-{len(data) - 1}/{len(data)}"},
    )
    assert second[0] == 201
    body = await call(client, "GET", f"/images/{facts['sha256']}/manifest", world.contributor)
    assert body["chunks"] == chunks_of(data)


async def test_an_image_stored_before_manifests_gets_one_on_first_ask(
    client: Client, world: World, config: CoordinatorConfig
) -> None:
    data = blob(300_000, seed=23)
    facts = digests(data)
    take = await add_take(client, world.shot, "old.iso", facts)
    assert (await put(client, f"/takes/{take}/image", world.contributor, data))[0] == 201
    sidecar = images_dir(config) / "manifests" / f"{facts['sha256']}.json"
    sidecar.unlink()
    body = await call(client, "GET", f"/images/{facts['sha256']}/manifest", world.appliance)
    assert body["chunks"] == chunks_of(data)
    assert sidecar.is_file()
    # A damaged sidecar is made again too, never served.
    sidecar.write_text('{"size": 1}')
    again = await call(client, "GET", f"/images/{facts['sha256']}/manifest", world.appliance)
    assert again == body


async def test_only_the_images_show_reads_its_manifest(client: Client, world: World) -> None:
    data = blob(100_000, seed=24)
    facts = digests(data)
    take = await add_take(client, world.shot, "s.iso", facts)
    url = f"/api/v1/images/{facts['sha256']}/manifest"
    pending = await client.get(url, headers=bearer(world.appliance))
    assert pending.status == 404
    assert "not been uploaded yet" in (await pending.json(content_type=None))["detail"]
    assert (await put(client, f"/takes/{take}/image", world.contributor, data))[0] == 201
    other = await client.get(url, headers=bearer(world.other_show_admin))
    assert other.status == 404
    assert (await client.get(url)).status == 401
    assert (await client.get(url, headers=bearer(world.admin))).status == 200
    bad = await client.get("/api/v1/images/nothex/manifest", headers=bearer(world.admin))
    assert bad.status == 400
