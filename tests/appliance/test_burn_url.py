"""`burn --image https://…` against a real aiohttp file server on loopback: the image is written
while it downloads, a connection dropped mid-stream is resumed with a Range request, the verified
file stays in the cache for the next burn, and a 404, a stall and a file that changes length
between ranges each fail cleanly."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from tests.appliance.diskimages import DISK_SIZE, compress, make_disk_image, need_tools
from tests.conftest import free_port

if TYPE_CHECKING:
    from tests.appliance.conftest import LoopFactory

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]
FILL = b"\x99"


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_disk_image(tmp_path_factory.mktemp("urldisk"))


class Server:
    """Serves `root` four ways: plainly (with ranges), dropping the first connection halfway,
    stalling halfway, and changing the file's length between the first answer and a resume."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hits: Counter[str] = Counter()
        self.never = asyncio.Event()  # a stalled answer waits on this until the server stops
        self.url = ""

    async def plain(self, request: web.Request) -> web.StreamResponse:
        self.hits["plain"] += 1
        path = self.root / request.match_info["name"]
        if not path.is_file():
            raise web.HTTPNotFound
        return web.FileResponse(path)

    async def _half_then(self, request: web.Request, then: str) -> web.StreamResponse:
        path = self.root / request.match_info["name"]
        data = path.read_bytes()
        resp = web.StreamResponse(headers={"Content-Length": str(len(data)), "ETag": '"v1"'})
        await resp.prepare(request)
        try:
            await resp.write(data[: len(data) // 2])
            if then == "stall":
                await self.never.wait()
        except ConnectionError:
            return resp  # the client gave up on us: what a stall is for
        if request.transport is not None:
            request.transport.close()  # the connection breaks off mid-body
        return resp

    async def drop(self, request: web.Request) -> web.StreamResponse:
        self.hits["drop"] += 1
        if request.headers.get("Range"):
            return web.FileResponse(self.root / request.match_info["name"])
        return await self._half_then(request, "drop")

    async def stall(self, request: web.Request) -> web.StreamResponse:
        self.hits["stall"] += 1
        if not request.headers.get("Range"):
            return await self._half_then(request, "stall")
        # A resume is accepted (206) and then stalls too.
        size = (self.root / request.match_info["name"]).stat().st_size
        start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
        resp = web.StreamResponse(
            status=206,
            headers={
                "Content-Range": f"bytes {start}-{size - 1}/{size}",
                "Content-Length": str(size - start),
            },
        )
        await resp.prepare(request)
        await self.never.wait()
        return resp

    async def shift(self, request: web.Request) -> web.StreamResponse:
        self.hits["shift"] += 1
        path = self.root / request.match_info["name"]
        if not request.headers.get("Range"):
            return await self._half_then(request, "drop")
        size = path.stat().st_size
        start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
        body = path.read_bytes()[start:] + b"\0" * 4096  # the file grew in between
        return web.Response(
            status=206,
            body=body,
            headers={"Content-Range": f"bytes {start}-{size + 4095}/{size + 4096}"},
        )


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    root = tmp_path / "www"
    root.mkdir()
    srv = Server(root)
    app = web.Application()
    app.router.add_get("/files/{name}", srv.plain)
    app.router.add_get("/drop/{name}", srv.drop)
    app.router.add_get("/stall/{name}", srv.stall)
    app.router.add_get("/shift/{name}", srv.shift)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    srv.url = f"http://127.0.0.1:{port}"
    try:
        yield srv
    finally:
        srv.never.set()
        await runner.cleanup()


async def agent(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appliance.cli",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def burn_url(tmp_path: Path, url: str, target: str, *extra: str) -> tuple[int, str, str]:
    return await agent(
        "burn", "--image", url, "--target", target, "--json",
        "--journal", str(tmp_path / "j.db"), "--cache", str(tmp_path / "cache"),
        "--download-timeout", "0.5", *extra,
    )  # fmt: skip


def result(stdout: str) -> dict[str, Any]:
    [res] = [e for e in map(json.loads, stdout.splitlines()) if e["event"] == "result"]
    return res


async def test_url_burns_while_downloading_resumes_and_caches(
    tmp_path: Path, disk: Path, server: Server, loop_devices: LoopFactory
):
    packed = compress(disk, "xz").read_bytes()
    raw = await asyncio.to_thread(disk.read_bytes)
    (server.root / "pi.img.xz").write_bytes(packed)
    sha = hashlib.sha256(packed).hexdigest()
    dev = loop_devices(64 * MiB, fill=FILL)
    rc, out, err = await burn_url(tmp_path, f"{server.url}/drop/pi.img.xz", dev.path)
    assert rc == 0, err
    assert result(out)["verified"]
    assert dev.read(0, DISK_SIZE) == raw
    assert server.hits["drop"] >= 2  # the first connection broke off; a Range request resumed
    assert (tmp_path / "cache" / sha).read_bytes() == packed

    # The next burn of the same take comes from the cache: the server is not asked again.
    again = loop_devices(64 * MiB, fill=FILL)
    before = sum(server.hits.values())
    rc, out, err = await burn_url(
        tmp_path, f"{server.url}/drop/pi.img.xz", again.path, "--sha256", sha
    )
    assert rc == 0, err
    assert sum(server.hits.values()) == before
    assert again.read(0, DISK_SIZE) == raw


async def test_url_that_404s_is_one_line(tmp_path: Path, server: Server, loop_devices: LoopFactory):
    dev = loop_devices(16 * MiB, fill=FILL)
    rc, _, err = await burn_url(tmp_path, f"{server.url}/files/nope.img.xz", dev.path)
    assert rc == 1
    assert err.count("\n") == 1
    assert "answered 404" in err
    assert dev.read(0, MiB) == FILL * MiB  # nothing was touched


@pytest.mark.parametrize(("route", "words"), [("stall", "stalled"), ("shift", "changed between")])
async def test_download_that_stalls_or_changes_fails_blank(
    tmp_path: Path,
    disk: Path,
    server: Server,
    loop_devices: LoopFactory,
    route: str,
    words: str,
):
    (server.root / "pi.img.gz").write_bytes(compress(disk, "gzip").read_bytes())
    dev = loop_devices(64 * MiB, fill=FILL)
    rc, out, err = await burn_url(tmp_path, f"{server.url}/{route}/pi.img.gz", dev.path)
    assert rc == 1, out
    assert err.count("\n") == 1
    res = result(out)
    assert res["reason"] == "download-failed"
    assert words in res["message"]
    assert dev.read(0, 8 * MiB) == bytes(8 * MiB)
    rc, out, _ = await agent("jobs", "--journal", str(tmp_path / "j.db"), "--json")
    assert [json.loads(line)["state"] for line in out.splitlines()] == ["failed"]


async def test_sigterm_during_a_stalled_download_stops_at_once(
    tmp_path: Path, disk: Path, server: Server, loop_devices: LoopFactory
):
    (server.root / "pi.img.gz").write_bytes(compress(disk, "gzip").read_bytes())
    dev = loop_devices(64 * MiB, fill=FILL)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "appliance.cli", "burn", "--image",
        f"{server.url}/stall/pi.img.gz", "--target", dev.path, "--json",
        "--journal", str(tmp_path / "j.db"), "--cache", str(tmp_path / "cache"),
        "--download-timeout", "600",
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    async with asyncio.timeout(60):
        while True:
            line = await proc.stdout.readline()
            assert line, "the CLI ended before it started writing"
            if json.loads(line).get("state") == "writing":
                break
        proc.terminate()
        # With a 600 s stall timeout, only a burn that stops its readers at once ends here.
        rc = await proc.wait()
    assert rc == 130
    assert dev.read(0, 8 * MiB) == bytes(8 * MiB)


def pipe_zip(raw: Path) -> bytes:
    """`raw` zipped the way `zip` writes to a pipe: its sizes and CRC only in a data
    descriptor after the data (zip64 sizes), its directory at the end."""
    with open(raw, "rb") as src:
        zipper = subprocess.Popen(["zip", "-q", "-", "-"], stdin=src, stdout=subprocess.PIPE)
        out, _ = zipper.communicate(timeout=120)
    assert zipper.returncode == 0
    return out


async def test_a_zip_from_a_url_is_written_before_its_directory_arrives(
    tmp_path: Path, disk: Path, server: Server, loop_devices: LoopFactory
):
    need_tools("zip")
    raw = await asyncio.to_thread(disk.read_bytes)
    (server.root / "pi.zip").write_bytes(await asyncio.to_thread(pipe_zip, disk))
    # Half of it, then nothing: only a burn that unpacks the zip as it arrives gets to write.
    dev = loop_devices(64 * MiB, fill=FILL)
    rc, out, _ = await burn_url(tmp_path, f"{server.url}/stall/pi.zip", dev.path)
    assert rc == 1
    events = [json.loads(line) for line in out.splitlines()]
    assert any(e["event"] == "progress" and e["phase"] == "write" and e["done"] for e in events)
    assert result(out)["reason"] == "download-failed"
    assert dev.read(0, 8 * MiB) == bytes(8 * MiB)
    # Dropped halfway and resumed: the zip's one image lands byte for byte.
    again = loop_devices(64 * MiB, fill=FILL)
    rc, out, err = await burn_url(tmp_path, f"{server.url}/drop/pi.zip", again.path)
    assert rc == 0, err
    assert result(out)["verified"]
    assert again.read(0, DISK_SIZE) == raw


async def test_a_zip_of_two_files_from_a_url_is_refused_naming_both(
    tmp_path: Path, disk: Path, server: Server, loop_devices: LoopFactory
):
    need_tools("zip")
    (tmp_path / "README.txt").write_text("read me\n")
    two = server.root / "two.zip"
    argv = ["zip", "-q", "-j", str(two), str(disk), str(tmp_path / "README.txt")]
    await asyncio.to_thread(subprocess.run, argv, check=True)
    dev = loop_devices(64 * MiB, fill=FILL)
    rc, out, err = await burn_url(tmp_path, f"{server.url}/files/two.zip", dev.path)
    assert rc == 1, out
    res = result(out)
    assert res["reason"] == "unsupported-image"
    assert "disk.img" in res["message"]
    assert "README.txt" in res["message"]
    assert err.count("\n") == 1
    # Refused from the directory when the download was quick enough (target untouched), else
    # at the second entry's header, with the start left blank: never the image's boot sector.
    assert dev.read(0, 8 * MiB) in (bytes(8 * MiB), FILL * (8 * MiB))
