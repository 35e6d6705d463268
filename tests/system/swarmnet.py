"""A venue in network namespaces for the swarm test and benchmark: kiosks on one bridged LAN, the
coordinator behind a link shaped with `tc` (the venue's weak uplink).

`Venue` makes (and removes) its own namespaces: one holding the bridge, one for the coordinator
(`burnstand-coordinator serve` on a real data folder prepared here: a show, a take whose image is
in the store with its chunk manifest, one appliance credential per kiosk) whose veth sends at most
`rate` (a `tc tbf` qdisc), and one per kiosk (`tests.system.swarm_node`) on an unshaped veth.
`Venue.round(share)` starts every kiosk, waits until all are linked, says `go`, and returns each
kiosk's `done` line, the seconds until the last one held the verified image, and the bytes the
coordinator sent. One kiosk may be a liar serving a damaged copy of the image.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.config import DB_FILENAME
from coordinator.images.blobs import Expected, ImageStore
from coordinator.store import Store
from coordinator.store.catalog import LEVELS, add_child, add_show
from coordinator.store.people import create_appliance
from wire import swarm as sw

REPO = Path(__file__).resolve().parents[2]
PORT = 8080
PEER_PORT = 8765
OUTSIDE_PORT = 8081
WAIT = 600.0


def run(*argv: str) -> str:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, timeout=30).stdout


def netns_available() -> str | None:
    """None when this machine can make namespaces, veths, bridges and tbf qdiscs; else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"bsprobe{os.getpid()}"
    try:
        run("ip", "netns", "add", probe)
        run("ip", "-n", probe, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        run("ip", "-n", probe, "link", "set", "v0", "up")
        run(
            "tc",
            "-n",
            probe,
            "qdisc",
            "add",
            "dev",
            "v0",
            "root",
            "tbf",
            "rate",
            "40mbit",
            "burst",
            "64kb",
            "latency",
            "50ms",
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot build a test network here: {exc}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], check=False, capture_output=True, timeout=30)
    return None


@dataclass
class Image:
    path: Path
    size: int
    sha256: str
    md5: str
    damaged: Path  # the liar's copy: one byte changed in every chunk


def make_image(folder: Path, size: int, seed: int = 20) -> Image:
    folder.mkdir(parents=True, exist_ok=True)
    path, damaged = folder / f"image-{size}.img", folder / f"damaged-{size}.img"
    sha, md5 = hashlib.sha256(), hashlib.md5()  # noqa: S324 - the catalog's name, not security
    rng = random.Random(seed)
    with path.open("wb") as f, damaged.open("wb") as g:
        left = size
        while left:
            piece = rng.randbytes(min(sw.CHUNK_SIZE, left))
            f.write(piece)
            sha.update(piece)
            md5.update(piece)
            g.write(bytes([piece[0] ^ 0xFF]) + piece[1:])
            left -= len(piece)
    return Image(path, size, sha.hexdigest(), md5.hexdigest(), damaged)


async def prepare(data: Path, image: Image, kiosks: int, url: str = "") -> list[str]:
    """A coordinator data folder with the image in its store (or, with `url`, a take that only
    names that URL: the coordinator fetches it); returns kiosk credentials."""
    store = Store(data / DB_FILENAME)
    await asyncio.to_thread(data.mkdir, parents=True, exist_ok=True)
    await store.open()
    try:
        now = time.time()

        def build(c: Any) -> int:
            show = add_show(c, now, "test", {"name": "Venue", "asset_root": "/srv"})
            ep = add_child(c, now, "test", LEVELS["episode"], show["id"], {"name": "E"})
            seq = add_child(c, now, "test", LEVELS["sequence"], ep["id"], {"name": "Q"})
            shot = add_child(c, now, "test", LEVELS["shot"], seq["id"], {"name": "S"})
            add_child(
                c,
                now,
                "test",
                LEVELS["take"],
                shot["id"],
                {
                    "name": "venue.img",
                    "size": image.size,
                    "sha256": image.sha256,
                    "md5": image.md5,
                    "url": url,
                    "notes": "",
                },
            )
            return int(show["id"])

        show = await store.write(build)
        creds = []
        for n in range(kiosks):
            made = await store.write(
                lambda c, n=n: create_appliance(c, now, "test", show, f"kiosk-{n}")
            )
            creds.append(str(made["credential"]))
    finally:
        await store.close()
    if url:
        return creds
    images = ImageStore(data / "images")
    await asyncio.to_thread(images.prepare)

    async def body() -> AsyncIterator[bytes]:
        with image.path.open("rb") as f:
            while piece := await asyncio.to_thread(f.read, 1 << 20):
                yield piece

    await images.receive(body(), Expected(image.size, image.sha256, image.md5))
    return creds


