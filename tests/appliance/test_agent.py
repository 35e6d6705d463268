"""The agent as the kiosk and the coordinator see it: simulated drives, a real control socket,
a real SQLite journal and image cache in tmp_path, a real HTTP server for takes, and a small
in-test link with AgentLink's contract (the real link's wire is tested with it, not here)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp import web
from gpiozero.pins.mock import MockFactory

from appliance.agent import Agent, LinkState, Running, serve
from appliance.config import AgentConfig, LedPins, SimulatedDriveConfig
from appliance.control import ControlClient, RequestFailed
from appliance.drives.uid import drive_uid
from appliance.journal import JobState, Journal
from appliance.leds import LedState
from wire.agentmsg import parse_from_agent

REPO = Path(__file__).resolve().parents[2]
SIZE = 1024 * 1024
LEFT = SimulatedDriveConfig("Left", "sim:left", "optical", 4e6, 4_700_000_000, frozenset({"CDR"}))
RIGHT = SimulatedDriveConfig(
    "Right", "sim:right", "optical", 4e6, 4_700_000_000, frozenset({"CDR"})
)
LEFT_UID = drive_uid("sim:left")


class FakeLink:
    """AgentLink's contract, recording what the agent sends; the test moves its state."""

    made: ClassVar[list[FakeLink]] = []

    def __init__(
        self,
        url: str,
        credential: str,
        *,
        on_message: Callable[[dict[str, Any]], Awaitable[None]],
        on_state: Callable[[LinkState], None] | None = None,
        session: str | None = None,
    ) -> None:
        self.url, self.credential, self.session = url, credential, session
        self.on_message, self.on_state = on_message, on_state
        self.state = LinkState.CONNECTING
        self.sent: list[dict[str, Any]] = []
        self.changed = asyncio.Condition()
        self.started = self.closed = False
        FakeLink.made.append(self)

    async def start(self) -> None:
        self.started = True

    async def send(self, payload: dict[str, Any]) -> None:
        async with self.changed:
            self.sent.append(payload)
            self.changed.notify_all()

    async def close(self, *, formal: bool = True) -> None:
        self.closed = True

    def go(self, state: LinkState) -> None:
        self.state = state
        assert self.on_state is not None
        self.on_state(state)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [p for p in self.sent if p["type"] == kind]

    async def wait_for(self, check: Callable[[], bool]) -> None:
        async with asyncio.timeout(20), self.changed:
            await self.changed.wait_for(check)


def make_config(tmp_path: Path, **over: Any) -> AgentConfig:
    base: dict[str, Any] = {
        "name": "Test booth",
        "state_dir": tmp_path / "state",
        "cache_dir": tmp_path / "cache",
        "cache_size": 64 * SIZE,
        "simulated": (LEFT, RIGHT),
        "socket": tmp_path / "agent.sock",
        "leds": LedPins(drives={"sim:left": (5, 6)}, link=17),
    }
    base.update(over)
    return AgentConfig(**base)


