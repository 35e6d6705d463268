"""The burn-protocol listener over real TCP, driven by a client written from the seed text alone.

The client (`seed_client.SeedClient`) builds and splits the bytes by hand instead of using
`wire.burnproto`, so a mistake shared by the encoder and the listener would still show up here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from seed_client import END, TOKEN, SeedClient, connect

from coordinator.burnlistener import BurnListener, Grant, start_burn_listener
from coordinator.master import ImageInfo, Master

SESSION = "Booth-1"
IMG = "0123456789abcdef0123456789abcdef"
IMG2 = "fedcba9876543210fedcba9876543210"
BURNER_A = "3f2b9c1d0e4a5b6c7d8e9f0a1b2c3d4e"
BURNER_B = "4f2b9c1d0e4a5b6c7d8e9f0a1b2c3d4e"
DISPLAY_UID = "00112233445566778899aabbccddeeff"
COMMAND_UID = "10112233445566778899aabbccddeeff"


class ManualTicker:
    """Listener time that moves only when the test says so."""

    def __init__(self) -> None:
        self.t = 0.0
        self.ticks: asyncio.Queue[None] = asyncio.Queue()

    def now(self) -> float:
        return self.t

    async def tick(self) -> None:
        await self.ticks.get()

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self.ticks.put_nowait(None)


class ManualClock:
    """The master's clock (burn durations, hence speeds), moved only by the test."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def catalog(md5: str) -> ImageInfo | None:
    if md5 == IMG:
        return ImageInfo(
            IMG, "ubuntu-26.04-desktop-amd64.iso", 3_000_000_000, "Desktop\r\n\r\namd64"
        )
    return None