class Venue:
    def __init__(
        self, work: Path, image: Image, kiosks: int, *, rate: str = "40mbit", outside: bool = False
    ) -> None:
        self.work = work
        # The take only names a URL on an outside host (in the coordinator's namespace, on its
        # loopback: only the coordinator reaches it), which the coordinator fetches first.
        self.outside = outside
        self.outside_server: subprocess.Popen[bytes] | None = None
        self.image = image
        self.kiosks = kiosks
        self.rate = rate
        tag = f"{os.getpid() % 100000}"
        self.prefix = f"bs{tag}"
        self.subnet = f"10.{200 + os.getpid() % 50}.{os.getpid() % 250}"
        self.bridge = f"{self.prefix}br"
        self.coord = f"{self.prefix}c"
        self.made: list[str] = []
        self.coordinator: subprocess.Popen[bytes] | None = None
        self.creds: list[str] = []

    @property
    def coordinator_ip(self) -> str:
        return f"{self.subnet}.1"

    def kiosk_ns(self, n: int) -> str:
        return f"{self.prefix}k{n}"

    def kiosk_ip(self, n: int) -> str:
        return f"{self.subnet}.{10 + n}"

    def _join(self, ns: str, ip: str, veth: str) -> None:
        run("ip", "netns", "add", ns)
        self.made.append(ns)
        run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "link", "add", f"{veth}a", "type", "veth", "peer", "name", f"{veth}b")
        run("ip", "link", "set", f"{veth}a", "netns", ns)
        run("ip", "link", "set", f"{veth}b", "netns", self.bridge)
        run("ip", "-n", ns, "link", "set", f"{veth}a", "name", "lan0")
        run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "lan0")
        run("ip", "-n", ns, "link", "set", "lan0", "up")
        run("ip", "-n", self.bridge, "link", "set", f"{veth}b", "master", "br0", "up")

    def _build(self) -> None:
        run("ip", "netns", "add", self.bridge)
        self.made.append(self.bridge)
        run("ip", "-n", self.bridge, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.bridge, "link", "set", "br0", "up")
        self._join(self.coord, self.coordinator_ip, f"{self.prefix}c")
        # The uplink: what the coordinator sends goes through a token bucket.
        run(
            "tc",
            "-n",
            self.coord,
            "qdisc",
            "add",
            "dev",
            "lan0",
            "root",
            "tbf",
            "rate",
            self.rate,
            "burst",
            "64kb",
            "latency",
            "100ms",
        )
        for n in range(self.kiosks):
            self._join(self.kiosk_ns(n), self.kiosk_ip(n), f"{self.prefix}k{n}")

    @property
    def outside_url(self) -> str:
        return f"http://127.0.0.1:{OUTSIDE_PORT}/{self.image.path.name}"

    def _start_outside(self) -> None:
        with (self.work / "outside.log").open("wb") as log:
            self.outside_server = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.coord,
                    sys.executable,
                    "-m",
                    "tests.system.outside_files",
                    str(self.image.path.parent),
                    str(OUTSIDE_PORT),
                ],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def outside_requests(self) -> list[str]:
        """The requests the outside host answered (`GET <name> <Range or ->`)."""
        text = (self.work / "outside.log").read_text()
        return [line for line in text.splitlines() if line.startswith("GET ")]

    def _start_coordinator(self, data: Path) -> None:
        with (self.work / "coordinator.log").open("wb") as log:
            self.coordinator = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.coord,
                    sys.executable,
                    "-m",
                    "coordinator.cli",
                    "serve",
                    "--data",
                    str(data),
                    "--host",
                    self.coordinator_ip,
                    "--port",
                    str(PORT),
                    "--log-level",
                    "warning",
                    "--fetch-interval",
                    "0.2",
                ],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def _teardown(self) -> None:
        if self.outside_server is not None:
            self.outside_server.terminate()
            self.outside_server.wait(timeout=20)
        if self.coordinator is not None:
            self.coordinator.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.coordinator.wait(timeout=20)
            if self.coordinator.poll() is None:
                self.coordinator.kill()
                self.coordinator.wait(timeout=20)
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True, timeout=30)
        self.made.clear()

    async def __aenter__(self) -> Venue:
        try:
            await asyncio.to_thread(self.work.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(self._build)
            data = self.work / "coordinator"
            url = self.outside_url if self.outside else ""
            self.creds = await prepare(data, self.image, self.kiosks, url)
            if self.outside:
                await asyncio.to_thread(self._start_outside)
                await self._wait_url(
                    self.outside_url, self.outside_server, "outside.log", head=True
                )
            await asyncio.to_thread(self._start_coordinator, data)
            await self._wait_url(
                f"http://{self.coordinator_ip}:{PORT}/api/v1/health",
                self.coordinator,
                "coordinator.log",
            )
        except BaseException:
            await asyncio.to_thread(self._teardown)
            raise
        return self

    async def _wait_url(
        self, url: str, proc: subprocess.Popen[bytes] | None, log_name: str, *, head: bool = False
    ) -> None:
        """Until `url` answers (a HEAD with `head`) from the coordinator's namespace."""
        async with asyncio.timeout(60):
            while True:
                probe = await asyncio.create_subprocess_exec(
                    "ip",
                    "netns",
                    "exec",
                    self.coord,
                    "curl",
                    "-sfI" if head else "-sf",
                    "-o",
                    "/dev/null",
                    url,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                if await probe.wait() == 0:
                    return
                assert proc is not None
                if proc.poll() is not None:
                    log = (self.work / log_name).read_text()
                    raise RuntimeError(f"{log_name} shows the server stopped: {log[-2000:]}")
                await asyncio.sleep(0.2)  # a poll of a process starting up, bounded above

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self._teardown)

    def coordinator_tx(self) -> int:
        return int(
            run("ip", "netns", "exec", self.coord, "cat", "/sys/class/net/lan0/statistics/tx_bytes")
        )

    async def round(self, *, share: bool, liar: bool) -> Round:
        """Every kiosk fetches the image at once (the last one lies when `liar`)."""
        procs = []
        tag = "share" if share else "plain"
        for n in range(self.kiosks):
            lying = liar and n == self.kiosks - 1
            conf = {
                "coordinator": f"http://{self.coordinator_ip}:{PORT}",
                "credential": self.creds[n],
                "cache": str(self.work / f"{tag}-kiosk{n}"),
                "address": self.kiosk_ip(n),
                "port": PEER_PORT,
                "share": share,
                "mode": "liar" if lying else "honest",
                "liar_file": str(self.image.damaged),
                "sha256": self.image.sha256,
                "size": self.image.size,
            }
            with (self.work / f"{tag}-kiosk{n}.log").open("wb") as log:
                proc = await asyncio.create_subprocess_exec(
                    "ip",
                    "netns",
                    "exec",
                    self.kiosk_ns(n),
                    sys.executable,
                    "-m",
                    "tests.system.swarm_node",
                    json.dumps(conf),
                    cwd=REPO,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                )
            procs.append((proc, lying))
        try:
            async with asyncio.timeout(WAIT):
                for proc, _ in procs:
                    await _line(proc, "ready")
                before = await asyncio.to_thread(self.coordinator_tx)
                start = time.time()
                for proc, lying in procs:
                    if not lying:
                        assert proc.stdin is not None
                        proc.stdin.write(b"go\n")
                        await proc.stdin.drain()
                done = [await _line(proc, "done") for proc, lying in procs if not lying]
                sent = await asyncio.to_thread(self.coordinator_tx) - before
        finally:
            for proc, _ in procs:
                if proc.stdin is not None:
                    proc.stdin.close()
            for proc, _ in procs:
                try:
                    async with asyncio.timeout(20):
                        await proc.wait()
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        seconds = max(d["at"] for d in done) - start
        liar_address = f"{self.kiosk_ip(self.kiosks - 1)}:{PEER_PORT}" if liar else None
        return Round(done, seconds, sent, liar_address)


@dataclass
class Round:
    done: list[dict[str, Any]]
    seconds: float
    coordinator_bytes: int
    liar: str | None


async def _line(proc: asyncio.subprocess.Process, event: str) -> dict[str, Any]:
    assert proc.stdout is not None
    while True:
        raw = await proc.stdout.readline()
        if not raw:
            raise RuntimeError(f"a kiosk ended before {event!r} (see its log in the work folder)")
        line = json.loads(raw)
        if line["event"] == event:
            return dict(line)