def make_image(path: Path, seed: bytes = b"one") -> dict[str, Any]:
    data = (hashlib.sha512(seed).digest() * (SIZE // 64 + 1))[:SIZE]
    path.write_bytes(data)
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "size": SIZE,
        "name": path.name,
        "notes": "a test image",
        "url": "",
    }


async def cache_and_catalog(agent: Agent, image: Path, take: dict[str, Any]) -> None:
    assert agent.cache is not None
    await agent.cache.add_file(image, take["sha256"], take["name"])
    await agent.set_catalog([take])


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    r = await serve(make_config(tmp_path), pin_factory=MockFactory())
    try:
        yield r
    finally:
        await r.stop()


async def burn_and_wait(client: ControlClient, image: str, drive: str) -> dict[str, Any]:
    await client.subscribe()
    accepted = await client.request("burn", image=image, drive=drive)
    async with asyncio.timeout(30):
        async for event in client.events():
            if event["event"] == "finished" and event["result"]["job_id"] == accepted["job_id"]:
                result: dict[str, Any] = event["result"]
                return result
    raise AssertionError("no finished event")  # pragma: no cover


async def test_a_kiosk_burn_runs_passes_and_is_journaled(running: Running, tmp_path: Path) -> None:
    agent = running.agent
    take = make_image(tmp_path / "live.iso")
    await cache_and_catalog(agent, tmp_path / "live.iso", take)
    async with ControlClient(running.server.path) as client:
        images = await client.request("images")
        assert [i["sha256"] for i in images] == [take["sha256"]]
        result = await burn_and_wait(client, take["sha256"], LEFT_UID)
        drives = {d["uid"]: d for d in await client.request("drives")}
        status = await client.request("status")
    assert result["ok"], result
    assert result["image_name"] == "live.iso"
    assert drives[LEFT_UID]["last_result"]["ok"]
    assert drives[LEFT_UID]["job"] is None
    assert status["link"] == "offline"
    assert status["cache_used"] == SIZE
    assert agent.journal is not None
    [record] = await agent.journal.jobs()
    assert (record.id, record.state, record.drive_uid) == (
        result["job_id"],
        JobState.PASSED,
        LEFT_UID,
    )
    assert record.image_md5 == take["md5"]
    # The left drive's LED pair shows the pass: green on, red off.
    assert agent.panel is not None
    leds = agent.panel.drives["sim:left"]
    assert (leds.green.is_lit, leds.red.is_lit) == (True, False)  # type: ignore[attr-defined]


async def test_kiosk_requests_that_cannot_run_are_refused_with_a_reason(tmp_path: Path) -> None:
    # Drives this slow (1 MiB takes 100 virtual seconds) are still burning when the test asks
    # again and cancels, however loaded the machine is.
    slow = tuple(dataclasses.replace(d, speed=1e4) for d in (LEFT, RIGHT))
    running = await serve(make_config(tmp_path, simulated=slow), pin_factory=MockFactory())
    try:
        await _refusals(running, tmp_path)
    finally:
        await running.stop()


async def _refusals(running: Running, tmp_path: Path) -> None:
    take = make_image(tmp_path / "live.iso")
    await cache_and_catalog(running.agent, tmp_path / "live.iso", take)
    async with ControlClient(running.server.path) as client:
        with pytest.raises(RequestFailed) as missing:
            await client.request("burn", image="0" * 64, drive="auto")
        assert missing.value.code == "not-found"
        with pytest.raises(RequestFailed) as nodrive:
            await client.request("burn", image=take["sha256"], drive="nope")
        assert nodrive.value.code == "not-found"
        with pytest.raises(RequestFailed) as idle:
            await client.request("cancel", drive=LEFT_UID)
        assert idle.value.code == "not-burning"
        accepted = await client.request("burn", image=take["sha256"], drive=LEFT_UID)
        with pytest.raises(RequestFailed) as busy:
            await client.request("burn", image=take["sha256"], drive=LEFT_UID)
        assert busy.value.code == "busy"
        queue = await client.request("queue")
        assert [q["job_id"] for q in queue] == [accepted["job_id"]]
        await client.request("cancel", drive=LEFT_UID)
        renamed = await client.request("name", drive=LEFT_UID, name="Front")
        assert renamed["name"] == "Front"
        ejected = await client.request("eject_all")
        assert sorted(ejected["ejected"]) == sorted([LEFT_UID, drive_uid("sim:right")])
    assert running.agent.journal is not None
    [record] = await running.agent.journal.jobs()
    assert record.state is JobState.CANCELLED


async def test_offline_burns_sync_once_when_the_link_comes_back(tmp_path: Path) -> None:
    # No coordinator listens on port 9: the agent must burn from its cache regardless.
    offline = make_config(
        tmp_path, coordinator_url="http://127.0.0.1:9", credential="appliance-secret"
    )
    take = make_image(tmp_path / "live.iso")
    r = await serve(offline, pin_factory=MockFactory())
    try:
        await cache_and_catalog(r.agent, tmp_path / "live.iso", take)
        async with ControlClient(r.server.path) as client:
            first = await burn_and_wait(client, take["sha256"], "auto")
            second = await burn_and_wait(client, take["sha256"], "auto")
            assert (await client.request("status"))["link"] != "online"
        assert first["ok"]
        assert second["ok"]
        assert r.agent.journal is not None
        assert len(await r.agent.journal.unreported()) == 2
    finally:
        await r.stop()

    # Restarted on the same state dir, with a link that comes online later.
    FakeLink.made.clear()
    r = await serve(offline, link_factory=FakeLink, pin_factory=MockFactory())
    try:
        [link] = FakeLink.made
        assert link.started
        assert link.url == "ws://127.0.0.1:9/link"
        assert link.credential == "appliance-secret"
        assert link.sent == []  # not online yet: nothing is handed over
        link.go(LinkState.ONLINE)
        await link.wait_for(lambda: len(link.of("result")) == 2)
        hello = link.sent[0]
        assert hello["type"] == "hello"
        assert hello["appliance"]["name"] == "Test booth"
        assert {d["uid"] for d in hello["drives"]} == {LEFT_UID, drive_uid("sim:right")}
        assert all(d["images"] == [take["md5"]] for d in hello["drives"])
        results = link.of("result")
        for payload in link.sent:
            parse_from_agent(payload)
        assert {p["job"] for p in results} == {first["job_id"], second["job_id"]}
        assert all(p["ok"] and p["md5"] == take["md5"] and p["bytes"] == SIZE for p in results)
        # A second trigger (a reconnect) finds nothing left to send.
        assert await r.agent.report_results() == 0
        assert r.agent.journal is not None
        assert await r.agent.journal.unreported() == []
        led = r.agent.panel.link if r.agent.panel else None
        assert led is not None
        assert led.light.is_lit  # type: ignore[attr-defined]
    finally:
        await r.stop()
    assert link.closed

    # And after another restart, nothing is sent twice.
    FakeLink.made.clear()
    r = await serve(offline, link_factory=FakeLink, pin_factory=MockFactory())
    try:
        [link] = FakeLink.made
        link.go(LinkState.ONLINE)
        await link.wait_for(lambda: bool(link.of("hello")))
        assert await r.agent.report_results() == 0
        assert link.of("result") == []
    finally:
        await r.stop()
    journal = await Journal.open(offline.state_dir / "journal.sqlite3")
    try:
        assert all(j.reported_upstream for j in await journal.jobs())
    finally:
        await journal.close()


@pytest.fixture
async def take_server(tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    files = tmp_path / "served"
    files.mkdir()
    take = make_image(files / "server.img", b"two")
    app = web.Application()
    app.router.add_static("/images/", files)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", take
    finally:
        await runner.cleanup()


async def test_a_burn_order_from_the_link_fetches_the_take_and_reports(
    tmp_path: Path, take_server: tuple[str, dict[str, Any]]
) -> None:
    base, take = take_server
    config = make_config(tmp_path, coordinator_url=base, credential="cred")
    FakeLink.made.clear()
    r = await serve(config, link_factory=FakeLink, pin_factory=MockFactory())
    try:
        [link] = FakeLink.made
        link.go(LinkState.ONLINE)
        await link.wait_for(lambda: bool(link.of("hello")))
        await link.on_message(
            {"type": "catalog", "takes": [{**take, "url": f"{base}/images/server.img"}]}
        )
        assert (config.state_dir / "catalog.json").exists()
        assert all(d["images"] == [] for d in link.of("hello")[-1]["drives"])
        order = {"type": "burn", "uid": LEFT_UID, **take, "url": f"{base}/images/server.img"}
        await link.on_message(order)
        await link.wait_for(lambda: bool(link.of("result")))
        # The download is announced with a fresh hello (the room dispatches by what a kiosk
        # holds; the dashboard shows its cache), before the burn's outcome.
        fresh = link.of("hello")[-1]
        assert all(d["images"] == [take["md5"]] for d in fresh["drives"])
        assert fresh["appliance"]["cache_used"] == SIZE
        assert link.sent.index(fresh) < link.sent.index(link.of("result")[0])
        [result] = link.of("result")
        statuses = [p["status"] for p in link.of("status") if p["uid"] == LEFT_UID]
        # Unknown drives get told they are gone; a nonsense order does not break the link.
        await link.on_message({**order, "uid": "f" * 32})
        await link.on_message({"type": "burn", "uid": LEFT_UID, "sha256": "xyz", "size": 1})
        assert link.of("drive_gone") == [{"type": "drive_gone", "uid": "f" * 32}]
        # A burn by md5 alone (the coordinator has no take) burns from the cache.
        del order["sha256"], order["url"], order["size"]
        await link.on_message({**order, "uid": drive_uid("sim:right")})
        await link.wait_for(lambda: len(link.of("result")) == 2)
        assert link.of("result")[1]["uid"] == drive_uid("sim:right")
    finally:
        await r.stop()
    # Every payload is a well-formed message of the link's protocol.
    for payload in link.sent:
        parse_from_agent(payload)
    assert result["ok"], result
    assert (result["uid"], result["md5"], result["bytes"]) == (LEFT_UID, take["md5"], SIZE)
    assert any(s.endswith("%") for s in statuses)
    assert statuses[-1] == "MD5PASS"
    assert r.agent.cache is not None
    assert take["sha256"] in r.agent.cache

    # The saved catalog lets a restarted agent offer the take with no coordinator at all.
    again = await serve(make_config(tmp_path), pin_factory=MockFactory())
    try:
        assert [i["sha256"] for i in await again.agent.images()] == [take["sha256"]]
    finally:
        await again.stop()


async def test_a_failed_download_is_a_failed_job_reported_once(tmp_path: Path) -> None:
    config = make_config(tmp_path, coordinator_url="http://127.0.0.1:9", credential="cred")
    FakeLink.made.clear()
    r = await serve(config, link_factory=FakeLink, pin_factory=MockFactory())
    try:
        [link] = FakeLink.made
        link.go(LinkState.ONLINE)
        await link.on_message(
            {
                "type": "burn",
                "uid": LEFT_UID,
                "sha256": "a" * 64,
                "md5": "b" * 32,
                "size": 10,
                "name": "gone.iso",
                "url": "http://127.0.0.1:9/gone.iso",
            }
        )
        await link.wait_for(lambda: bool(link.of("result")))
        [result] = link.of("result")
    finally:
        await r.stop()
    assert (result["ok"], result["reason"]) == (False, "download-failed")


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appliance.cli",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_status_command_prints_the_running_agents_state(running: Running) -> None:
    code, out, _ = await run_cli("status", "--socket", str(running.server.path))
    assert code == 0
    assert "link offline" in out
    assert "Left\tsim:left\tidle" in out
    assert "Right\tsim:right\tidle" in out


async def test_status_without_an_agent_says_so(tmp_path: Path) -> None:
    code, _, err = await run_cli("status", "--socket", str(tmp_path / "none.sock"))
    assert code == 1
    assert "is burnstand-agent running?" in err


async def test_run_with_a_bad_config_names_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "agent.toml"
    bad.write_text("[cache]\nsize = 'huge'\n")
    code, _, err = await run_cli("run", "--config", str(bad))
    assert code == 2
    assert "agent.toml: [cache] size: must be a positive size like '20G'" in err


async def test_run_serves_until_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        f"""
[agent]
state_dir = "{tmp_path / "state"}"
[cache]
dir = "{tmp_path / "cache"}"
size = "10M"
[[drives.simulated]]
name = "Solo"
path = "sim:solo"
"""
    )
    sock = tmp_path / "agent.sock"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appliance.cli",
        "run",
        "--config",
        str(config),
        "--socket",
        str(sock),
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NOTIFY_SOCKET": ""},
    )
    try:
        client = ControlClient(sock)
        await client.reconnect(attempts=60, max_delay=0.5)
        drives = await client.request("drives")
        await client.close()
        assert [d["name"] for d in drives] == ["Solo"]
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert not sock.exists()


