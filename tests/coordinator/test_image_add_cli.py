"""`burnstand-coordinator image add` as a real subprocess against a real coordinator app (real
SQLite, real image folder, a loopback port): a file becomes a take with its digests and its
image in one command; an upload broken halfway resumes from what the coordinator kept; the
resumable upload's REST contract (offsets, 202, 409, a wrong digest dropping what was kept);
and each bad input is one line on stderr with nothing changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import lzma
import os
import random
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rv_helpers import Client, World, bearer, call

from coordinator.keys import STORE
from coordinator.links import takes as link_takes
from coordinator.rendezvous.images import IMAGES

VENV_BIN = Path(sys.executable).parent
CLI = shutil.which("burnstand-coordinator", path=str(VENV_BIN)) or "burnstand-coordinator"
MB = 1_000_000
WAIT = 20.0


def blob(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def image_add(client: Client, token_file: Path, *argv: str) -> tuple[int, str, str]:
    """Run the CLI without blocking the loop the coordinator under test runs on."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("BURNSTAND_CREDENTIAL", None)
    url = f"http://127.0.0.1:{client.server.port}"
    proc = await asyncio.create_subprocess_exec(
        CLI,
        "image",
        "add",
        "--coordinator",
        url,
        "--credential-file",
        str(token_file),
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(WAIT * 3):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class _Paused(logging.Handler):
    def __init__(self, queue: asyncio.Queue[logging.LogRecord]) -> None:
        super().__init__(logging.INFO)
        self.queue = queue

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "resumable upload paused":
            self.queue.put_nowait(record)


@pytest.fixture
def paused_uploads() -> Iterator[asyncio.Queue[logging.LogRecord]]:
    """The image store's word that a resumable upload stopped with bytes missing."""
    queue: asyncio.Queue[logging.LogRecord] = asyncio.Queue()
    logger = logging.getLogger("coordinator.images")
    handler, old = _Paused(queue), logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield queue
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def token_file(tmp_path: Path, token: str) -> Path:
    path = tmp_path / "credential"
    path.write_text(token + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


async def download(client: Client, token: str, sha256: str) -> bytes:
    resp = await client.get(f"/api/v1/images/{sha256}", headers=bearer(token))
    assert resp.status == 200, await resp.text()
    return await resp.read()


async def pending_take(client: Client, world: World, name: str, data: bytes) -> int:
    """A take added for upload: its digests and no URL."""
    take = await call(
        client,
        "POST",
        f"/shots/{world.shot}/takes",
        world.contributor,
        {
            "name": name,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        },
        201,
    )
    assert take["url"] is None
    return int(take["id"])


async def progress(client: Client, world: World, take: int) -> dict[str, Any]:
    body: dict[str, Any] = await call(
        client, "GET", f"/takes/{take}/image/upload", world.contributor, expect=200
    )
    return body


async def test_a_file_becomes_a_take_with_its_image_in_one_command(
    client: Client, world: World, tmp_path: Path
) -> None:
    data = blob(3 * MB, 1)
    path = tmp_path / "ubuntu-26.04-desktop-amd64.iso"
    path.write_bytes(data)
    code, out, err = await image_add(
        client, token_file(tmp_path, world.contributor), str(path), "--shot", str(world.shot)
    )
    assert code == 0, err
    take = json.loads(out)
    assert take["name"] == path.name
    assert take["present"] is True
    assert take["sha256"] == hashlib.sha256(data).hexdigest()
    assert take["md5"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert f"created take {take['take_id']}" in err
    listed = await call(client, "GET", f"/shots/{world.shot}/takes", world.contributor, expect=200)
    mine = [t for t in listed["items"] if t["id"] == take["take_id"]]
    assert mine[0]["size"] == len(data)
    assert mine[0]["url"] is None  # served from the coordinator's own image store
    assert await download(client, world.contributor, take["sha256"]) == data
    # Running it again for the same take uploads nothing.
    code, out, err = await image_add(
        client, token_file(tmp_path, world.contributor), str(path), "--take", str(take["take_id"])
    )
    assert code == 0, err
    assert "already has its image" in err


async def test_a_compressed_image_is_added_with_what_it_unpacks_to(
    client: Client, world: World, tmp_path: Path
) -> None:
    """Issue 24: `image add` unpacks a compressed file with the image store's decoders and
    declares the image inside with the take; a file that does not unpack is refused before
    any take is made."""
    inside = blob(1 * MB, 6) + bytes(2 * MB)
    packed = lzma.compress(inside, format=lzma.FORMAT_XZ)
    path = tmp_path / "live.img.xz"
    path.write_bytes(packed)
    creds = token_file(tmp_path, world.contributor)
    code, out, err = await image_add(client, creds, str(path), "--shot", str(world.shot))
    assert code == 0, err
    take = json.loads(out)
    want = (len(inside), hashlib.sha256(inside).hexdigest())
    assert (take["extracted_size"], take["extracted_sha256"]) == want
    assert (take["size"], take["sha256"]) == (len(packed), hashlib.sha256(packed).hexdigest())
    assert f"xz image: unpacks to 3.0 MB, SHA-256 {want[1]}" in err
    listed = await call(client, "GET", f"/shots/{world.shot}/takes", world.contributor, expect=200)
    [mine] = [t for t in listed["items"] if t["id"] == take["take_id"]]
    assert (mine["extracted_size"], mine["extracted_sha256"]) == want

    damaged = tmp_path / "damaged.img.xz"
    damaged.write_bytes(packed[: len(packed) // 2])
    code, out, err = await image_add(client, creds, str(damaged), "--shot", str(world.shot))
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert f"{damaged} is not a burnable image: not a sound xz file" in err
    after = await call(client, "GET", f"/shots/{world.shot}/takes", world.contributor, expect=200)
    assert [t["name"] for t in after["items"]] == [t["name"] for t in listed["items"]]


async def test_an_upload_broken_halfway_resumes_where_it_stopped(
    client: Client,
    world: World,
    tmp_path: Path,
    paused_uploads: asyncio.Queue[logging.LogRecord],
) -> None:
    data = blob(4 * MB, 2)
    take = await pending_take(client, world, "broken.iso", data)
    half = len(data) // 2
    # An upload whose connection drops after half the bytes, as a flaky venue uplink does.
    assert client.server.port is not None
    _, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    head = (
        f"PUT /api/v1/takes/{take}/image HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {world.contributor}\r\nContent-Length: {len(data)}\r\n"
        f"Content-Range: bytes 0-{len(data) - 1}/{len(data)}\r\n\r\n"
    )
    writer.write(head.encode() + data[:half])
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    # The coordinator keeps what it took in before the drop (bytes still in flight are lost).
    async with asyncio.timeout(WAIT):
        paused = await paused_uploads.get()
    assert paused.sha256 == hashlib.sha256(data).hexdigest()  # type: ignore[attr-defined]
    kept = await progress(client, world, take)
    assert 0 < kept["offset"] <= half
    assert kept["present"] is False
    # Not downloadable yet: the take is pending.
    resp = await client.get(f"/api/v1/images/{kept['sha256']}", headers=bearer(world.contributor))
    assert resp.status == 404
    path = tmp_path / "broken.iso"
    path.write_bytes(data)
    code, out, err = await image_add(
        client, token_file(tmp_path, world.contributor), str(path), "--take", str(take)
    )
    assert code == 0, err
    assert f"resuming at byte {kept['offset']} of {len(data)}" in err
    assert json.loads(out)["present"] is True
    assert await download(client, world.contributor, kept["sha256"]) == data


async def test_resumable_upload_contract(client: Client, world: World) -> None:
    data = blob(1 * MB, 3)
    take = await pending_take(client, world, "parts.iso", data)
    size = len(data)
    auth = bearer(world.contributor)

    async def put(start: int, end: int, body: bytes) -> tuple[int, dict[str, Any]]:
        resp = await client.put(
            f"/api/v1/takes/{take}/image",
            data=body,
            headers={**auth, "Content-Range": f"bytes {start}-{end}/{size}"},
        )
        return resp.status, await resp.json(content_type=None)

    status, body = await put(0, 99_999, data[:100_000])
    assert (status, body["offset"], body["present"]) == (202, 100_000, False)
    # A range that does not start at the kept offset is refused and names where to go on.
    status, body = await put(0, 99_999, data[:100_000])
    assert status == 409
    assert body["field"] == "offset"
    assert "resume from byte 100000" in body["detail"]
    # A size that is not the take's is refused before a byte is kept.
    resp = await client.put(
        f"/api/v1/takes/{take}/image",
        data=b"x",
        headers={**auth, "Content-Range": f"bytes 100000-100000/{size + 1}"},
    )
    assert resp.status == 422
    resp = await client.put(
        f"/api/v1/takes/{take}/image",
        data=b"x",
        headers={**auth, "Content-Range": "bytes=0-1"},
    )
    assert resp.status == 400
    assert (await progress(client, world, take))["offset"] == 100_000
    # The rest, but with one byte wrong: nothing is stored and the kept bytes are dropped.
    wrong = bytearray(data[100_000:])
    wrong[-1] ^= 0xFF
    status, body = await put(100_000, size - 1, bytes(wrong))
    assert status == 422
    assert body["field"] == "sha256"
    assert (await progress(client, world, take))["offset"] == 0
    status, body = await put(0, size - 1, data)
    assert (status, body["present"]) == (201, True)
    assert await download(client, world.contributor, body["sha256"]) == data


async def test_bad_inputs_are_one_line_and_change_nothing(
    client: Client, world: World, tmp_path: Path
) -> None:
    data = blob(200_000, 4)
    take = await pending_take(client, world, "right.iso", data)
    other = tmp_path / "other.iso"
    other.write_bytes(blob(200_000, 5))
    creds = token_file(tmp_path, world.contributor)
    code, out, err = await image_add(client, creds, str(other), "--take", str(take))
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert f"is not the image of take {take} 'right.iso'" in err
    assert (await progress(client, world, take))["offset"] == 0

    code, _, err = await image_add(client, creds, str(tmp_path / "missing.iso"), "--take", "1")
    assert (code, err.strip()) == (
        1,
        f"burnstand-coordinator: error: {tmp_path / 'missing.iso'}: not a file",
    )
    empty = tmp_path / "empty"
    empty.write_text("", encoding="utf-8")
    code, _, err = await image_add(client, empty, str(other), "--take", str(take))
    assert code == 1
    assert "credential file" in err
    assert "is empty" in err
    shown = token_file(tmp_path, world.show_admin + "x")
    code, _, err = await image_add(client, shown, str(other), "--shot", str(world.shot))
    assert code == 1
    assert err.count("\n") == 1
    assert "401" in err


async def test_kiosks_are_offered_an_uploaded_take_from_the_coordinator_not_a_pending_one(
    client: Client, world: World
) -> None:
    data = blob(300_000, 6)
    take = await pending_take(client, world, "pending.iso", data)
    store, images = client.app[STORE], client.app[IMAGES]
    sha256 = hashlib.sha256(data).hexdigest()

    async def url_now() -> str:
        takes = await store.read(lambda c: link_takes.show_takes(c, world.show, images))
        return next(t.url for t in takes if t.sha256 == sha256)

    # Pending: no URL, so the bridge does not count it among the takes a kiosk can fetch.
    assert await url_now() == ""
    resp = await client.put(
        f"/api/v1/takes/{take}/image", data=data, headers=bearer(world.contributor)
    )
    assert resp.status == 201
    # Uploaded: the kiosk fetches it from this coordinator's image store (relative to its URL).
    assert await url_now() == f"/api/v1/images/{sha256}"
