"""Tests of the idle appliance-link benchmark (bench_links.py, relaylib.links, relaylib.linkgen)
and of the slow-client run of bench_relay.py: links really reach a real coordinator and are
counted by it, refused credentials and bad settings are typed errors, a member that never reads
is kept out of the counts and its fate (closed with which code, or still open) is reported, and
the rows say ok/MISS against issue 5's limits. Small counts only; nothing asserts a duration."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH_DIR))

from bench_links import links_row, verdict  # noqa: E402
from bench_relay import slow_fate, slow_row  # noqa: E402
from relaylib import (  # noqa: E402
    BenchConfigError,
    BenchError,
    BroadcastResult,
    IdleResult,
    LoadGenError,
    baseline_target,
    command_target,
    run_broadcast,
)
from relaylib.config import config_from_env, idle_links_from_env  # noqa: E402
from relaylib.harness import LoadGenProcess  # noqa: E402
from relaylib.links import (  # noqa: E402
    LINK_PATH,
    LinkSpec,
    LinksResult,
    enrol,
    free_port,
    links_reported,
    run_links,
    start_coordinator,
)
from relaylib.protocol import Endpoint, LoadSpec  # noqa: E402

# ---------------------------------------------------------------- idle appliance links


async def test_links_are_held_by_a_real_coordinator_and_priced_per_link() -> None:
    result = await run_links(6)
    # run_links itself refuses to report unless the coordinator's /health counts all 6.
    assert result.links == 6
    assert result.rss_before_kib > 0
    assert result.rss_after_kib > 0
    assert abs(result.kib_per_link) < 1024  # whatever 6 links cost, it is not a MiB each


async def test_enrolment_gives_one_distinct_appliance_credential_per_link(tmp_path: Path) -> None:
    tokens = await enrol(tmp_path, 12)
    assert len(tokens) == 12
    assert len(set(tokens)) == 12


async def test_a_refused_credential_is_a_typed_error_naming_the_status(tmp_path: Path) -> None:
    await enrol(tmp_path, 1)  # a database, but these are not its credentials
    tokens = tmp_path / "credentials.txt"
    tokens.write_text("not-a-credential\nnor-this\n")
    port = free_port()
    server = await start_coordinator(tmp_path, port)
    try:
        spec = LinkSpec(f"ws://127.0.0.1:{port}{LINK_PATH}", str(tokens), links=1, warm=1)
        gen = await LoadGenProcess.spawn("relaylib.linkgen", spec.to_json())
        try:
            with pytest.raises(LoadGenError, match="refused: HTTP 401"):
                await gen.expect("READY", 60)
        finally:
            await gen.finish()
    finally:
        await server.stop()


async def test_too_few_credentials_is_a_typed_error(tmp_path: Path) -> None:
    tokens = tmp_path / "credentials.txt"
    tokens.write_text("only-one\n")
    spec = LinkSpec("ws://127.0.0.1:1/link", str(tokens), links=5, warm=1)
    gen = await LoadGenProcess.spawn("relaylib.linkgen", spec.to_json())
    try:
        with pytest.raises(LoadGenError, match="holds 1 credentials, 6 needed"):
            await gen.expect("READY", 60)
    finally:
        await gen.finish()


def test_a_link_spec_survives_its_json_round_trip_and_rejects_nonsense() -> None:
    spec = LinkSpec("ws://127.0.0.1:9/link", "/tmp/t", links=10_000, concurrency=20)
    again = LinkSpec.from_json(spec.to_json())
    assert again == spec
    with pytest.raises(BenchConfigError, match="loopback"):
        LinkSpec("ws://10.1.1.1:9/link", "/t", links=1)
    with pytest.raises(BenchConfigError, match="links must be"):
        LinkSpec("ws://127.0.0.1:9/link", "/t", links=0)
    with pytest.raises(BenchConfigError, match="ack_wait_s"):
        LinkSpec("ws://127.0.0.1:9/link", "/t", links=1, ack_wait_s=0)
    with pytest.raises(BenchConfigError, match="malformed link spec"):
        LinkSpec.from_json('{"url": "ws://127.0.0.1:9/link"}')


def test_the_link_count_defaults_to_the_issue_figure_and_bad_values_are_named() -> None:
    assert idle_links_from_env({}) == 10_000
    assert idle_links_from_env({"BENCH_IDLE_LINKS": "2_000"}) == 2000
    for bad, message in (("0", "out of range"), ("lots", "not a whole number")):
        with pytest.raises(BenchConfigError, match=message) as caught:
            idle_links_from_env({"BENCH_IDLE_LINKS": bad})
        assert "BENCH_IDLE_LINKS" in str(caught.value)


def test_the_link_count_is_read_from_health_and_nonsense_is_refused() -> None:
    assert links_reported({"status": "LISTENING", "links": 42}) == 42
    for body in ({"status": "LISTENING"}, {"links": True}, {"links": -1}, {"links": "3"}):
        with pytest.raises(BenchError, match="no link count"):
            links_reported(body)


def test_the_link_row_compares_with_bare_idle_and_judges_24_kib() -> None:
    base = IdleResult("bare-idle", 1000, 10_000, 24_000)  # 14 KiB per connection
    cheap = LinksResult("coordinator", 1000, 50_000, 71_000, 3.0)  # 21 KiB per link
    dear = LinksResult("coordinator", 1000, 50_000, 80_000, 3.0)  # 30 KiB per link
    assert "21.0" in links_row(cheap, base)
    assert "1.50" in links_row(cheap, base)
    assert links_row(cheap, base).endswith("ok (≤24 KiB)")
    assert links_row(dear, base).endswith("MISS (≤24 KiB)")
    assert verdict(24.0) == "ok (≤24 KiB)"


# ---------------------------------------------------------------- slow client


async def test_a_member_that_never_reads_is_not_counted_and_gets_the_backlog_later() -> None:
    result = await run_broadcast(
        baseline_target("broadcast"), receivers=4, messages=30, seconds=60, slow=1, window=1
    )
    assert result.deliveries == 4 * 30  # the slow member's copies are not counted
    assert result.slow == 1
    assert result.slow_closed == 0
    # Thirty small frames fit in the buffers: when it reads at last, all are there, and the
    # warm-up broadcast(s) too.
    assert 31 <= result.slow_frames <= 31 + 10


# A room server that, like a relay protecting its room, closes its last member (the one that
# joined after the sender: the slow one) with 1013 when the first real broadcast arrives.
CLOSING_ROOM = textwrap.dedent(
    """
    import asyncio, json, sys
    from aiohttp import web, WSMsgType
    from relaylib.protocol import Endpoint, ready_line

    members = []
    closing = set()

    async def handler(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        members.append(ws)
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            if json.loads(msg.data)["i"] >= 0 and not closing:
                # Its own task: the slow member will not answer the close until it reads.
                closing.add(asyncio.ensure_future(members.pop().close(code=1013)))
            for peer in list(members):
                if peer is not ws and not peer.closed:
                    await peer.send_str(msg.data)
        return ws

    async def main():
        app = web.Application()
        app.router.add_get("/ws/{room}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        print(ready_line({"broadcast": Endpoint(f"ws://127.0.0.1:{port}/ws/room")}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await runner.cleanup()

    asyncio.run(main())
    """
)


async def test_a_slow_member_closed_by_the_server_is_reported_with_its_code(
    tmp_path: Path,
) -> None:
    script = tmp_path / "closing_room.py"
    script.write_text(CLOSING_ROOM)
    target = command_target("relay-embedded", [sys.executable, str(script)])
    result = await run_broadcast(target, receivers=3, messages=10, seconds=60, slow=1, window=1)
    assert result.deliveries == 3 * 10
    assert result.slow_closed == 1
    assert result.slow_close_codes == (1013,)
    assert "closed by the server (1013)" in slow_fate(result)


# Like a relay still checking auth frames, this room loses the first broadcast it is given.
LATE_ROOM = CLOSING_ROOM.replace(
    """        if json.loads(msg.data)["i"] >= 0 and not closing:
            # Its own task: the slow member will not answer the close until it reads.
            closing.add(asyncio.ensure_future(members.pop().close(code=1013)))
""",
    """        if not closing:
            closing.add(json.loads(msg.data)["i"])
            continue
""",
)


async def test_a_room_that_admits_members_late_still_gets_warmed_up(tmp_path: Path) -> None:
    assert LATE_ROOM != CLOSING_ROOM
    script = tmp_path / "late_room.py"
    script.write_text(LATE_ROOM)
    target = command_target("relay-embedded", [sys.executable, str(script)])
    result = await run_broadcast(target, receivers=3, messages=10, seconds=60, window=1)
    assert result.deliveries == 3 * 10


def test_the_slow_row_judges_the_p99_ratio_against_one_and_a_half() -> None:
    base = BroadcastResult("relay-embedded", 1000, 100_000, 20_000.0, 9.0, 40.0)
    calm = BroadcastResult("relay-embedded", 1000, 100_000, 20_000.0, 9.0, 50.0, slow=1)
    stalled = BroadcastResult(
        "relay-embedded", 1000, 9_000, 900.0, 9.0, 400.0, slow=1, slow_frames=200
    )
    assert "1.25  ok (≤1.5)" in slow_row(calm, base)
    assert "10.00  MISS (≤1.5)" in slow_row(stalled, base)
    assert "slow member still open; 200 frames reached it" in slow_row(stalled, base)
    assert "ok" not in slow_row(base, base)  # the run without it is the yardstick, not judged


def test_slow_members_exist_only_in_broadcasts_and_settings_are_checked() -> None:
    with pytest.raises(BenchConfigError, match="only in the broadcast"):
        LoadSpec("echo", Endpoint("ws://127.0.0.1:1/ws"), clients=1, slow=1)
    with pytest.raises(BenchConfigError, match="slow must be >= 0"):
        LoadSpec("broadcast", Endpoint("ws://127.0.0.1:1/ws"), clients=1, slow=-1)
    spec = LoadSpec("broadcast", Endpoint("ws://127.0.0.1:1/ws"), clients=2, slow=1)
    assert LoadSpec.from_json(spec.to_json()).slow == 1
    cfg = config_from_env({})
    assert (cfg.slow_room, cfg.slow_broadcasts) == (1000, 1000)
    assert config_from_env({"BENCH_SLOW_ROOM": "0"}).slow_room == 0
    with pytest.raises(BenchConfigError, match="BENCH_SLOW_ROOM"):
        config_from_env({"BENCH_SLOW_ROOM": "-1"})