async def test_jobs_command_asks_the_running_agent(running: Running, tmp_path: Path) -> None:
    """On a kiosk `burnstand-agent jobs` asks the agent, which owns the journal, instead of
    opening the agent's journal file behind its back."""
    take = make_image(tmp_path / "live.iso")
    await cache_and_catalog(running.agent, tmp_path / "live.iso", take)
    async with ControlClient(running.server.path) as client:
        result = await burn_and_wait(client, take["sha256"], LEFT_UID)
    code, out, err = await run_cli("jobs", "--json", "--socket", str(running.server.path))
    assert code == 0, err
    [job] = [json.loads(line) for line in out.splitlines()]
    assert (job["id"], job["state"], job["uid"]) == (result["job_id"], "passed", LEFT_UID)


async def test_a_failed_disc_blinks_red_until_it_is_taken_out(tmp_path: Path) -> None:
    from appliance.drives.simulated import SimulatedDrive
    from tests.appliance.test_leds import toggles, wait_until

    factory = MockFactory()
    r = await serve(make_config(tmp_path), pin_factory=factory)
    try:
        agent = r.agent
        take = make_image(tmp_path / "live.iso")
        await cache_and_catalog(agent, tmp_path / "live.iso", take)
        drive = agent.slots[LEFT_UID].drive
        assert isinstance(drive, SimulatedDrive)
        await drive.swap_disc(bad=True)  # a scratched blank: it will fail its verify
        async with ControlClient(r.server.path) as client:
            result = await burn_and_wait(client, take["sha256"], LEFT_UID)
        assert (result["ok"], result["reason"]) == (False, "verify-mismatch")
        green, red = 5, 6  # sim:left's pair in make_config
        mark = len(factory.pin(red).states)
        assert await asyncio.to_thread(wait_until, lambda: toggles(factory, red, mark) >= 3)
        assert not factory.pin(green).state
        # The tray is open with the disc still in it: the light keeps telling.
        await agent.media_changed(LEFT_UID)
        mark = len(factory.pin(red).states)
        assert await asyncio.to_thread(wait_until, lambda: toggles(factory, red, mark) >= 2)
        # The visitor takes the disc and puts a blank in: the red light goes out and stays out.
        await drive.swap_disc()
        await agent.media_changed(LEFT_UID)
        assert not factory.pin(red).state
        mark = len(factory.pin(red).states)
        assert agent.panel is not None
        assert agent.panel.state("sim:left") is LedState.IDLE
        assert toggles(factory, red, mark) == 0
    finally:
        await r.stop()
        factory.reset()