StartListener = Callable[..., Awaitable[BurnListener]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def master(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Master]:
    m = Master(tmp_path / "data", catalog=catalog, clock=clock)
    await m.open()
    yield m
    await m.close()


@pytest.fixture
async def start(master: Master) -> AsyncIterator[StartListener]:
    started: list[BurnListener] = []

    async def factory(**kwargs: Any) -> BurnListener:
        options: dict[str, Any] = {"burn_token": TOKEN, "session_id": SESSION} | kwargs
        listener = await start_burn_listener(master, "127.0.0.1", 0, **options)
        started.append(listener)
        return listener

    yield factory
    for listener in started:
        listener.close()
        await listener.wait_closed()


async def ready_burner(
    port: int, clients: list[SeedClient], uid: str, images: tuple[str, ...] = (IMG,)
) -> SeedClient:
    burner = await connect(port, clients)
    await burner.hello("BURNER", uid)
    assert await burner.expect("CAPAB") == []
    burner.send("CAP", "BURNDVDR", *(f"IMG:{m}" for m in images))
    burner.send("STATUS", "IDLE")
    # A question on the same connection: once answered, the frames before it were applied.
    burner.send("WHATIS", IMG)
    await burner.expect("INFO")
    return burner


async def test_full_burn_cycle(
    start: StartListener, master: Master, clients: list[SeedClient]
) -> None:
    port = (await start()).port
    display = await connect(port, clients)
    await display.hello("DISPLAY", DISPLAY_UID)
    assert await display.expect("QLIST") == []
    burner = await ready_burner(port, clients, BURNER_A)
    await display.until("SLIST", f"{BURNER_A}==IDLE")

    command = await connect(port, clients)
    await command.hello("COMMAND", COMMAND_UID)
    command.send("ASKCAPAB")
    assert await command.expect("CAP") == ["BURNDVDR", f"IMG:{IMG}"]
    command.send("WHATIS", IMG)
    assert await command.expect("INFO") == [
        IMG,
        "ubuntu-26.04-desktop-amd64.iso",
        "3000000000",
        "Desktop\r\n \r\namd64",  # a blank line travels as CRLF SPACE CRLF
    ]
    command.send("NAME", BURNER_A, "Booth 1 left")
    await display.until("NAME", BURNER_A, "Booth 1 left")
    command.send("OPEN", BURNER_A)
    assert await burner.expect("OPEN") == []

    command.send("QUEUE", IMG)
    assert await command.expect("QOK") == []
    assert await burner.expect("BURN") == [IMG]
    for status in ("0%", "50%", "100%", "MD5PASS", "TRAYOPEN", "AVAIL"):
        burner.send("STATUS", status)
        await display.until("SLIST", f"{BURNER_A}=Booth 1 left={status}")
    assert ["QLIST", IMG] in display.seen
    # The display saw the disc queued, then the queue empty once the burner took it.
    assert ["QLIST"] in display.seen[display.seen.index(["QLIST", IMG]) :]

    command.send("QREPORT")
    assert await command.expect("QLIST") == []
    command.send("SREPORT")
    assert await command.expect("SLIST") == [f"{BURNER_A}=Booth 1 left=AVAIL"]
    room = master.room("booth-1")
    assert room is not None
    assert room.stats()[BURNER_A]["burned"] == 1
    assert room.stats()[BURNER_A]["failed"] == 0


async def test_malformed_frames_get_error_and_the_connection_survives(
    start: StartListener, clients: list[SeedClient]
) -> None:
    port = (await start()).port
    client = await connect(port, clients)
    await client.hello("COMMAND", COMMAND_UID, credential=None)  # refused: no credential
    assert (await client.error())[0] == "NOT_ALLOWED"
    assert await client.closed_by_server()

    client = await connect(port, clients)
    assert await client.expect("IDENT") == ["V1"]
    client.send("QREPORT")  # before ID
    assert (await client.error())[0] == "NOT_IDENTIFIED"
    client.send("ID", "V2", "COMMAND", COMMAND_UID, TOKEN)
    assert (await client.error())[0] == "UNSUPPORTED_VERSION"
    client.send("ID", "V1", "COMMAND", COMMAND_UID, TOKEN)
    await client.expect("SLIST")  # initial picture
    for bad, code in [
        (b"QUEUE\tnot-a-hash" + END, "BAD_HASH"),
        (b"FETCH\tx" + END, "UNKNOWN_VERB"),
        (END, "EMPTY_FRAME"),
        (b"QUEUE\t" + IMG.encode() + b"\t0" + END, "BAD_NUMBER"),
        (b"NAME\t\xff\xfe" + END, "BAD_UTF8"),
        (b"QUEUE\t" + IMG2.encode() + END, "UNKNOWN_IMAGE"),
        (b"STATUS\tIDLE" + END, "NOT_ALLOWED"),
        (b"NAME\t" + BURNER_B.encode() + b"\tghost" + END, "UNKNOWN_CLIENT"),
        (b"ID\tV1\tCOMMAND\t" + COMMAND_UID.encode() + END, "NOT_ALLOWED"),
    ]:
        client.send_raw(bad)
        assert (await client.error())[0] == code, bad
    client.send("QREPORT")
    assert await client.expect("QLIST") == []


async def test_oversize_frame_gets_error_and_close(
    start: StartListener, clients: list[SeedClient]
) -> None:
    port = (await start()).port
    client = await connect(port, clients)
    await client.hello("DISPLAY", DISPLAY_UID)
    await client.expect("SLIST")
    client.send_raw(b"WHATIS\t" + b"a" * 70_000)  # no terminator needed to be refused
    assert (await client.error())[0] == "FRAME_TOO_LARGE"
    assert await client.closed_by_server()


async def test_verbs_outside_the_client_type_are_not_allowed(
    start: StartListener, clients: list[SeedClient]
) -> None:
    port = (await start()).port
    display = await connect(port, clients)
    await display.hello("DISPLAY", DISPLAY_UID)
    await display.expect("SLIST")
    burner = await ready_burner(port, clients, BURNER_A)
    refused = (["QUEUE", IMG], ["QCLEAR"], ["NAME", BURNER_A, "x"], ["OPEN", BURNER_A])
    for verb in (*refused, ["STATS", "*", "0", "0", "-"]):
        display.send(*verb)
        assert (await display.error())[0] == "NOT_ALLOWED"
    burner.send("QCLEAR")
    assert (await burner.error())[0] == "NOT_ALLOWED"
    burner.send("BURN", IMG)
    assert (await burner.error())[0] == "NOT_ALLOWED"
    display.send("QREPORT")
    assert await display.expect("QLIST") == []


async def test_burner_dropping_mid_burn_requeues_for_another(
    start: StartListener, clients: list[SeedClient]
) -> None:
    port = (await start()).port
    first = await ready_burner(port, clients, BURNER_A)
    command = await connect(port, clients)
    await command.hello("COMMAND", COMMAND_UID)
    command.send("QUEUE", IMG)
    assert await command.expect("QOK") == []
    assert await first.expect("BURN") == [IMG]
    first.send("STATUS", "40%")
    second = await ready_burner(port, clients, BURNER_B)
    command.send("SREPORT")
    await command.until("SLIST", f"{BURNER_A}==40%", f"{BURNER_B}==IDLE")
    first.close()
    assert await second.expect("BURN") == [IMG]


async def test_silent_burner_is_dropped_after_three_intervals(
    start: StartListener, clients: list[SeedClient]
) -> None:
    ticker = ManualTicker()
    port = (await start(ticker=ticker, idle_interval=10.0)).port
    first = await ready_burner(port, clients, BURNER_A)
    command = await connect(port, clients)
    await command.hello("COMMAND", COMMAND_UID)
    command.send("QUEUE", IMG)
    assert await command.expect("QOK") == []
    assert await first.expect("BURN") == [IMG]
    ticker.advance(25.0)  # under three intervals: nobody is dropped
    second = await ready_burner(port, clients, BURNER_B)
    command.send("SREPORT")
    await command.until("SLIST", f"{BURNER_A}==IDLE", f"{BURNER_B}==IDLE")
    ticker.advance(10.0)  # the first burner has now been silent for 35 s
    assert await second.expect("BURN") == [IMG]
    assert await first.closed_by_server()


async def test_client_that_never_identifies_is_dropped(
    start: StartListener, clients: list[SeedClient]
) -> None:
    ticker = ManualTicker()
    port = (await start(ticker=ticker)).port
    client = await connect(port, clients)
    assert await client.expect("IDENT") == ["V1"]
    ticker.advance(31.0)
    assert await client.closed_by_server()


async def test_same_burner_reconnecting_replaces_the_old_connection(
    start: StartListener, master: Master, clients: list[SeedClient]
) -> None:
    port = (await start()).port
    old = await ready_burner(port, clients, BURNER_A)
    new = await ready_burner(port, clients, BURNER_A)
    assert (await old.error())[0] == "NOT_ALLOWED"
    assert await old.closed_by_server()
    new.send("STATUS", "AVAIL")
    new.send("WHATIS", IMG)
    await new.expect("INFO")
    room = master.room(SESSION)
    assert room is not None
    assert str(room.burners[BURNER_A].status) == "AVAIL"
    assert room.burners[BURNER_A].connected


async def test_suspending_the_session_closes_its_clients_until_resumed(
    start: StartListener, master: Master, clients: list[SeedClient]
) -> None:
    port = (await start()).port
    display = await connect(port, clients)
    await display.hello("DISPLAY", DISPLAY_UID)
    await display.expect("SLIST")
    await master.suspend(SESSION)
    code, text = await display.error()
    assert (code, text) == ("NOT_ALLOWED", "the session was suspended")
    assert await display.closed_by_server()
    late = await connect(port, clients)
    await late.hello("DISPLAY", DISPLAY_UID)
    assert (await late.error())[0] == "NOT_ALLOWED"
    master.resume(SESSION)
    again = await connect(port, clients)
    await again.hello("DISPLAY", DISPLAY_UID)
    assert await again.expect("QLIST") == []


async def test_bad_token_is_refused_with_error_and_close(
    start: StartListener, clients: list[SeedClient]
) -> None:
    port = (await start()).port
    for kind in ("BURNER", "COMMAND", "DISPLAY"):
        client = await connect(port, clients)
        await client.hello(kind, BURNER_A, credential="wrong-token")
        code, text = await client.error()
        assert code == "NOT_ALLOWED"
        assert "wrong-token" not in text
        assert await client.closed_by_server()


async def test_anonymous_display_only_with_public_display(
    start: StartListener, clients: list[SeedClient]
) -> None:
    closed = await start()
    client = await connect(closed.port, clients)
    await client.hello("DISPLAY", DISPLAY_UID, credential=None)
    assert (await client.error())[0] == "NOT_ALLOWED"
    assert await client.closed_by_server()

    public = await start(public_display=True)
    client = await connect(public.port, clients)
    await client.hello("DISPLAY", DISPLAY_UID, credential=None)
    assert await client.expect("QLIST") == []
    client.send("QUEUE", IMG)  # read-only
    assert (await client.error())[0] == "NOT_ALLOWED"
    burner = await connect(public.port, clients)
    await burner.hello("BURNER", BURNER_A, credential=None)  # only displays may be anonymous
    assert (await burner.error())[0] == "NOT_ALLOWED"
    assert await burner.closed_by_server()


async def test_appliance_credential_through_authorize_callback(
    start: StartListener, master: Master, clients: list[SeedClient]
) -> None:
    async def authorize(client_type: object, credential: str) -> str | None:
        return "Fest" if credential == "appliance-cred-1" else None

    port = (await start(authorize=authorize)).port
    burner = await connect(port, clients)
    await burner.hello("BURNER", BURNER_A, credential="appliance-cred-1")
    assert await burner.expect("CAPAB") == []
    burner.send("CAP", "BURNDVDR")
    burner.send("STATUS", "EMPTY")
    burner.send("WHATIS", IMG)  # a round trip, so the status above has been applied
    await burner.expect("INFO")
    room = master.room("fest")
    assert room is not None
    assert str(room.burners[BURNER_A].status) == "EMPTY"


async def test_refuses_options_that_cannot_work(master: Master) -> None:
    with pytest.raises(ValueError, match="session_id"):
        await start_burn_listener(master, "127.0.0.1", 0, burn_token=TOKEN)
    with pytest.raises(ValueError, match="idle_interval"):
        await start_burn_listener(master, "127.0.0.1", 0, idle_interval=0)


async def test_display_and_command_get_stats_and_command_open_reaches_the_burner(
    start: StartListener, clock: ManualClock, clients: list[SeedClient]
) -> None:
    port = (await start()).port
    display = await connect(port, clients)
    await display.hello("DISPLAY", DISPLAY_UID)
    # The initial picture ends with the session totals: nothing burned yet, no speed known.
    await display.until("STATS", "*", "0", "0", "-")
    burner = await ready_burner(port, clients, BURNER_A)
    command = await connect(port, clients)
    await command.hello("COMMAND", COMMAND_UID)
    await command.until("STATS", BURNER_A, "0", "0", "-")
    assert await command.frame() == ["STATS", "*", "0", "0", "-"]

    # Identifying the box: the command names the burner, the burner gets a bare OPEN.
    command.send("OPEN", BURNER_A.upper())
    assert await burner.frame() == ["OPEN"]

    command.send("QUEUE", IMG)
    assert await command.expect("QOK") == []
    assert await burner.expect("BURN") == [IMG]
    clock.t += 1000.0  # 3,000,000,000 bytes in 1000 s: 3,000,000 bytes/s
    burner.send("STATUS", "100%")
    burner.send("STATUS", "MD5PASS")
    for watcher in (display, command):
        await watcher.until("STATS", BURNER_A, "1", "0", "3000000")
        assert await watcher.frame() == ["STATS", "*", "1", "0", "3000000"]

    # A failed verify counts too, and leaves the mean speed of the passed burns alone.
    burner.send("STATUS", "AVAIL")
    command.send("QUEUE", IMG)
    assert await burner.expect("BURN") == [IMG]
    burner.send("STATUS", "MD5FAIL")
    await display.until("STATS", BURNER_A, "1", "1", "3000000")
    assert await display.frame() == ["STATS", "*", "1", "1", "3000000"]

    # A display connecting later starts from the same figures.
    late = await connect(port, clients)
    await late.hello("DISPLAY", DISPLAY_UID)
    await late.until("STATS", BURNER_A, "1", "1", "3000000")
    assert await late.frame() == ["STATS", "*", "1", "1", "3000000"]


async def test_open_from_a_command_needs_a_connected_burner_and_from_others_is_refused(
    start: StartListener, clients: list[SeedClient]
) -> None:
    port = (await start()).port
    burner = await ready_burner(port, clients, BURNER_A)
    command = await connect(port, clients)
    await command.hello("COMMAND", COMMAND_UID)
    for frame, code in [
        (["OPEN"], "FIELD_COUNT"),  # a command must say which tray
        (["OPEN", BURNER_B], "UNKNOWN_CLIENT"),
        (["OPEN", "booth-1"], "BAD_UID"),
        (["OPEN", BURNER_A, "now"], "FIELD_COUNT"),
    ]:
        command.send(*frame)
        assert (await command.error())[0] == code, frame
    burner.send("OPEN", BURNER_A)  # a burner may not open trays, its own or another's
    assert (await burner.error())[0] == "NOT_ALLOWED"
    command.send("OPEN", BURNER_A)
    assert await burner.frame() == ["OPEN"]


async def test_an_expiring_credential_is_announced_and_the_connection_kept(
    start: StartListener, master: Master, clients: list[SeedClient]
) -> None:
    async def authorize(client_type: object, credential: str) -> Grant | None:
        return Grant("Fest", credential_id="cred-7") if credential == "appliance-cred" else None

    port = (await start(authorize=authorize)).port
    command = await connect(port, clients)
    await command.hello("COMMAND", COMMAND_UID, credential="appliance-cred")
    await command.expect("STATS")
    assert master.notify_expiry("cred-7", 1_900_000_000.0) == 1
    code, text = await command.error()
    assert code == "CREDENTIAL_EXPIRING"
    assert "2030-03-17T17:46:40Z" in text
    command.send("QREPORT")
    assert await command.expect("QLIST") == []
