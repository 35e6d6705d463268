"""A real agent against a real coordinator on loopback: the kiosk and the cloud as they meet.

The coordinator is the production app (`make_app`, embedded role: rendezvous, balancer, session
master and `/link` in one process) on a real SQLite file, started and stopped on a fixed port and
data folder so it can be restarted like a service. The agent is the production `Agent` with the
production `AgentLink` and a simulated drive whose clock the test holds: the burn waits at a gate,
so "mid-burn" is a state the test controls, not a race. Operators are browser clients on
`/ws/<session>` (auth-first frame, `queue`, `snapshot`, `subscribe`). Nothing sleeps to wait:
each wait is for an agent event, a pub/sub message, or a bounded poll of the room.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from gpiozero.pins.mock import MockFactory

from appliance.agent import Agent, Running, serve
from appliance.config import AgentConfig
from appliance.control import ControlClient
from appliance.drives.simulated import SimulatedDrive
from appliance.drives.uid import drive_uid
from appliance.images.cache import ImageCache
from appliance.link import AgentLink
from coordinator.app import make_app
from coordinator.config import CoordinatorConfig
from coordinator.keys import STORE
from coordinator.live import LIVE
from coordinator.master import Master
from coordinator.store.people import create_admin, create_appliance
from tests.conftest import free_port

WAIT = 30.0
SIZE = 512 * 1024
DRIVE_PATH = "sim:coord-left"
UID = drive_uid(DRIVE_PATH)


# ---- the simulated drive's clock, held by the test ------------------------------------------


class GateClock:
    """Virtual time for a `SimulatedDrive`: each tick waits until the gate is open, so a test can
    hold a burn mid-write for as long as it needs (a coordinator restart) and then let it finish."""

    def __init__(self) -> None:
        self._now = 0.0
        self.ticks = 0
        # Close the gate by itself at this tick: virtual time runs a burn to its end faster
        # than a test could close the gate after seeing progress.
        self.hold_at: int | None = None
        self.gate = asyncio.Event()
        self.gate.set()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        self._now += max(0.0, seconds)
        self.ticks += 1
        if self.hold_at is not None and self.ticks >= self.hold_at:
            self.hold_at = None
            self.gate.clear()
        await self.gate.wait()


# ---- the coordinator, as a restartable service ------------------------------------------------


class Coordinator:
    """The production app on a fixed loopback port and data folder; stop/start = a restart."""

    def __init__(self, data: Path, port: int) -> None:
        self.data, self.port = data, port
        self.runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def app(self) -> web.Application:
        assert self.runner is not None
        return self.runner.app

    @property
    def master(self) -> Master:
        master = self.app[LIVE].master
        assert master is not None
        return master

    async def start(self) -> None:
        config = CoordinatorConfig(
            data_dir=self.data, host="127.0.0.1", port=self.port, expiry_check_interval=3600
        )
        self.runner = web.AppRunner(make_app(config))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def burner(self, session: str) -> dict[str, Any] | None:
        room = self.master.room(session)
        if room is None:
            return None
        for burner in room.snapshot()["burners"]:  # type: ignore[attr-defined]
            if burner["uid"] == UID:
                return dict(burner)
        return None

    async def until(self, check: Callable[[], bool], what: str) -> None:
        """Poll the room (state the master changes from its own tasks), bounded in time."""
        async with asyncio.timeout(WAIT):
            for _ in range(100_000):
                if check():
                    return
                await asyncio.sleep(0.01)  # yield to the coordinator's tasks between looks
        raise AssertionError(f"never: {what}")  # pragma: no cover

    async def until_drive_idle(self, session: str) -> None:
        """The kiosk's drive joined the session and reported idle."""
        await self.until(
            lambda: (b := self.burner(session)) is not None and b["status"] == "IDLE",
            "the kiosk's drive idle in the session",
        )


@dataclass
class World:
    coordinator: Coordinator
    admin: str
    appliance: str
    session: str
    image: Path
    take: dict[str, Any]