async def test_the_agent_serves_its_drives_metrics_on_a_local_port(tmp_path: Path) -> None:
    import socket as sockets

    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    with sockets.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = await serve(make_config(tmp_path, metrics_port=port), pin_factory=MockFactory())
    try:

        async def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/metrics") as resp,
            ):
                assert resp.status == 200
                text = await resp.text()
            return {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(text)
                for s in f.samples
            }

        before = await scrape()
        assert before[("burnstand_agent_link_up", ())] == 0.0  # offline: no coordinator
        assert before[("burnstand_agent_cache_max_bytes", ())] == 64 * SIZE
        assert before[("burnstand_agent_drive_state", (("drive", "Left"), ("state", "idle")))] == 1
        take = make_image(tmp_path / "live.iso")
        await cache_and_catalog(r.agent, tmp_path / "live.iso", take)
        async with ControlClient(r.server.path) as client:
            result = await burn_and_wait(client, take["sha256"], LEFT_UID)
        assert result["ok"]
        after = await scrape()
        passed = (("drive", "Left"), ("media", "CDR"), ("result", "passed"))
        assert after[("burnstand_agent_burns_total", passed)] == 1
        assert after[("burnstand_agent_cache_bytes", ())] == SIZE
    finally:
        await r.stop()
    # Stopped with the agent: nothing listens on the port any more.
    with pytest.raises(ConnectionRefusedError), sockets.create_connection(("127.0.0.1", port)):
        pass
