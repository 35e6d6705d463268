"""Appliance links in a live session: a real coordinator, a real `Master`, the real agent shell.

A kiosk's drives join the session as burners through the link, a take queued by a command
frontend reaches the agent as a `burn` with everything needed to fetch it, results count once,
malformed messages are answered with `error` on a link that stays up, and a link renewed after the
grace period loses no report.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from link_helpers import CutProxy, ManualClock, Signal
from rv_helpers import MD5, SHA, FakeClock, World, call, make_world

from appliance.link import AgentLink, LinkState
from coordinator.app import make_app
from coordinator.config import CoordinatorConfig
from coordinator.keys import STORE
from coordinator.links import LinkHub, setup_links
from coordinator.master import ImageInfo, Master, MemberKind, Room
from wire import burnproto as bp

UID = "3f2b9c1d0e4a5b6c7d8e9f0a1b2c3d4e"


@dataclass
class Live:
    client: TestClient[web.Request, web.Application]
    master: Master
    hub: LinkHub
    world: World
    session: str
    signal: Signal
    link_clock: ManualClock
    changes: list[tuple[str, dict[str, object]]]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.client.server.port}/link"


@pytest.fixture
async def live(
    aiohttp_client: Callable[
        [web.Application], Awaitable[TestClient[web.Request, web.Application]]
    ],
    config: CoordinatorConfig,
    clock: FakeClock,
    tmp_path: Path,
) -> Live:
    signal = Signal()
    changes: list[tuple[str, dict[str, object]]] = []
    app = make_app(config)

    async def catalog(md5: str) -> ImageInfo | None:
        row = await app[STORE].read(
            lambda c: c.execute("SELECT name, size FROM takes WHERE md5 = ?", (md5,)).fetchone()
        )
        return None if row is None else ImageInfo(md5, row["name"], row["size"])

    def on_change(channel: str, data: Mapping[str, object]) -> None:
        changes.append((channel, dict(data)))
        signal.pulse()

    master = Master(tmp_path / "master", catalog=catalog, on_change=on_change)

    async def master_ctx(app: web.Application) -> AsyncIterator[None]:
        await master.open()
        yield
        await master.close()

    app.cleanup_ctx.append(master_ctx)
    link_clock = ManualClock()
    hub = setup_links(
        app, lambda: master, grace=60, ack_interval=0.02, heartbeat=None, clock=link_clock
    )
    client = await aiohttp_client(app)
    world = await make_world(client, clock)
    session = await call(
        client,
        "POST",
        "/sessions",
        world.contributor,
        {"name": "Booth", "episode_id": world.episode},
        201,
    )
    return Live(client, master, hub, world, session["id"], signal, link_clock, changes)


def hello(status: str = "IDLE") -> dict[str, Any]:
    return {
        "type": "hello",
        "appliance": {"name": "kiosk-1", "version": "1.0"},
        "drives": [
            {
                "uid": UID,
                "name": "left tray",
                "capabilities": ["BURNDVDR"],
                "images": [MD5],
                "status": status,
            }
        ],
    }


def result(job: str, ok: bool = True) -> dict[str, Any]:
    return {
        "type": "result",
        "job": job,
        "uid": UID,
        "md5": MD5,
        "ok": ok,
        "reason": None,
        "bytes": 10,
        "seconds": 1.5,
    }


@pytest.fixture
async def inbox() -> list[dict[str, Any]]:
    return []


async def start_agent(live: Live, inbox: list[dict[str, Any]], url: str | None = None) -> AgentLink:
    async def on_message(payload: dict[str, Any]) -> None:
        inbox.append(payload)
        live.signal.pulse()

    link = AgentLink(
        url or live.url,
        live.world.appliance,
        on_message=on_message,
        on_state=live.signal.pulse,
        backoff_initial=0.005,
        backoff_max=0.02,
        ack_interval=0.02,
    )
    await link.start()
    return link


@asynccontextmanager
async def through_proxy(
    live: Live, inbox: list[dict[str, Any]], *, formal: bool = True
) -> AsyncIterator[tuple[CutProxy, AgentLink]]:
    """An agent linked through a proxy whose TCP connection the test can cut, online; both are
    closed at the end (`formal=False`: as when the agent process dies)."""
    proxy = CutProxy(live.client.server.port, live.signal)
    port = await proxy.start()
    agent = await start_agent(live, inbox, f"ws://127.0.0.1:{port}/link")
    try:
        await live.signal.until(lambda: agent.state is LinkState.ONLINE)
        yield proxy, agent
    finally:
        await agent.close(formal=formal)
        await proxy.close()


@pytest.fixture
async def agent(live: Live, inbox: list[dict[str, Any]]) -> AsyncIterator[AgentLink]:
    link = await start_agent(live, inbox)
    yield link
    await link.close()


def of_type(inbox: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in inbox if m["type"] == kind]


def burner_status(live: Live) -> str | None:
    room = live.master.room(live.session)
    if room is None or UID not in room.burners or room.burners[UID].status is None:
        return None
    return str(room.burners[UID].status)


async def test_drive_joins_the_session_and_a_queued_take_reaches_the_agent_as_burn(
    live: Live, agent: AgentLink, inbox: list[dict[str, Any]]
) -> None:
    await live.signal.until(lambda: bool(of_type(inbox, "catalog")))
    assert of_type(inbox, "welcome") == [
        {"type": "welcome", "session": live.session, "show": live.world.show, "name": "kiosk-1"}
    ]
    take = {"md5": MD5, "sha256": SHA, "size": 10, "name": "u.iso", "notes": ""}
    assert of_type(inbox, "catalog")[0]["takes"] == [take | {"url": "https://x/u.iso"}]

    await agent.send(hello())
    await live.signal.until(lambda: burner_status(live) == "IDLE")
    room = live.master.room(live.session)
    assert room is not None
    burners = [m for m in room.members.values() if m.kind is MemberKind.BURNER]
    assert [m.uid for m in burners] == [UID]
    assert room.burners[UID].capabilities == frozenset({bp.Capability.BURNDVDR})
    # Unnamed by any operator, the drive is shown by the name its box gives it.
    assert room.burners[UID].name == "left tray"

    replies: list[object] = []
    live.master.join(live.session, "desk", MemberKind.COMMAND, replies.append)
    await live.master.handle(live.session, "desk", bp.Queue(MD5))
    await live.signal.until(lambda: bool(of_type(inbox, "burn")))
    assert of_type(inbox, "burn") == [
        {
            "type": "burn",
            "uid": UID,
            "md5": MD5,
            "sha256": SHA,
            "size": 10,
            "url": "https://x/u.iso",
            "name": "u.iso",
        }
    ]
    assert room.burners[UID].job == MD5

    # A result counts once, even when the same job is reported again after more progress.
    await agent.send({"type": "status", "uid": UID, "status": "42%"})
    await agent.send(result("job-1"))
    await live.signal.until(lambda: room.burners[UID].stats.burned == 1)
    await agent.send({"type": "status", "uid": UID, "status": "42%"})
    await agent.send(result("job-1"))
    await agent.send({"type": "status", "uid": UID, "status": "EMPTY"})
    await live.signal.until(lambda: burner_status(live) == "EMPTY")
    assert room.burners[UID].stats.burned == 1
    assert room.burners[UID].job is None


async def two_queued_one_burning(live: Live, agent: AgentLink, inbox: list[dict[str, Any]]) -> Room:
    """The kiosk linked with its drive IDLE, two discs queued from a desk, the first ordered."""
    await agent.send(hello())
    await live.signal.until(lambda: burner_status(live) == "IDLE")
    room = live.master.room(live.session)
    assert room is not None
    live.master.join(live.session, "desk", MemberKind.COMMAND, lambda _: None)
    await live.master.handle(live.session, "desk", bp.Queue(MD5, 2))
    await live.signal.until(lambda: len(of_type(inbox, "burn")) == 1)
    return room


async def test_a_result_that_arrives_after_the_next_discs_idle_keeps_the_drive_busy(
    live: Live, agent: AgentLink, inbox: list[dict[str, Any]]
) -> None:
    """A fast disc swap: the agent says the drive is IDLE (a blank is in) before the journaled
    result of the burn that just ended. The result counts once, against that burn; the drive
    stays IDLE, as it last said, and is given the next queued disc at once (a result taken as
    the drive's newest status would leave it showing MD5PASS with no work until it spoke again).
    """
    room = await two_queued_one_burning(live, agent, inbox)

    await agent.send({"type": "status", "uid": UID, "status": "97%"})
    await agent.send({"type": "status", "uid": UID, "status": "IDLE"})
    await agent.send(result("job-1"))
    await live.signal.until(lambda: room.burners[UID].stats.burned == 1)
    assert burner_status(live) == "IDLE"
    assert room.burners[UID].job == MD5  # the second disc, handed out once
    await live.signal.until(lambda: len(of_type(inbox, "burn")) == 2)
    assert room.queue == ()


async def test_results_replayed_after_the_hello_of_a_relinked_kiosk_leave_it_ready(
    live: Live, agent: AgentLink, inbox: list[dict[str, Any]]
) -> None:
    """A kiosk that burned while unlinked says hello (drive IDLE) before its journal replays the
    result: the burn counts once and the drive stays IDLE, so queued discs reach it."""
    await agent.send(hello())
    await agent.send(result("made-offline"))

    def burned() -> int:
        room = live.master.room(live.session)
        return 0 if room is None or UID not in room.burners else room.burners[UID].stats.burned

    await live.signal.until(lambda: burned() == 1)
    assert burner_status(live) == "IDLE"
    live.master.join(live.session, "desk", MemberKind.COMMAND, lambda _: None)
    await live.master.handle(live.session, "desk", bp.Queue(MD5))
    await live.signal.until(lambda: len(of_type(inbox, "burn")) == 1)


async def test_a_result_after_a_new_burn_was_ordered_does_not_free_the_drive_for_another(
    live: Live, agent: AgentLink, inbox: list[dict[str, Any]]
) -> None:
    """The drive said IDLE, was ordered a burn, and then a result arrives that the drive has not
    announced by coming to rest since: it may be of an earlier burn, with the drive busy on the
    one just ordered, so the drive is given no second disc until it says it is at rest again."""
    room = await two_queued_one_burning(live, agent, inbox)

    await agent.send(result("made-before-the-order"))
    await live.signal.until(lambda: room.burners[UID].stats.burned == 1)
    assert (burner_status(live), room.burners[UID].job, room.queue) == (
        "MD5PASS",
        None,
        ((MD5, 1),),
    )
    await agent.send({"type": "status", "uid": UID, "status": "IDLE"})
    await live.signal.until(lambda: len(of_type(inbox, "burn")) == 2)


async def test_a_kiosk_with_an_empty_cache_is_sent_takes_it_can_fetch(
    live: Live, agent: AgentLink, inbox: list[dict[str, Any]]
) -> None:
    # A freshly flashed kiosk holds no image, yet the take has a URL it downloads from when
    # told to burn it: the queue must reach it rather than wait for a cache that never fills.
    await live.signal.until(lambda: bool(of_type(inbox, "catalog")))
    empty = hello()
    empty["drives"][0]["images"] = []
    await agent.send(empty)
    await live.signal.until(lambda: burner_status(live) == "IDLE")
    replies: list[object] = []
    live.master.join(live.session, "desk", MemberKind.COMMAND, replies.append)
    await live.master.handle(live.session, "desk", bp.Queue(MD5))
    await live.signal.until(lambda: bool(of_type(inbox, "burn")))
    [burn] = of_type(inbox, "burn")
    assert (burn["md5"], burn["url"]) == (MD5, "https://x/u.iso")
    # The dashboard's cache view still says what the box holds: nothing yet.
    assert kiosk_snapshot(live)["images"] == []


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({"type": "status", "uid": "not-a-uid", "status": "IDLE"}, "BAD_MESSAGE", "uid"),
        ({"type": "status", "uid": UID, "status": "HALFWAY"}, "BAD_MESSAGE", "status"),
        ({"type": "launch"}, "UNKNOWN_TYPE", "type"),
        ({"no": "type"}, "BAD_MESSAGE", "type"),
        (result("job-9") | {"bytes": -1}, "BAD_MESSAGE", "bytes"),
        (hello() | {"drives": [{"uid": UID}]}, "BAD_MESSAGE", "drives[0].name"),
    ],
)
async def test_malformed_agent_messages_get_an_error_and_the_link_stays_up(
    live: Live,
    agent: AgentLink,
    inbox: list[dict[str, Any]],
    payload: dict[str, Any],
    code: str,
    field: str,
) -> None:
    await live.signal.until(lambda: agent.state is LinkState.ONLINE)
    token = agent.token
    await agent.send(payload)
    await live.signal.until(lambda: bool(of_type(inbox, "error")))
    [error] = of_type(inbox, "error")
    assert error["code"] == code
    assert error["message"].startswith(f"{field}:")

    await agent.send(hello())
    await live.signal.until(lambda: burner_status(live) == "IDLE")
    assert agent.token == token
    assert agent.state is LinkState.ONLINE


async def test_after_the_grace_period_the_reconnect_is_a_new_link_and_no_report_is_lost(
    live: Live, inbox: list[dict[str, Any]]
) -> None:
    async with through_proxy(live, inbox) as (proxy, agent):
        await agent.send(hello("42%"))
        await live.signal.until(lambda: burner_status(live) == "42%")
        old_token = agent.token

        proxy.blocked = True
        proxy.cut()
        await live.signal.until(lambda: live.hub.connected == 0)
        # Reports made while the coordinator is unreachable wait in the agent.
        await agent.send(result("job-7"))
        await agent.send({"type": "status", "uid": UID, "status": "EMPTY"})
        live.link_clock.advance(61)
        await live.hub.tick()
        assert live.hub.links == {}
        room = live.master.room(live.session)
        assert room is not None
        assert not room.burners[UID].connected  # the expired link's drive left the room

        proxy.blocked = False
        await live.signal.until(
            lambda: agent.state is LinkState.ONLINE and agent.token != old_token
        )
        await live.signal.until(lambda: burner_status(live) == "EMPTY")
        statuses = [
            d["status"]
            for channel, d in live.changes
            if channel == f"session.{live.session}.burner.{UID}.status"
        ]
        assert statuses[-2:] == ["MD5PASS", "EMPTY"]
        # The renewed link is welcomed like a new one.
        await live.signal.until(lambda: len(of_type(inbox, "welcome")) == 2)
        assert list(live.hub.links) == [agent.token]


# ---- kiosks: link state and cache as the dashboard sees them


def kiosk_links(live: Live) -> list[str]:
    """The link states announced for the kiosk, in order."""
    prefix = f"session.{live.session}.kiosk."
    return [str(d["link"]) for channel, d in live.changes if channel.startswith(prefix)]


def kiosk_snapshot(live: Live) -> dict[str, Any]:
    """The one kiosk in the room's snapshot (empty until the room has heard of it)."""
    room = live.master.room(live.session)
    kiosks: list[dict[str, Any]] = [] if room is None else room.snapshot()["kiosks"]  # type: ignore[assignment]
    assert len(kiosks) <= 1
    return dict(kiosks[0]) if kiosks else {}


async def test_a_dropped_socket_shows_the_kiosk_reconnecting_then_online_after_resume(
    live: Live, inbox: list[dict[str, Any]]
) -> None:
    async with through_proxy(live, inbox) as (proxy, agent):
        await agent.send(hello("42%") | {"appliance": {"name": "kiosk-1", "version": "2.0.1"}})
        await live.signal.until(lambda: burner_status(live) == "42%")
        await live.signal.until(lambda: kiosk_snapshot(live).get("version") == "2.0.1")
        kiosk = kiosk_snapshot(live)
        assert (kiosk["name"], kiosk["link"], kiosk["burners"]) == ("kiosk-1", "online", [UID])
        token = agent.token

        # The TCP connection dies (the processes stay up): the link waits within its grace.
        proxy.blocked = True
        assert proxy.cut() == 1
        await live.signal.until(lambda: kiosk_links(live)[-1:] == ["reconnecting"])
        assert kiosk_snapshot(live)["link"] == "reconnecting"
        room = live.master.room(live.session)
        assert room is not None
        assert room.burners[UID].connected  # the burn goes on in the box meanwhile

        proxy.blocked = False
        await live.signal.until(lambda: kiosk_links(live)[-1:] == ["online"])
        assert agent.token == token  # resumed, not a new link
        assert kiosk_snapshot(live)["link"] == "online"
        assert "offline" not in kiosk_links(live)
        await live.signal.until(lambda: agent.state is LinkState.ONLINE)
        await agent.close()
    # A formal disconnect ends the link: offline, since the moment it ended.
    await live.signal.until(lambda: kiosk_links(live)[-1:] == ["offline"])
    assert isinstance(kiosk_snapshot(live)["since"], float)


async def test_grace_expiry_makes_the_kiosk_offline_and_its_cache_follows_hello(
    live: Live, inbox: list[dict[str, Any]]
) -> None:
    other = "0123456789abcdef" * 2
    async with through_proxy(live, inbox) as (proxy, agent):
        with_cache = hello()
        with_cache["appliance"] |= {"cache_used": 10, "cache_max": 1000}
        await agent.send(with_cache)
        await live.signal.until(lambda: kiosk_snapshot(live).get("cache_max") == 1000)
        # The catalog names what it knows; an image it does not know is shown by its md5.
        assert kiosk_snapshot(live)["images"] == [{"md5": MD5, "name": "u.iso", "size": 10}]
        assert kiosk_snapshot(live)["cache_used"] == 10

        with_cache["drives"][0]["images"] = [MD5, other]
        await agent.send(with_cache)
        await live.signal.until(lambda: len(kiosk_snapshot(live)["images"]) == 2)
        assert kiosk_snapshot(live)["images"] == [
            {"md5": other, "name": None, "size": None},
            {"md5": MD5, "name": "u.iso", "size": 10},
        ]

        proxy.blocked = True
        proxy.cut()
        await live.signal.until(lambda: kiosk_links(live)[-1:] == ["reconnecting"])
        live.link_clock.advance(61)
        await live.hub.tick()
        assert kiosk_links(live)[-1] == "offline"
        kiosk = kiosk_snapshot(live)
        assert kiosk["link"] == "offline"
        assert kiosk["burners"] == [UID]  # still listed, so the wall keeps its group


async def test_an_old_link_expiring_after_a_restart_does_not_mark_the_kiosk_offline(
    live: Live, inbox: list[dict[str, Any]]
) -> None:
    # formal=False at the end: the agent process dies.
    async with through_proxy(live, inbox, formal=False) as (proxy, old):
        await old.send(hello())
        await live.signal.until(lambda: burner_status(live) == "IDLE")
        proxy.blocked = True
        proxy.cut()
        await live.signal.until(lambda: kiosk_links(live)[-1:] == ["reconnecting"])
    # The restarted agent makes a new link while the old one still waits within its grace.
    new = await start_agent(live, inbox)
    try:
        await live.signal.until(lambda: new.state is LinkState.ONLINE)
        await new.send(hello())
        await live.signal.until(lambda: kiosk_links(live)[-1:] == ["online"])
        live.link_clock.advance(61)
        await live.hub.tick()
        assert list(live.hub.links) == [new.token]
        assert kiosk_snapshot(live)["link"] == "online"
        assert kiosk_links(live)[-1] == "online"
    finally:
        await new.close()


async def test_a_failed_result_shows_its_sentence_and_the_tools_detail(
    live: Live, agent: AgentLink, inbox: list[dict[str, Any]]
) -> None:
    await agent.send(hello())
    await live.signal.until(lambda: burner_status(live) == "IDLE")
    room = live.master.room(live.session)
    assert room is not None
    live.master.join(live.session, "desk", MemberKind.COMMAND, lambda _: None)
    await live.master.handle(live.session, "desk", bp.Queue(MD5))
    await live.signal.until(lambda: bool(of_type(inbox, "burn")))
    failed = result("job-9", ok=False) | {
        "reason": "write-protected",
        "detail": "cdrskin: FATAL : Drive is write protected",
    }
    await agent.send(failed)
    await live.signal.until(lambda: room.burners[UID].stats.failed == 1)
    shown = room.burners[UID].as_dict()["failure"]
    assert isinstance(shown, dict)
    assert shown["reason"] == "write-protected"
    assert shown["sentence"] == "The disc or stick is write-protected. Take another one."
    assert shown["detail"] == "cdrskin: FATAL : Drive is write protected"
    # The disc is made on the next try: the failure is no longer the burner's news.
    await agent.send({"type": "status", "uid": UID, "status": "IDLE"})
    await live.signal.until(lambda: room.burners[UID].job is not None)
    await agent.send(result("job-10"))
    await live.signal.until(lambda: room.burners[UID].stats.burned == 1)
    assert room.burners[UID].as_dict()["failure"] is None


async def test_a_kiosk_reports_what_a_take_unpacks_to_once(
    live: Live, agent: AgentLink, inbox: list[dict[str, Any]]
) -> None:
    await live.signal.until(lambda: bool(of_type(inbox, "catalog")))
    store = live.client.app[STORE]

    async def extracted() -> tuple[Any, ...]:
        row = await store.read(
            lambda c: c.execute(
                "SELECT extracted_size, extracted_sha256 FROM takes WHERE sha256 = ?", (SHA,)
            ).fetchone()
        )
        return tuple(row)

    async def report(size: int, digest: str) -> None:
        await agent.send(
            {"type": "extracted", "sha256": SHA, "extracted_size": size, "extracted_sha256": digest}
        )
        # The link handles an agent's messages in order: once the nonsense after it is
        # answered, the report was handled.
        errors = len(of_type(inbox, "error"))
        await agent.send({"type": "nonsense"})
        await live.signal.until(lambda: len(of_type(inbox, "error")) > errors)

    assert await extracted() == (None, None)
    await report(2759852032, "ab" * 32)
    assert await extracted() == (2759852032, "ab" * 32)
    # A second kiosk (or a confused one) cannot overwrite what is recorded.
    await report(1000, "cd" * 32)
    assert await extracted() == (2759852032, "ab" * 32)