async def _post(http: aiohttp.ClientSession, url: str, token: str | None, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(url, json=body, headers=headers) as resp:
        out = await resp.json(content_type=None)
        assert resp.status < 300, (url, resp.status, out)
        return out


async def _seed(coord: Coordinator, image: Path) -> World:
    """An admin, a show with one take (our image), a contributor's live session, an appliance."""
    data = (hashlib.sha512(b"coordinator-test").digest() * (SIZE // 64 + 1))[:SIZE]
    await asyncio.to_thread(image.write_bytes, data)
    take = {
        "name": image.name,
        "size": SIZE,
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "url": f"{coord.base}/images/{image.name}",
    }
    store = coord.app[STORE]
    now = time.time()
    admin = await store.write(lambda c: create_admin(c, now, "test", "Ada", "ada@example.org"))
    api = coord.base + "/api/v1"
    async with aiohttp.ClientSession() as http:
        show = await _post(http, api + "/shows", admin, {"name": "Launch", "asset_root": "/srv"})
        sam = await _post(
            http, f"{api}/shows/{show['id']}/admins", admin, {"name": "Sam", "email": "s@x.org"}
        )
        enter = {"user": "s@x.org", "show": show["id"], "duration": 3600, "secret": sam["secret"]}
        sam_cred = (await _post(http, api + "/join", None, enter))["credential"]
        episode = await _post(http, f"{api}/shows/{show['id']}/episodes", sam_cred, {"name": "1"})
        sequence = await _post(
            http, f"{api}/episodes/{episode['id']}/sequences", sam_cred, {"name": "Desktop"}
        )
        cleo = await _post(
            http,
            f"{api}/shows/{show['id']}/contributors",
            sam_cred,
            {"name": "Cleo", "email": "c@x.org"},
        )
        enter = {"user": "c@x.org", "show": show["id"], "duration": 3600, "secret": cleo["secret"]}
        cleo_cred = (await _post(http, api + "/join", None, enter))["credential"]
        shot = await _post(
            http, f"{api}/sequences/{sequence['id']}/shots", cleo_cred, {"name": "CD"}
        )
        await _post(http, f"{api}/shots/{shot['id']}/takes", cleo_cred, take)
        session = await _post(
            http,
            api + "/sessions",
            cleo_cred,
            {"name": "Booth", "episode_id": episode["id"], "sequence_id": sequence["id"]},
        )
    appliance = await store.write(
        lambda c: create_appliance(c, time.time(), "test", show["id"], "kiosk-1")
    )
    return World(coord, admin, appliance["credential"], session["id"], image, take)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    coord = Coordinator(tmp_path / "coordinator", free_port())
    await coord.start()
    try:
        yield await _seed(coord, tmp_path / "live.iso")
    finally:
        await coord.stop()


# ---- the agent ----------------------------------------------------------------------------


async def _precache(config: AgentConfig, w: World) -> None:
    """What a kiosk that burned this image before has on disk: the bytes and the catalog entry."""
    cache = await asyncio.to_thread(ImageCache, config.cache_dir, config.cache_size)
    await cache.add_file(w.image, w.take["sha256"], w.take["name"])
    entry = {k: w.take[k] for k in ("sha256", "md5", "size", "name", "url")} | {"notes": ""}
    await asyncio.to_thread(
        (config.state_dir / "catalog.json").write_text, json.dumps([entry]), encoding="utf-8"
    )


async def start_agent(tmp_path: Path, w: World, clock: GateClock) -> Running:
    config = AgentConfig(
        name="kiosk-1",
        coordinator_url=w.coordinator.base,
        credential=w.appliance,
        state_dir=tmp_path / "agent",
        cache_dir=tmp_path / "agent" / "cache",
        cache_size=16 * SIZE,
        socket=tmp_path / "agent.sock",
    )
    config.state_dir.mkdir(parents=True, exist_ok=True)
    await _precache(config, w)
    drive = SimulatedDrive(
        UID,
        DRIVE_PATH,
        speed=SIZE / 4,
        capacity=700 * 1024 * 1024,
        capabilities=frozenset({"CDR"}),
        clock=clock,
    )
    # Quick reconnects, so a coordinator coming back is noticed within the test's patience.
    link = functools.partial(AgentLink, backoff_initial=0.05, backoff_max=0.25, ack_interval=0.05)
    return await serve(
        config, drives=[(drive, "Left")], link_factory=link, pin_factory=MockFactory()
    )


class Events:
    """The agent's control-socket events, as the kiosk would see them, with waiting."""

    def __init__(self, agent: Agent) -> None:
        self.seen: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self.remove = agent.add_listener(self._on)

    def _on(self, event: dict[str, Any]) -> None:
        self.seen.append(event)
        self._changed.set()

    async def wait(self, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            while True:
                for event in self.seen:
                    if check(event):
                        return event
                self._changed.clear()
                await self._changed.wait()


def progress_on_drive(event: dict[str, Any]) -> bool:
    return bool(event["event"] == "progress" and event["drive"] == UID)


def finished_on_drive(event: dict[str, Any]) -> bool:
    return bool(event["event"] == "finished" and event["drive"] == UID)


def link_online(event: dict[str, Any]) -> bool:
    return bool(event["event"] == "status" and event["status"]["link"] == "online")


# ---- an operator's browser ------------------------------------------------------------------


class Browser:
    """A dashboard's WebSocket on `/ws/<session>`: auth first, then commands and pub/sub."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.http, self.ws = http, ws
        self.messages: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, base: str, session: str, token: str) -> Browser:
        http = aiohttp.ClientSession()
        ws = await http.ws_connect(f"{base.replace('http', 'ws', 1)}/ws/{session}")
        await ws.send_str(json.dumps({"action": "auth", "token": token}))
        return cls(http, ws)

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()

    async def frame(self) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=WAIT)
        assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data)
        out: dict[str, Any] = json.loads(msg.data)
        if out.get("action") == "message":
            self.messages.append(out)
        return out

    async def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        await self.ws.send_str(json.dumps(command))
        for _ in range(1000):
            frame = await self.frame()
            if frame.get("action") == command["action"]:
                return frame
        raise AssertionError(f"no reply to {command}")  # pragma: no cover

    async def message(self, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        for message in self.messages:
            if check(message):
                return message
        for _ in range(10_000):
            frame = await self.frame()
            if frame.get("action") == "message" and check(frame):
                return frame
        raise AssertionError("no such message")  # pragma: no cover

    async def my_burner(self) -> dict[str, Any]:
        snap = await self.ask({"action": "snapshot"})
        assert snap["status"] is True, snap
        burners = [b for b in snap["result"]["burners"] if b["uid"] == UID]
        assert burners, snap
        return dict(burners[0])


def burned(n: int) -> Callable[[dict[str, Any]], bool]:
    def check(message: dict[str, Any]) -> bool:
        data = message["data"]
        return bool(
            str(message["channel"]).endswith(".stats")
            and data["uid"] == UID
            and data["burner"]["burned"] == n
        )

    return check


async def wait_reported(agent: Agent) -> None:
    """Until the agent's journal has nothing left to tell and the coordinator acked it all."""
    assert agent.journal is not None
    assert agent.link is not None
    link = agent.link
    assert isinstance(link, AgentLink)
    async with asyncio.timeout(WAIT):
        for _ in range(100_000):
            if not await agent.journal.unreported() and link.unacked == 0:
                return
            await asyncio.sleep(0.01)  # the acks come on the link's timer


# ---- the tests --------------------------------------------------------------------------------


async def test_a_burn_queued_by_an_operator_runs_on_the_kiosk_and_counts_in_the_session(
    world: World, tmp_path: Path
) -> None:
    coord = world.coordinator
    clock = GateClock()
    running = await start_agent(tmp_path, world, clock)
    events = Events(running.agent)
    browser = await Browser.open(coord.base, world.session, world.admin)
    try:
        # The kiosk's drive joins the session as a burner that holds the take.
        await coord.until_drive_idle(world.session)
        sub = await browser.ask({"action": "subscribe", "pattern": f"session.{world.session}.*"})
        assert sub["status"] is True, sub
        burner = await browser.my_burner()
        assert burner["connected"] is True
        assert world.take["md5"] in burner["images"]
        assert burner["stats"]["burned"] == 0

        queued = await browser.ask({"action": "queue", "md5": world.take["md5"]})
        assert queued == {"action": "queue", "status": True}

        # The coordinator dispatched it over the link: the agent burns it on its drive.
        started = await events.wait(progress_on_drive)
        assert started["job"]["image"] == world.take["sha256"]
        done = await events.wait(finished_on_drive)
        assert done["result"]["ok"] is True, done

        stats = await browser.message(burned(1))
        assert stats["channel"] == f"session.{world.session}.stats"
        assert stats["data"]["totals"]["burned"] == 1
        await wait_reported(running.agent)
        burner = await browser.my_burner()
        assert burner["status"] == "MD5PASS"
        assert burner["stats"] == burner["stats"] | {"burned": 1, "failed": 0}
        assert (await browser.ask({"action": "snapshot"}))["result"]["queue"] == []
    finally:
        await browser.close()
        events.remove()
        await running.stop()


async def test_a_coordinator_restart_mid_burn_still_counts_the_result_exactly_once(
    world: World, tmp_path: Path
) -> None:
    coord = world.coordinator
    clock = GateClock()
    running = await start_agent(tmp_path, world, clock)
    agent = running.agent
    events = Events(agent)
    try:
        await coord.until_drive_idle(world.session)
        browser = await Browser.open(coord.base, world.session, world.admin)
        # Hold the burn mid-write (a few ticks in), then restart the coordinator under it.
        clock.hold_at = clock.ticks + 3
        try:
            assert (await browser.ask({"action": "queue", "md5": world.take["md5"]}))["status"]
            await events.wait(progress_on_drive)
        finally:
            await browser.close()
        await coord.until(
            lambda: (
                (b := coord.burner(world.session)) is not None and str(b["status"]).endswith("%")
            ),
            "the coordinator sees the burn in progress",
        )
        await coord.stop()
        await events.wait(lambda e: e["event"] == "status" and e["status"]["link"] != "online")
        assert agent.slots[UID].busy, "the burn goes on while the coordinator is away"
        events.seen.clear()
        await coord.start()
        await events.wait(link_online)

        browser = await Browser.open(coord.base, world.session, world.admin)
        try:
            sub = await browser.ask(
                {"action": "subscribe", "pattern": f"session.{world.session}.stats"}
            )
            assert sub["status"] is True, sub
            clock.gate.set()
            done = await events.wait(finished_on_drive)
            assert done["result"]["ok"] is True, done
            stats = await browser.message(burned(1))
            assert stats["data"]["totals"]["burned"] == 1
            await wait_reported(agent)
            # Everything the agent had to say has been said and acknowledged; ask once more so
            # a second report would have to show.
            assert await agent.report_results() == 0
            burner = await browser.my_burner()
            assert burner["stats"]["burned"] == 1
            assert burner["stats"]["failed"] == 0
            assert (await browser.ask({"action": "snapshot"}))["result"]["totals"]["burned"] == 1
        finally:
            await browser.close()
        assert agent.journal is not None
        jobs = await agent.journal.jobs()
        assert [(j.state.value, j.reported_upstream) for j in jobs] == [("passed", True)]
    finally:
        clock.gate.set()
        events.remove()
        await running.stop()


async def test_an_offline_kiosk_burns_from_cache_and_syncs_once_when_the_coordinator_comes_up(
    world: World, tmp_path: Path
) -> None:
    coord = world.coordinator
    await coord.stop()  # the kiosk boots with no coordinator reachable
    clock = GateClock()
    running = await start_agent(tmp_path, world, clock)
    agent = running.agent
    try:
        async with ControlClient(running.server.path) as kiosk:
            status = await kiosk.request("status")
            assert status["link"] != "online"
            images = await kiosk.request("images")
            assert [i["sha256"] for i in images] == [world.take["sha256"]]
            await kiosk.subscribe()
            accepted = await kiosk.request("burn", image=world.take["sha256"], drive="auto")
            assert accepted["drive"] == UID
            async with asyncio.timeout(WAIT):
                async for event in kiosk.events():
                    if event["event"] == "finished":
                        assert event["result"]["job_id"] == accepted["job_id"]
                        assert event["result"]["ok"] is True, event
                        break
        assert agent.journal is not None
        assert [r.id for r in await agent.journal.unreported()] == [accepted["job_id"]]

        events = Events(agent)
        try:
            await coord.start()
            await events.wait(link_online)
            await wait_reported(agent)
        finally:
            events.remove()
        browser = await Browser.open(coord.base, world.session, world.admin)
        try:
            await coord.until(
                lambda: (
                    (b := coord.burner(world.session)) is not None and b["stats"]["burned"] >= 1
                ),
                "the offline burn counted in the session",
            )
            assert await agent.report_results() == 0
            burner = await browser.my_burner()
            assert burner["stats"]["burned"] == 1
            assert burner["stats"]["failed"] == 0
            snap = await browser.ask({"action": "snapshot"})
            assert snap["result"]["totals"]["burned"] == 1
        finally:
            await browser.close()
    finally:
        await running.stop()


async def test_a_coordinator_restart_right_after_a_result_does_not_count_it_again(
    world: World, tmp_path: Path
) -> None:
    coord = world.coordinator
    clock = GateClock()
    running = await start_agent(tmp_path, world, clock)
    agent = running.agent
    events = Events(agent)
    try:
        await coord.until_drive_idle(world.session)
        browser = await Browser.open(coord.base, world.session, world.admin)
        try:
            sub = await browser.ask(
                {"action": "subscribe", "pattern": f"session.{world.session}.stats"}
            )
            assert sub["status"] is True, sub
            assert (await browser.ask({"action": "queue", "md5": world.take["md5"]}))["status"]
            await browser.message(burned(1))
        finally:
            await browser.close()
        # Stop at once, before the link's idle-ack timer: the coordinator acks what it counted
        # on the way out, so the agent has nothing to replay to the next process.
        await coord.stop()
        events.seen.clear()
        await coord.start()
        await events.wait(link_online)
        await wait_reported(agent)
        browser = await Browser.open(coord.base, world.session, world.admin)
        try:
            burner = await browser.my_burner()
            assert burner["stats"]["burned"] == 1
            assert (await browser.ask({"action": "snapshot"}))["result"]["totals"]["burned"] == 1
        finally:
            await browser.close()
    finally:
        events.remove()
        await running.stop()
