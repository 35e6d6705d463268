"""`make image-test`: the flashable kiosk image that `make image` put in dist/ boots on an emulated
arm64 board and becomes a kiosk of the test's show.

Not collected by the default run (the name does not start with `test_`): each boot takes
minutes under emulation. The disk is the .img.xz itself, unpacked (or burned by burnstand onto a
loop device); the kernel, initrd and command line come from its FAT firmware partition; the only
thing the test adds is what a user adds, `burnstand-agent.toml` on the boot partition, pointing
the kiosk at a coordinator the test runs on the host's loopback (10.0.2.2 from inside QEMU's
user-mode network). The enrollment code is read off the serial console as an operator reads it
off the screen, the show admin accepts it through the REST API, and the session's dashboard
snapshot must then show the kiosk online. After a clean power-off the guest's own journal
(read from the disk) must show the agent and kiosk started (the agent is `Type=notify`: started
means READY=1), no watchdog timeout while the agent ran past two watchdog periods, the kiosk page
answered the display user, and the root grown to the bigger card.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.nodes import Node, admin_token, api, ask
from tests.system.qemu_guest import (
    REPO,
    BootFailed,
    Guest,
    image_name,
    journal,
    missing_tools,
    put_on_boot_partition,
    root_blocks,
    unpack,
)

DIST = REPO / "dist"
BOOT_DEADLINE = 900.0  # emulated boot of a loaded 2-core machine, to the enrollment code
WALK_DEADLINE = 300.0
WATCHDOG_SEC = 30  # systemd/burnstand-agent.service
GROW = 1 << 30
NAME = "qemu kiosk"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def image() -> Path:
    missing = missing_tools()
    assert not missing, f"install first: apt-get install {' '.join(missing)}"
    img = DIST / f"{image_name()}.img.xz"
    assert img.exists(), f"{img} is missing: run `make image` first"
    listed = (DIST / f"{image_name()}.img.xz.sha256").read_text().split()[0]
    done = subprocess.run(["sha256sum", str(img)], capture_output=True, text=True, check=True)
    assert done.stdout.split()[0] == listed, "the .img.xz does not match its .sha256"
    return img


@dataclass
class Show:
    node: Node
    show: int
    show_admin: str
    contributor: str
    session: str


async def enter(http: aiohttp.ClientSession, node: Node, show: int, email: str, secret: str) -> str:
    async with http.post(
        node.url + "/api/v1/join",
        json={"user": email, "show": show, "duration": 7200, "secret": secret},
    ) as resp:
        assert resp.status < 300, await resp.text()
        return str((await resp.json())["credential"])


@pytest.fixture
async def coordinator(tmp_path: Path) -> AsyncIterator[Show]:
    """`burnstand-coordinator serve` on host loopback with a show, its admin, and a session."""
    data = tmp_path / "coordinator"
    admin = admin_token(data)
    node = Node(data)
    try:
        async with aiohttp.ClientSession() as http:
            await node.health(http)
            show = (
                await api(
                    http, node, "POST", "/shows", admin, {"name": "Image", "asset_root": "/x"}
                )
            )["id"]
            sa = await api(
                http,
                node,
                "POST",
                f"/shows/{show}/admins",
                admin,
                {"name": "Sam", "email": "sam@example.org"},
            )
            sam = await enter(http, node, show, "sam@example.org", sa["secret"])
            c = await api(
                http,
                node,
                "POST",
                f"/shows/{show}/contributors",
                sam,
                {"name": "Cleo", "email": "cleo@example.org"},
            )
            cleo = await enter(http, node, show, "cleo@example.org", c["secret"])
            ep = (await api(http, node, "POST", f"/shows/{show}/episodes", sam, {"name": "26.04"}))[
                "id"
            ]
            session = await api(
                http, node, "POST", "/sessions", cleo, {"name": "booth", "episode_id": ep}
            )
        yield Show(node, show, sam, cleo, str(session["id"]))
    finally:
        node.stop()


def agent_settings(show: Show, *, insecure_ok: bool = True) -> str:
    """What a user writes to burnstand-agent.toml on the card for their own coordinator."""
    template = (REPO / "image-build/agent.toml.in").read_text()
    text = (
        template.replace("@KIOSK_NAME@", NAME)
        .replace("@COORDINATOR_URL@", f"http://10.0.2.2:{show.node.port}")
        .replace("@SHOW_ID@", str(show.show))
    )
    extra = f'session = "{show.session}"\n'
    if insecure_ok:
        # The test's coordinator speaks plain HTTP on the host, which the guest reaches by NAT.
        extra += "insecure_transport = true\n"
    return text.replace("[cache]", extra + "\n[cache]", 1)


async def accept(
    http: aiohttp.ClientSession, show: Show, code: str, deadline: float
) -> dict[str, Any]:
    """The show admin accepts the kiosk whose code the screen shows (waits for its request)."""
    path = f"/shows/{show.show}/enrollments"
    while True:
        listed = await api(http, show.node, "GET", path, show.show_admin)
        mine = [e for e in listed["items"] if e["code"] == code and e["name"] == NAME]
        if mine:
            out: dict[str, Any] = await api(
                http, show.node, "POST", f"{path}/{mine[0]['id']}/accept", show.show_admin
            )
            return out
        assert time.monotonic() < deadline, f"no pending kiosk with code {code}: {listed}"
        await asyncio.sleep(1)  # poll the REST API: pending requests have no push


async def dashboard_kiosk(http: aiohttp.ClientSession, show: Show) -> dict[str, Any] | None:
    """The kiosk as the session's dashboard sees it (client socket, auth first, snapshot)."""
    async with http.ws_connect(show.node.url.replace("http", "ws") + f"/ws/{show.session}") as ws:
        await ws.send_str(json.dumps({"action": "auth", "token": show.contributor}))
        snap = await ask(ws, {"action": "snapshot"})
    kiosks: list[dict[str, Any]] = snap["result"].get("kiosks", [])
    return next((k for k in kiosks if k.get("name") == NAME), None)


