"""Tests of the relay benchmark harness itself (bench/relaylib): the load generator counts what it
claims against real bare aiohttp servers, /proc CPU and memory accounting reads the right fields,
bad settings and broken servers give typed errors, and a relay plugs in through BENCH_COMMANDS.
Small counts only; nothing here asserts a duration."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH_DIR))

from relaylib import (  # noqa: E402
    BenchConfigError,
    LoadGenError,
    ProcessGoneError,
    ServerStartError,
    baseline_target,
    module_targets,
    run_broadcast,
    run_echo,
    run_idle,
    start_command,
)
from relaylib.config import config_from_env  # noqa: E402
from relaylib.harness import measure  # noqa: E402
from relaylib.procstat import (  # noqa: E402
    CLOCK_TICKS_PER_SECOND,
    parse_stat,
    parse_vmrss_kib,
    read_cpu,
    read_rss_kib,
)
from relaylib.protocol import (  # noqa: E402
    Endpoint,
    LoadSpec,
    make_message,
    message_ids,
    parse_ready_line,
    percentile,
)

# ---------------------------------------------------------------- load generator vs real servers


async def test_echo_load_counts_every_message_of_every_client() -> None:
    server = await baseline_target("echo").start()
    try:
        spec = LoadSpec("echo", server.endpoint("echo"), clients=5, messages=50, seconds=60)
        result = await measure(server, spec)
    finally:
        await server.stop()
    assert result.load["messages"] == 5 * 50
    assert 0 < result.load["p50_s"] <= result.load["p99_s"]
    assert result.server_cpu_s >= 0


async def test_run_echo_reports_rate_and_cpu_per_message() -> None:
    result = await run_echo(baseline_target("echo"), clients=4, messages=200, seconds=60)
    assert result.messages == 200
    assert result.msgs_per_s > 0
    assert result.cpu_us_per_msg >= 0
    assert result.p50_ms <= result.p99_ms


async def test_echo_load_fails_clearly_when_the_server_never_answers() -> None:
    # The idle server accepts and holds but never echoes: the generator must not count that.
    server = await baseline_target("idle").start()
    try:
        spec = LoadSpec(
            "echo", server.endpoint("idle"), clients=2, messages=5, seconds=30, reply_timeout_s=0.5
        )
        with pytest.raises(LoadGenError, match=r"no frame in 0\.5 s"):
            await measure(server, spec)
    finally:
        await server.stop()


async def test_broadcast_delivers_every_message_to_every_receiver() -> None:
    result = await run_broadcast(baseline_target("broadcast"), receivers=5, messages=20, seconds=60)
    assert result.deliveries == 5 * 20
    assert result.deliveries_per_s > 0


async def test_idle_memory_per_connection_is_positive_and_sane() -> None:
    result = await run_idle(baseline_target("idle"), 300)
    assert result.rss_after_kib > result.rss_before_kib
    assert 0 < result.kib_per_connection < 256


async def test_a_server_serves_only_its_own_workload() -> None:
    server = await baseline_target("echo").start()
    try:
        with pytest.raises(Exception, match="not the 'idle' workload"):
            server.endpoint("idle")
    finally:
        await server.stop()
    assert server.process.returncode is not None


# ---------------------------------------------------------------- /proc accounting


async def test_cpu_accounting_matches_what_the_child_measured_itself() -> None:
    burn = textwrap.dedent(
        """
        import sys, time
        deadline = time.monotonic() + 30
        while time.process_time() < 0.3 and time.monotonic() < deadline:
            sum(i * i for i in range(10_000))
        print(time.process_time(), flush=True)
        sys.stdin.read()
        """
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        burn,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        own = float(await asyncio.wait_for(child.stdout.readline(), 60))
        ours = read_cpu(child.pid).total_s
        rss = read_rss_kib(child.pid)
    finally:
        child.stdin.close()
        await asyncio.wait_for(child.wait(), 30)
    assert own >= 0.3
    # Same clock read two ways; ticks round down, and the child ran a little after printing.
    assert abs(ours - own) <= 3 / CLOCK_TICKS_PER_SECOND + 0.02
    assert 1024 < rss < 1024 * 1024


async def test_reading_a_process_that_is_gone_is_a_typed_error() -> None:
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await asyncio.wait_for(child.wait(), 30)
    with pytest.raises(ProcessGoneError, match=str(child.pid)):
        read_cpu(child.pid)
    with pytest.raises(ProcessGoneError):
        read_rss_kib(child.pid)


def test_stat_parser_survives_spaces_and_parentheses_in_the_command_name() -> None:
    fields = "S 1 2 3 4 5 6 7 8 9 10 250 50 7 7 20 0 1 0 100 2000 300"
    times = parse_stat(f"4242 (we ird) (name)) {fields}\n")
    assert times.user_s == pytest.approx(250 / CLOCK_TICKS_PER_SECOND)
    assert times.system_s == pytest.approx(50 / CLOCK_TICKS_PER_SECOND)
    assert times.total_s == pytest.approx(300 / CLOCK_TICKS_PER_SECOND)


@pytest.mark.parametrize("text", ["", "garbage", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 a b"])
def test_stat_parser_rejects_what_is_not_a_stat_line(text: str) -> None:
    with pytest.raises(ValueError, match="stat line"):
        parse_stat(text)


def test_vmrss_parser_reads_kib_and_flags_a_zombie() -> None:
    assert parse_vmrss_kib("Name:\tpython\nVmRSS:\t   12345 kB\nThreads:\t1\n") == 12345
    with pytest.raises(ProcessGoneError):
        parse_vmrss_kib("Name:\tpython\nState:\tZ (zombie)\n")
    with pytest.raises(ValueError, match="malformed VmRSS"):
        parse_vmrss_kib("VmRSS:\tlots kB\n")


# ---------------------------------------------------------------- settings and bad input


def test_defaults_are_the_issue_figures() -> None:
    cfg = config_from_env({})
    assert cfg.clients == (100, 1000)
    assert cfg.idle_conns == 2000
    assert config_from_env({"BENCH_CLIENTS": " 10, 20 ", "BENCH_IDLE_CONNS": "10_000"}).clients == (
        10,
        20,
    )
    assert config_from_env({"BENCH_IDLE_CONNS": "10_000"}).idle_conns == 10_000


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BENCH_CLIENTS", "100,abc", "not a whole number"),
        ("BENCH_CLIENTS", "0", "out of range"),
        ("BENCH_CLIENTS", "100,,1000", "empty entry"),
        ("BENCH_IDLE_CONNS", "-5", "out of range"),
        ("BENCH_IDLE_CONNS", "many", "not a whole number"),
        ("BENCH_SECONDS", "fast", "not a number"),
        ("BENCH_SECONDS", "0", "out of range"),
        ("BENCH_ROOM", "0", "out of range"),
    ],
)
def test_bad_settings_are_named_in_a_typed_error(name: str, value: str, message: str) -> None:
    with pytest.raises(BenchConfigError, match=message) as caught:
        config_from_env({name: value})
    assert name in str(caught.value)


def test_a_load_spec_survives_its_json_round_trip_and_rejects_nonsense() -> None:
    server_url = "ws://127.0.0.1:1/ws/{client}"
    spec = LoadSpec.from_json(
        LoadSpec("echo", parse_endpoint(server_url), clients=3, messages=7).to_json()
    )
    assert (spec.mode, spec.clients, spec.messages) == ("echo", 3, 7)
    assert spec.endpoint.url_for(2) == "ws://127.0.0.1:1/ws/2"
    with pytest.raises(BenchConfigError, match="load mode"):
        LoadSpec("flood", spec.endpoint, clients=1)
    with pytest.raises(BenchConfigError, match="clients must be >= 1"):
        LoadSpec("echo", spec.endpoint, clients=0)
    with pytest.raises(BenchConfigError, match="malformed load spec"):
        LoadSpec.from_json('{"mode": "echo"}')


def parse_endpoint(url: str) -> Endpoint:
    line = json.dumps({"bench_ready": 1, "endpoints": {"echo": {"url": url}}})
    return parse_ready_line(line).endpoints["echo"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("listening on 8080", "expected a JSON ready line"),
        ('{"bench_ready":1,"endpoints":{}}', "names no endpoints"),
        ('{"bench_ready":1,"endpoints":{"echo":{"url":"ws://10.0.0.1:80/ws"}}}', "loopback"),
        (
            '{"bench_ready":1,"endpoints":{"chat":{"url":"ws://127.0.0.1:80/ws"}}}',
            "unknown workload",
        ),
        ('{"bench_ready":1,"endpoints":{"echo":{"url":"ws://127.0.0.1:1/","hello":[1]}}}', "hello"),
        ('{"bench_ready":1,"endpoints":{"echo":{"url":"ws://127.0.0.1:1/"}},"pids":[-1]}', "pids"),
    ],
)
def test_a_bad_ready_line_is_refused_with_the_reason(line: str, message: str) -> None:
    with pytest.raises(ServerStartError, match=message):
        parse_ready_line(line)


async def test_a_server_that_prints_something_else_is_a_start_error() -> None:
    with pytest.raises(ServerStartError, match="hello there"):
        await start_command("chatty", [sys.executable, "-c", "print('hello there')"])


async def test_a_server_that_dies_before_ready_reports_its_stderr() -> None:
    with pytest.raises(ServerStartError, match=r"exited with 1 .*boom"):
        await start_command("crash", [sys.executable, "-c", "import sys; sys.exit('boom')"])


def test_bench_messages_are_about_100_bytes_and_carry_their_ids() -> None:
    text = make_message(123, 4567)
    assert len(text.encode()) == 100
    assert message_ids(text) == (123, 4567)
    assert message_ids('{"action":"auth","status":true}') is None
    assert message_ids("not json") is None


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) == 0.0


# ---------------------------------------------------------------- plugging in a relay

# A stand-in relay: auth-first like the client WS of ARCHITECTURE.md, then a plain echo.
FAKE_RELAY = """
import asyncio, json, sys
from aiohttp import web, WSMsgType
from relaylib.protocol import Endpoint, ready_line

