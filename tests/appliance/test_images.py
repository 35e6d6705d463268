"""Image cache: real downloads from an aiohttp server on 127.0.0.1, real files, a tiny tmpfs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import xxhash
from aiohttp import web
from aiohttp.test_utils import TestServer

from appliance.drives.base import CorruptImage, DiskFull
from appliance.images import ImageCache
from appliance.images.sources import DownloadError, HttpSource

MiB = 1 << 20


def blob(size: int, seed: int) -> bytes:
    return hashlib.shake_256(seed.to_bytes(4, "big")).digest(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Origin:
    """What the test server serves, and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: dict[str, int] = field(default_factory=dict)  # name -> bytes, first request only
    ranges: list[str | None] = field(default_factory=list)
    served: int = 0


@pytest.fixture
async def origin(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
) -> tuple[Origin, str]:
    state = Origin()

    async def handler(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        data = state.files.get(name)
        if data is None:
            raise web.HTTPNotFound()
        rng = request.headers.get("Range")
        state.ranges.append(rng)
        start = 0
        if rng:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                raise web.HTTPRequestRangeNotSatisfiable()
        body = data[start:]
        resp = web.StreamResponse(status=206 if rng else 200)
        resp.content_length = len(body)
        if rng:
            resp.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        await resp.prepare(request)
        cut = state.cut_after.pop(name, None)
        if cut is not None:
            await resp.write(body[:cut])
            state.served += cut
            assert request.transport is not None
            request.transport.close()  # the link drops mid-download
            return resp
        await resp.write(body)
        state.served += len(body)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/images/{name}", handler)
    server = await aiohttp_server(app)
    return state, f"http://127.0.0.1:{server.port}/images/"


async def test_fetch_proves_and_stores_image_with_fast_digest(
    tmp_path: Path, origin: tuple[Origin, str]
) -> None:
    state, base = origin
    data = blob(3 * MiB + 17, 1)
    state.files["disc.iso"] = data
    cache = ImageCache(tmp_path / "cache", 100 * MiB)
    image = await cache.fetch(HttpSource(base + "disc.iso"), sha(data), len(data))
    assert image.proven
    assert image.size == len(data)
    assert image.path.read_bytes() == data
    assert image.sha256 == sha(data)
    assert image.xxh3_128 == xxhash.xxh3_128(data).hexdigest()
    meta = json.loads((tmp_path / "cache" / f"{sha(data)}.json").read_text())
    assert meta["xxh3_128"] == image.xxh3_128
    # A second fetch is served from the cache, no request made.
    again = await cache.fetch(HttpSource(base + "disc.iso"), sha(data), len(data))
    assert again.path == image.path
    assert state.ranges == [None]
    # A new cache object (agent restart) finds it.
    reopened = await ImageCache(tmp_path / "cache", 100 * MiB).get(sha(data))
    assert reopened is not None
    assert reopened.xxh3_128 == image.xxh3_128


async def test_interrupted_download_resumes_with_range(
    tmp_path: Path, origin: tuple[Origin, str]
) -> None:
    state, base = origin
    data = blob(6 * MiB, 2)
    state.files["big.iso"] = data
    state.cut_after["big.iso"] = 3 * MiB + 5
    cache = ImageCache(tmp_path / "cache", 100 * MiB)
    image = await cache.fetch(HttpSource(base + "big.iso"), sha(data), len(data))
    assert image.path.read_bytes() == data
    assert state.ranges[0] is None
    assert len(state.ranges) == 2
    assert state.ranges[1] is not None
    resumed_at = int(state.ranges[1].removeprefix("bytes=").rstrip("-"))
    assert resumed_at > 0  # it did not start over
    assert state.served < 2 * len(data)
    assert not any((tmp_path / "cache" / "partial").iterdir())


async def test_partial_file_from_before_a_restart_is_resumed(
    tmp_path: Path, origin: tuple[Origin, str]
) -> None:
    state, base = origin
    data = blob(2 * MiB, 3)
    state.files["x.iso"] = data
    cache = ImageCache(tmp_path / "cache", 100 * MiB)
    (tmp_path / "cache" / "partial" / f"{sha(data)}.part").write_bytes(data[: MiB + 3])
    image = await cache.fetch(HttpSource(base + "x.iso"), sha(data), len(data))
    assert image.path.read_bytes() == data
    assert state.ranges == [f"bytes={MiB + 3}-"]


async def test_wrong_hash_is_refused_and_removed(
    tmp_path: Path, origin: tuple[Origin, str]
) -> None:
    state, base = origin
    data = blob(MiB, 4)
    state.files["bad.iso"] = data
    cache = ImageCache(tmp_path / "cache", 100 * MiB)
    wrong = sha(b"something else")
    with pytest.raises(CorruptImage, match="SHA-256"):
        await cache.fetch(HttpSource(base + "bad.iso"), wrong, len(data))
    assert await cache.get(wrong) is None
    assert list((tmp_path / "cache").rglob("*.part")) == []
    assert list((tmp_path / "cache").glob("*.img")) == []


async def test_wrong_size_is_refused(tmp_path: Path, origin: tuple[Origin, str]) -> None:
    state, base = origin
    data = blob(MiB, 5)
    state.files["short.iso"] = data
    cache = ImageCache(tmp_path / "cache", 100 * MiB)
    with pytest.raises(CorruptImage, match="bytes"):
        await cache.fetch(HttpSource(base + "short.iso"), sha(data + b"tail"), len(data) + 4)
    assert list((tmp_path / "cache").rglob("*.part")) == []


async def test_missing_image_on_server(tmp_path: Path, origin: tuple[Origin, str]) -> None:
    _, base = origin
    cache = ImageCache(tmp_path / "cache", 100 * MiB)
    with pytest.raises(DownloadError, match="404"):
        await cache.fetch(HttpSource(base + "nope.iso"), sha(b"x"), 1)
    assert cache.used_bytes == 0


async def test_truncated_cached_image_is_refused_and_removed(tmp_path: Path) -> None:
    data = blob(MiB, 6)
    src = tmp_path / "src.iso"
    src.write_bytes(data)
    cache = ImageCache(tmp_path / "cache", 100 * MiB)
    image = await cache.add_file(src, sha(data))
    os.truncate(image.path, MiB // 2)  # the SD card lost the tail
    with pytest.raises(CorruptImage, match="expected"):
        await cache.get(sha(data))
    assert not image.path.exists()
    assert await cache.get(sha(data)) is None


async def test_truncated_image_found_at_startup_is_dropped(tmp_path: Path) -> None:
    data = blob(MiB, 7)
    src = tmp_path / "src.iso"
    src.write_bytes(data)
    image = await ImageCache(tmp_path / "cache", 100 * MiB).add_file(src, sha(data))
    os.truncate(image.path, 10)
    cache = ImageCache(tmp_path / "cache", 100 * MiB)
    assert sha(data) not in cache
    assert not image.path.exists()


async def test_add_file_with_wrong_hash_keeps_the_source(tmp_path: Path) -> None:
    data = blob(MiB, 8)
    src = tmp_path / "src.iso"
    src.write_bytes(data)
    cache = ImageCache(tmp_path / "cache", 100 * MiB)
    with pytest.raises(CorruptImage):
        await cache.add_file(src, sha(b"other"))
    assert src.read_bytes() == data
    assert cache.used_bytes == 0


async def test_lru_eviction_skips_pinned_images(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path / "cache", 3 * MiB)
    shas = []
    for i in range(3):
        data = blob(MiB, 10 + i)
        (tmp_path / f"{i}.iso").write_bytes(data)
        await cache.add_file(tmp_path / f"{i}.iso", sha(data))
        shas.append(sha(data))
    await cache.get(shas[0])  # 0 used recently: 1 is now the least recently used
    with cache.pinned(shas[1]):  # ... but it is queued for a burn
        new = blob(MiB, 20)
        (tmp_path / "new.iso").write_bytes(new)
        await cache.add_file(tmp_path / "new.iso", sha(new))
        assert shas[1] in cache
        assert shas[2] not in cache  # the oldest unpinned one went
        assert shas[0] in cache
    assert cache.used_bytes <= 3 * MiB


async def test_full_of_pinned_images_refuses_new_one_and_loses_nothing(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path / "cache", 2 * MiB)
    shas = []
    for i in range(2):
        data = blob(MiB, 30 + i)
        (tmp_path / f"{i}.iso").write_bytes(data)
        await cache.add_file(tmp_path / f"{i}.iso", sha(data))
        shas.append(sha(data))
        cache.pin(shas[-1])
    new = blob(MiB, 40)
    (tmp_path / "new.iso").write_bytes(new)
    with pytest.raises(DiskFull, match="queued or burning"):
        await cache.add_file(tmp_path / "new.iso", sha(new))
    assert all(s in cache for s in shas)
    for s in shas:
        cache.unpin(s)
    await cache.add_file(tmp_path / "new.iso", sha(new))  # room once they are done
    assert sha(new) in cache


def test_bad_sha_is_refused(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path / "cache", MiB)
    with pytest.raises(ValueError, match="SHA-256"):
        cache.pin("not-a-hash")


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs, so ENOSPC is the kernel's, not a mock's."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


async def test_disk_full_while_downloading(tiny_fs: Path, origin: tuple[Origin, str]) -> None:
    state, base = origin
    small, big = blob(200 << 10, 50), blob(2 * MiB, 51)
    state.files["small.iso"] = small
    state.files["big.iso"] = big
    cache = ImageCache(tiny_fs / "cache", 100 * MiB)  # the limit is not what stops us: the disk is
    kept = await cache.fetch(HttpSource(base + "small.iso"), sha(small), len(small))
    with pytest.raises(DiskFull, match="partial file removed"):
        await cache.fetch(HttpSource(base + "big.iso"), sha(big), len(big))
    assert list((tiny_fs / "cache" / "partial").iterdir()) == []
    assert kept.path.read_bytes() == small  # nothing else lost
    assert (await cache.get(sha(small))) is not None


async def test_disk_full_while_adding_a_file(tiny_fs: Path, tmp_path: Path) -> None:
    big = blob(2 * MiB, 52)
    src = tmp_path / "big.iso"
    src.write_bytes(big)
    cache = ImageCache(tiny_fs / "cache", 100 * MiB)
    with pytest.raises(DiskFull):
        await cache.add_file(src, sha(big))
    assert list((tiny_fs / "cache" / "partial").iterdir()) == []
    assert src.read_bytes() == big