async def kiosk_online(
    http: aiohttp.ClientSession, show: Show, guest: Guest, deadline: float
) -> dict[str, Any]:
    while True:
        kiosk = await dashboard_kiosk(http, show)
        if kiosk is not None and kiosk.get("link") == "online":
            return kiosk
        if time.monotonic() > deadline or guest.proc.poll() is not None:
            raise BootFailed(guest.report(f"the dashboard never showed the kiosk online: {kiosk}"))
        await asyncio.sleep(1)  # poll the dashboard's snapshot, as its page refreshes


@dataclass
class Walk:
    boot_to_online: float
    code: str


async def enroll_and_check(disk: Path, work: Path, show: Show) -> Walk:
    """Boot `disk`, walk the enrollment, power off, and check what the guest's journal says."""
    put_on_boot_partition(disk, "burnstand-agent.toml", agent_settings(show), work / "agent.toml")
    blocks_before = root_blocks(disk)
    guest = Guest(disk, work / "qemu")
    try:
        deadline = time.monotonic() + BOOT_DEADLINE
        code_line = await asyncio.to_thread(
            guest.wait_for,
            r"burnstand enrollment code: ([A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4})",
            deadline,
            fail_on=lambda text: "emergency mode" in text or "Kernel panic" in text,
        )
        code = code_line.group(1)
        # The console stops showing unit status once the serial getty's login prompt is up, so
        # the units are checked in the guest's journal after the power-off (below).
        async with aiohttp.ClientSession() as http:
            walk_deadline = time.monotonic() + WALK_DEADLINE
            accepted = await accept(http, show, code, walk_deadline)
            assert accepted["appliance"]["name"] == NAME
            kiosk = await kiosk_online(http, show, guest, walk_deadline)
            online_at = guest.uptime()
            # The agent must outlive two watchdog periods while staying online: without its
            # pings systemd would kill it after one.
            until = time.monotonic() + 2 * WATCHDOG_SEC + 5
            while time.monotonic() < until:
                kiosk = await kiosk_online(http, show, guest, walk_deadline + 2 * WATCHDOG_SEC)
                await asyncio.sleep(2)  # poll: the kiosk must stay online the whole time
            assert kiosk["link"] == "online"
        # The display itself needs a GPU the virt board does not have (cage finds no DRM
        # device), so only the units behind it must not have failed.
        failed = [
            u for u in guest.failed_units() if u.startswith("burnstand") and "display" not in u
        ]
        assert not failed, guest.report("a burnstand unit failed")
        await asyncio.to_thread(guest.power_off)
    finally:
        guest.kill()
    log = journal(disk, work / "journal", "-b", "-o", "short-monotonic")
    assert re.search(r"Reached target multi-user\.target", log), log[-3000:]
    # The agent is Type=notify: "Started" is logged when systemd got READY=1.
    assert re.search(r"Started burnstand-agent\.service", log), log[-3000:]
    assert re.search(r"Started burnstand-kiosk\.service", log), log[-3000:]
    assert "burnstand-agent.service: Watchdog timeout" not in log, log[-3000:]
    assert not re.search(r"burnstand-(agent|kiosk)\.service: (Failed|Main process exited)", log), (
        log[-3000:]
    )
    assert re.search(r"burnstand: root file system now", log), log[-3000:]
    # The display unit starts cage only after its curl, as the display's user, got the kiosk page.
    assert re.search(r"Started burnstand-kiosk-display\.service", log), log[-3000:]
    assert root_blocks(disk) > blocks_before, "the root file system was not grown to the card"
    return Walk(online_at, code)


