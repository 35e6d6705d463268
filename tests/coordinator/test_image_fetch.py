"""The coordinator fetches the image of a take that only names an outside URL into its store, from
a real aiohttp file server on loopback (the "outside" host): once, with everything an upload gets
(digest check, chunk manifest, what it unpacks to, block map), so the link catalog then names the
store with a manifest. A dropped connection resumes with a range, a server that ignores ranges
starts over cleanly, and a 404, a changed length, wrong bytes, a stall or a store without room is
an error on the take, retried with a growing back-off, with never a half file in the store.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from rv_helpers import Client, FakeClock, MakeClient, World, call
from test_images_transfer import add_take, blob, digests, disk_image, listing, packed

from coordinator.config import CoordinatorConfig
from coordinator.images.events import IMAGE_EVENTS
from coordinator.images.fetch import FETCHER, ImageFetcher
from coordinator.keys import STORE
from coordinator.links.takes import IMAGE_PATH, show_takes
from coordinator.rendezvous.images import IMAGES
from wire import swarm as sw

MiB = 1024 * 1024
WAIT = 20.0


class Outside:
    """The outside host a take's URL names: files from a folder, with ranges (FileResponse), and
    ways to misbehave that a test switches on."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[tuple[str, str | None]] = []  # (name, Range header)
        self.cut_once: set[str] = set()  # drop the connection halfway through, once
        self.ignore_ranges = False
        self.stall: set[str] = set()  # send half, then nothing until released
        self.released = asyncio.Event()
        self.server: TestServer | None = None

    def url(self, name: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(f"/files/{name}"))

    def put(self, name: str, data: bytes) -> str:
        (self.root / name).write_bytes(data)
        return self.url(name)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.requests.append((name, request.headers.get("Range")))
        path = self.root / name
        if not path.is_file():
            raise web.HTTPNotFound()
        if name in self.cut_once or name in self.stall:
            data = path.read_bytes()
            resp = web.StreamResponse(headers={"Content-Length": str(len(data))})
            await resp.prepare(request)
            await resp.write(data[: len(data) // 2])
            if name in self.stall:
                async with asyncio.timeout(WAIT):
                    await self.released.wait()
            self.cut_once.discard(name)
            assert request.transport is not None
            request.transport.close()  # the connection drops mid-body
            return resp
        if self.ignore_ranges:
            return web.Response(body=path.read_bytes())
        return web.FileResponse(path)


@pytest.fixture
async def outside(
    tmp_path: Path, aiohttp_server: Callable[[web.Application], Awaitable[TestServer]]
) -> AsyncIterator[Outside]:
    root = tmp_path / "outside"
    root.mkdir()
    host = Outside(root)
    app = web.Application()
    app.router.add_get("/files/{name}", host.serve)
    host.server = await aiohttp_server(app)
    yield host
    host.released.set()


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    """A coordinator whose fetcher waits for the test: it scans when the test says so."""
    return await make_client(fetch_interval=3600)


@pytest.fixture
async def fetcher(client: Client) -> ImageFetcher:
    # The world's own take names a made-up host; only the takes of a test are fetched here.
    await client.app[STORE].write(lambda c: c.execute("UPDATE takes SET url = ''"))
    return client.app[FETCHER]


async def url_take(client: Client, world: World, name: str, data: bytes, url: str) -> int:
    take = await add_take(client, world.shot, name, digests(data))
    store = client.app[STORE]
    await store.write(lambda c: c.execute("UPDATE takes SET url = ? WHERE id = ?", (url, take)))
    return take


async def cut_first_try(
    client: Client, world: World, fetcher: ImageFetcher, outside: Outside, name: str, data: bytes
) -> int:
    """The id of a take of `data` whose first fetch has lost its connection halfway through."""
    outside.cut_once.add(name)
    take = await url_take(client, world, name, data, outside.put(name, data))
    assert await fetcher.scan() == 0
    return take


async def progress(client: Client, world: World, take: int) -> dict[str, Any]:
    return await call(client, "GET", f"/takes/{take}/image/upload", world.contributor)


def kept(config: CoordinatorConfig) -> list[str]:
    return [n for n in listing(config) if not n.startswith(".")]


@pytest.mark.sqlite_only
async def test_a_url_only_take_is_fetched_once_and_gets_what_an_upload_gets(
    client: Client, world: World, fetcher: ImageFetcher, outside: Outside
) -> None:
    raw = disk_image(4 * MiB)
    data = packed(raw, "xz")
    facts = digests(data)
    take = await url_take(client, world, "pi.img.xz", data, outside.put("pi.img.xz", data))

    assert await fetcher.scan() == 1
    assert await fetcher.scan() == 0  # held now: the outside host is asked once
    assert outside.requests == [("pi.img.xz", None)]

    state = await progress(client, world, take)
    assert (state["present"], state["fetch"]["state"], state["fetch"]["error"]) == (
        True,
        "stored",
        None,
    )
    manifest = await call(client, "GET", f"/images/{facts['sha256']}/manifest", world.appliance)
    assert manifest["chunks"] == [
        hashlib.sha256(data[i : i + sw.CHUNK_SIZE]).hexdigest()
        for i in range(0, len(data), sw.CHUNK_SIZE)
    ]
    page = await call(client, "GET", f"/shots/{world.shot}/takes", world.contributor)
    listed = next(t for t in page["items"] if t["id"] == take)
    assert (listed["extracted_size"], listed["extracted_sha256"], listed["media"]) == (
        len(raw),
        hashlib.sha256(raw).hexdigest(),
        "disk",
    )
    bmap = await client.get(
        f"/api/v1/images/{facts['sha256']}/bmap",
        headers={"Authorization": f"Bearer {world.appliance}"},
    )
    assert bmap.status == 200
    # Kiosks now fetch it from the store, chunk by chunk with a manifest, and share it.
    images = client.app[IMAGES]
    takes = await client.app[STORE].read(lambda c: show_takes(c, world.show, images))
    offered = next(t for t in takes if t.sha256 == facts["sha256"])
    assert offered.url == IMAGE_PATH + facts["sha256"]
    assert offered.manifest == hashlib.sha256(sw.Manifest.from_json(manifest).encode()).hexdigest()


@pytest.mark.sqlite_only
async def test_a_dropped_connection_resumes_with_a_range(
    client: Client,
    world: World,
    fetcher: ImageFetcher,
    outside: Outside,
    clock: FakeClock,
    config: CoordinatorConfig,
) -> None:
    data = blob(3 * MiB, seed=31)
    take = await cut_first_try(client, world, fetcher, outside, "a.iso", data)
    state = (await progress(client, world, take))["fetch"]
    assert state["state"] == "failed"
    assert state["offset"] > 0
    assert kept(config) == []  # only the hidden resumable part, never a half image

    clock.advance(10)
    assert await fetcher.scan() == 1
    assert outside.requests[-1] == ("a.iso", f"bytes={state['offset']}-")
    assert (config.data_dir / "images" / digests(data)["sha256"]).read_bytes() == data


@pytest.mark.sqlite_only
async def test_a_server_that_ignores_ranges_is_read_again_from_the_start(
    client: Client, world: World, fetcher: ImageFetcher, outside: Outside, clock: FakeClock
) -> None:
    data = blob(2 * MiB, seed=32)
    take = await cut_first_try(client, world, fetcher, outside, "b.iso", data)
    outside.ignore_ranges = True
    clock.advance(10)
    assert await fetcher.scan() == 1
    assert (await progress(client, world, take))["present"] is True


@pytest.mark.sqlite_only
async def test_a_404_is_an_error_on_the_take_retried_with_a_growing_back_off(
    client: Client, world: World, fetcher: ImageFetcher, outside: Outside, clock: FakeClock
) -> None:
    data = blob(1000, seed=33)
    take = await url_take(client, world, "gone.iso", data, outside.url("gone.iso"))

    assert await fetcher.scan() == 0
    state = (await progress(client, world, take))["fetch"]
    assert state["state"] == "failed"
    assert "answered HTTP 404" in state["error"]
    assert state["retry_at"] == clock() + 10

    assert await fetcher.scan() == 0  # not before its time
    assert len(outside.requests) == 1
    clock.advance(10)
    assert await fetcher.scan() == 0
    state = (await progress(client, world, take))["fetch"]
    assert (len(outside.requests), state["attempts"], state["retry_at"]) == (2, 2, clock() + 20)

    # Once the file is there, the next try stores it and the error is gone.
    outside.put("gone.iso", data)
    clock.advance(20)
    assert await fetcher.scan() == 1
    state = (await progress(client, world, take))["fetch"]
    assert (state["state"], state["error"]) == ("stored", None)


@pytest.mark.sqlite_only
async def test_a_file_of_another_length_is_refused_before_it_is_read(
    client: Client,
    world: World,
    fetcher: ImageFetcher,
    outside: Outside,
    config: CoordinatorConfig,
) -> None:
    data = blob(100_000, seed=34)
    url = outside.put("c.iso", data + b"more")
    take = await url_take(client, world, "c.iso", data, url)
    assert await fetcher.scan() == 0
    error = (await progress(client, world, take))["fetch"]["error"]
    assert error == (
        f"{url} serves {len(data) + 4} bytes but the take's size is {len(data)}; "
        "the file there is not the take's image"
    )
    assert listing(config) == []


@pytest.mark.sqlite_only
async def test_a_length_change_between_tries_starts_over(
    client: Client,
    world: World,
    fetcher: ImageFetcher,
    outside: Outside,
    clock: FakeClock,
    config: CoordinatorConfig,
) -> None:
    data = blob(2 * MiB, seed=35)
    take = await cut_first_try(client, world, fetcher, outside, "d.iso", data)
    outside.put("d.iso", data + b"x")  # the file there changed while we were away
    clock.advance(10)
    assert await fetcher.scan() == 0
    error = (await progress(client, world, take))["fetch"]["error"]
    assert "now serves 2097153 bytes but the take's size is 2097152" in error
    assert listing(config) == []  # the part from the old file is gone too


@pytest.mark.sqlite_only
async def test_wrong_bytes_are_refused_and_nothing_is_kept(
    client: Client, world: World, fetcher: ImageFetcher, outside: Outside, config: CoordinatorConfig
) -> None:
    data = blob(300_000, seed=36)
    take = await url_take(client, world, "e.iso", data, outside.put("e.iso", blob(300_000, 37)))
    assert await fetcher.scan() == 0
    error = (await progress(client, world, take))["fetch"]["error"]
    assert "SHA-256" in error
    assert listing(config) == []


@pytest.mark.sqlite_only
async def test_a_stalled_server_is_given_up_and_the_part_kept_for_later(
    client: Client,
    world: World,
    fetcher: ImageFetcher,
    outside: Outside,
    clock: FakeClock,
    config: CoordinatorConfig,
) -> None:
    data = blob(1 * MiB, seed=38)
    client.app[IMAGES].stall_seconds = 0.5
    outside.stall.add("f.iso")
    take = await url_take(client, world, "f.iso", data, outside.put("f.iso", data))
    assert await fetcher.scan() == 0
    state = (await progress(client, world, take))["fetch"]
    assert "stalled" in state["error"] or "no data" in state["error"], state
    assert kept(config) == []
    outside.stall.clear()
    outside.released.set()
    clock.advance(10)
    assert await fetcher.scan() == 1
    assert outside.requests[-1][1] == f"bytes={len(data) // 2}-"


@pytest.mark.sqlite_only
async def test_an_image_larger_than_the_store_has_room_for_is_not_fetched(
    client: Client, world: World, fetcher: ImageFetcher, outside: Outside
) -> None:
    huge = 1 << 50
    take = await add_take(
        client, world.shot, "huge.iso", {"size": huge, "sha256": "ab" * 32, "md5": "cd" * 16}
    )
    url = outside.url("huge.iso")
    await client.app[STORE].write(
        lambda c: c.execute("UPDATE takes SET url = ? WHERE id = ?", (url, take))
    )
    assert await fetcher.scan() == 0
    error = (await progress(client, world, take))["fetch"]["error"]
    assert f"needs {huge} more" in error
    assert outside.requests == []


async def test_a_take_added_with_a_url_is_fetched_in_the_background(
    client: Client, world: World, fetcher: ImageFetcher, outside: Outside
) -> None:
    """Through the REST API, with the fetcher's own loop: adding the take wakes it."""
    data = blob(1 * MiB, seed=39)
    stored = asyncio.Event()

    async def heard(_image: object) -> None:
        stored.set()

    client.app[IMAGE_EVENTS].listeners.append(heard)
    facts = digests(data)
    body = {**facts, "name": "g.iso", "url": outside.put("g.iso", data)}
    take = await call(client, "POST", f"/shots/{world.shot}/takes", world.contributor, body, 201)
    async with asyncio.timeout(WAIT):  # the fetcher's own interval is an hour
        await stored.wait()
    assert (await progress(client, world, take["id"]))["present"] is True
    resp = await client.get(
        f"/api/v1/images/{facts['sha256']}",
        headers={"Authorization": f"Bearer {world.appliance}"},
    )
    assert await resp.read() == data


@pytest.mark.sqlite_only
async def test_a_fetched_image_that_unpacks_to_another_than_declared_is_not_kept(
    client: Client, world: World, fetcher: ImageFetcher, outside: Outside, config: CoordinatorConfig
) -> None:
    """The same check an upload gets, on the same path: the image and its manifest go again."""
    data = packed(disk_image(2 * MiB), "gzip")
    take = await url_take(client, world, "pi.img.gz", data, outside.put("pi.img.gz", data))
    await client.app[STORE].write(
        lambda c: c.execute("UPDATE takes SET extracted_sha256 = ? WHERE id = ?", ("0" * 64, take))
    )
    assert await fetcher.scan() == 0
    state = (await progress(client, world, take))["fetch"]
    assert state["error"].startswith("the image unpacks to extracted_sha256 ")
    assert state["error"].endswith(f"but the take declares {'0' * 64}; nothing was kept")
    assert listing(config) == []