async def handler(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    first = await ws.receive(timeout=10)
    frame = json.loads(first.data)
    if frame != {"action": "auth", "token": "t" + request.match_info["room"]}:
        await ws.close(code=4001)
        return ws
    await ws.send_str(json.dumps({"action": "auth", "status": True}))
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            await ws.send_str(msg.data)
    return ws

async def main():
    app = web.Application()
    app.router.add_get("/ws/{room}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    hello = ('{"action":"auth","token":"t{client}"}',)
    print(ready_line({"echo": Endpoint(f"ws://127.0.0.1:{port}/ws/{{client}}", hello)}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()

asyncio.run(main())
"""


def test_no_relay_module_means_not_built_yet() -> None:
    targets, why = module_targets("relaylib_no_such_relay")
    assert targets == []
    assert why == "relaylib_no_such_relay does not exist"
    targets, why = module_targets("relaylib.errors")
    assert targets == []
    assert why == "relaylib.errors has no BENCH_COMMANDS"


async def test_a_relay_plugs_in_through_bench_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_script = tmp_path / "fake_relay_server.py"
    server_script.write_text(FAKE_RELAY)
    (tmp_path / "fake_relay.py").write_text(
        f"import sys\nBENCH_COMMANDS = {{'embedded': [sys.executable, {str(server_script)!r}]}}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    targets, why = module_targets("fake_relay")
    assert why is None
    assert [t.name for t in targets] == ["relay-embedded"]
    # The auth reply is not an echo: the generator must skip it and still count exactly.
    result = await run_echo(targets[0], clients=3, messages=30, seconds=60)
    assert result.target == "relay-embedded"
    assert result.messages == 30