async def test_flashed_image_boots_enrolls_and_links_online(
    image: Path, coordinator: Show, tmp_path: Path
) -> None:
    disk = tmp_path / "card.img"
    await asyncio.to_thread(unpack, image, disk, GROW)
    walk = await enroll_and_check(disk, tmp_path, coordinator)
    print(f"boot to online under emulation: {walk.boot_to_online:.0f} s (code {walk.code})")


@pytest.fixture
def loop_card(tmp_path: Path, image: Path) -> Any:
    """A loop device on a sparse file 1 GiB bigger than the image: an SD card in a reader."""
    size = int(
        subprocess.run(
            ["xz", "--robot", "-l", str(image)], capture_output=True, text=True, check=True
        )
        .stdout.splitlines()[-1]
        .split("\t")[4]
    )
    backing = tmp_path / "sdcard.bin"
    with backing.open("wb") as f:
        f.truncate(size + GROW)
    dev = subprocess.run(
        ["losetup", "--find", "--show", str(backing)], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        yield Path(dev)
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


async def test_image_burned_by_burnstand_onto_a_card_boots(
    image: Path, coordinator: Show, tmp_path: Path, loop_card: Path
) -> None:
    """A kiosk clones kiosks: `burnstand-agent burn` writes the .img.xz to a card, and the card's
    bytes boot."""
    sha = (DIST / f"{image_name()}.img.xz.sha256").read_text().split()[0]
    done = await asyncio.to_thread(
        subprocess.run,
        [
            str(Path(sys.executable).parent / "burnstand-agent"),
            "burn",
            "--image",
            str(image),
            "--sha256",
            sha,
            "--bmap",
            str(DIST / f"{image_name()}.bmap"),
            "--target",
            str(loop_card),
            "--no-eject",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    walk = await enroll_and_check(loop_card, tmp_path, coordinator)
    print(f"card burned by burnstand: boot to online {walk.boot_to_online:.0f} s")


async def test_a_kiosk_that_cannot_start_names_the_unit_and_shows_the_console(
    image: Path, coordinator: Show, tmp_path: Path
) -> None:
    """A card whose settings the agent refuses (plain HTTP to another host without saying so):
    the boot check fails with the failed unit's name and the last console lines."""
    disk = tmp_path / "card.img"
    await asyncio.to_thread(unpack, image, disk)
    put_on_boot_partition(
        disk,
        "burnstand-agent.toml",
        agent_settings(coordinator, insecure_ok=False),
        tmp_path / "a.toml",
    )
    guest = Guest(disk, tmp_path / "qemu")
    try:
        with pytest.raises(BootFailed) as failed:
            await asyncio.to_thread(
                guest.wait_for,
                r"Started burnstand-agent\.service",
                time.monotonic() + BOOT_DEADLINE,
                fail_on=lambda text: (
                    "burnstand-agent.service" in " ".join(guest.failed_units(text))
                ),
            )
    finally:
        guest.kill()
    message = str(failed.value)
    assert "failed units: burnstand-agent.service" in message, message
    assert "last 50 console lines" in message, message
    assert len(message.splitlines()) >= 50, message


async def test_reduced_boot_reaches_multi_user_with_the_agent_active(
    image: Path, tmp_path: Path
) -> None:
    """What CI runs on every change (the full walk above is `make image-test`): the same image
    boots to multi-user with the agent ready (`Type=notify`: started means READY=1) and the
    kiosk UI started, and shuts down cleanly."""
    disk = tmp_path / "card.img"
    await asyncio.to_thread(unpack, image, disk)
    guest = Guest(disk, tmp_path / "qemu")
    try:
        deadline = time.monotonic() + BOOT_DEADLINE
        await asyncio.to_thread(
            guest.wait_for,
            r"burnstand enrollment code: [A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}",
            deadline,
        )
        await asyncio.to_thread(guest.wait_for, r"Started burnstand-agent\.service", deadline)
        ready = guest.uptime()
        await asyncio.to_thread(guest.power_off)
    finally:
        guest.kill()
    log = journal(disk, tmp_path / "journal", "-b", "-o", "short-monotonic")
    for pattern in (
        r"Reached target multi-user\.target",
        r"Started burnstand-agent\.service",
        r"Started burnstand-kiosk\.service",
    ):
        assert re.search(pattern, log), (pattern, log[-3000:])
    assert not re.search(r"burnstand-(agent|kiosk)\.service: Failed", log), log[-3000:]
    print(f"reduced boot: agent ready after {ready:.0f} s")
