"""Starting servers under test, driving the load generator against them, and turning /proc
readings into figures. A `Target` is anything that can start a server process speaking the ready
line of protocol.py: the bare aiohttp baselines here, and later our relay, which plugs in by naming
its start commands in `relaylib.targets.BENCH_COMMANDS` (see `module_targets`)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import BenchConfigError, BenchError, LoadGenError, ServerStartError
from .procstat import CpuTimes, raise_nofile_limit, read_cpu, read_rss_kib
from .protocol import Endpoint, LoadSpec, parse_ready_line

BENCH_DIR = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
LINE_LIMIT = 1 << 20


def child_env() -> dict[str, str]:
    """Our environment with bench/ on PYTHONPATH, so `-m relaylib.…` works from any cwd."""
    env = dict(os.environ)
    parts = [str(BENCH_DIR), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def _tail(log: IO[bytes], limit: int = 2000) -> str:
    log.flush()
    log.seek(0)
    text = log.read().decode(errors="replace").strip()
    return text[-limit:] if text else "(no stderr)"


@dataclass(frozen=True)
class Sample:
    """CPU and memory of a server (all of its processes) at one instant."""

    cpu: CpuTimes
    rss_kib: int


class ServerProcess:
    """A running server under test: its process, the helper pids it reported, its endpoints."""

    def __init__(
        self,
        name: str,
        process: asyncio.subprocess.Process,
        endpoints: Mapping[str, Endpoint],
        extra_pids: Sequence[int],
        stderr_log: IO[bytes],
    ) -> None:
        self.name = name
        self.process = process
        self.endpoints = dict(endpoints)
        self.pids = (process.pid, *extra_pids)
        self._stderr_log = stderr_log
        self._drain = asyncio.create_task(self._drain_stdout())

    async def _drain_stdout(self) -> None:
        # A chatty server must not block on a full pipe while we measure it.
        stdout = self.process.stdout
        if stdout is None:
            return
        for _ in range(10_000_000):
            if not await stdout.read(65536):
                return

    def endpoint(self, workload: str) -> Endpoint:
        try:
            return self.endpoints[workload]
        except KeyError:
            raise BenchError(
                f"{self.name} serves {sorted(self.endpoints)}, not the {workload!r} workload"
            ) from None

    def sample(self) -> Sample:
        cpu = CpuTimes(0.0, 0.0)
        rss = 0
        for pid in self.pids:
            cpu = cpu + read_cpu(pid)
            rss += read_rss_kib(pid)
        return Sample(cpu, rss)

    def stderr_tail(self) -> str:
        return _tail(self._stderr_log)

    async def stop(self) -> None:
        """SIGTERM (and closing stdin), then SIGKILL if it has not exited in time."""
        if self.process.returncode is None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        self._drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._drain
        self._stderr_log.close()


@dataclass(frozen=True)
class Target:
    """A named way to start a server under test; `start` returns once it is listening."""

    name: str
    start: Callable[[], Awaitable[ServerProcess]]


async def start_command(
    name: str, argv: Sequence[str], ready_within_s: float = START_TIMEOUT_S
) -> ServerProcess:
    """Run `argv` and wait for its ready line; any other outcome is a ServerStartError."""
    # Not a `with`: the log lives as long as the server (ServerProcess.stop closes it).
    log = tempfile.TemporaryFile()  # noqa: SIM115
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=child_env(),
            limit=LINE_LIMIT,
        )
    except OSError as exc:
        log.close()
        raise ServerStartError(f"{name}: cannot run {argv[0]!r}: {exc}") from exc
    assert process.stdout is not None
    try:
        try:
            line = await asyncio.wait_for(process.stdout.readline(), ready_within_s)
        except TimeoutError:
            raise ServerStartError(f"{name}: no ready line within {ready_within_s:.0f} s") from None
        if not line:
            await _exited_early(name, process, log)
        ready = parse_ready_line(line.decode(errors="replace").strip())
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        log.close()
        raise
    return ServerProcess(name, process, ready.endpoints, ready.extra_pids, log)


async def _exited_early(name: str, process: asyncio.subprocess.Process, log: IO[bytes]) -> None:
    await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    raise ServerStartError(
        f"{name}: exited with {process.returncode} before it was ready: {_tail(log)}"
    )


def command_target(name: str, argv: Sequence[str]) -> Target:
    frozen = tuple(argv)

    async def start() -> ServerProcess:
        return await start_command(name, frozen)

    return Target(name, start)


def baseline_target(kind: str) -> Target:
    """One of the bare aiohttp servers of servers.py, in its own process."""
    return command_target(f"bare-{kind}", [sys.executable, "-m", "relaylib.servers", kind])


def module_targets(
    module: str = "relaylib.targets", attribute: str = "BENCH_COMMANDS"
) -> tuple[list[Target], str | None]:
    """Targets named by `module.attribute` (mode → argv), or none and the reason why.

    Only the module itself being absent counts as "not built yet"; an import error inside it is a
    real failure and is raised.
    """
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module == missing or module.startswith(missing + "."):
            return [], f"{module} does not exist"
        raise
    commands = getattr(mod, attribute, None)
    if commands is None:
        return [], f"{module} has no {attribute}"
    if not isinstance(commands, Mapping) or not all(
        isinstance(argv, Sequence) and argv and all(isinstance(a, str) for a in argv)
        for argv in commands.values()
    ):
        raise BenchError(f"{module}.{attribute} must map a mode name to an argv list of strings")
    return [command_target(f"relay-{mode}", list(argv)) for mode, argv in commands.items()], None


# ---------------------------------------------------------------- load generator


class LoadGenProcess:
    """The load generator child and its line protocol."""

    def __init__(self, process: asyncio.subprocess.Process, log: IO[bytes]) -> None:
        self.process = process
        self.log = log

    @classmethod
    async def start(cls, spec: LoadSpec) -> LoadGenProcess:
        return await cls.spawn("relaylib.loadgen", spec.to_json())

    @classmethod
    async def spawn(cls, module: str, spec_json: str) -> LoadGenProcess:
        """Run generator `module` (one speaking the READY/GO/DONE/CLOSE lines) with its spec."""
        # Not a `with`: the log lives as long as the generator (finish() closes it).
        log = tempfile.TemporaryFile()  # noqa: SIM115
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            spec_json,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=child_env(),
            limit=LINE_LIMIT,
        )
        return cls(process, log)

    async def expect(self, word: str, within_s: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), within_s)
        except TimeoutError:
            raise LoadGenError(f"load generator sent no {word} within {within_s:.0f} s") from None
        text = line.decode(errors="replace").strip()
        got, _, body = text.partition(" ")
        if got == word:
            parsed: dict[str, Any] = json.loads(body)
            return parsed
        if got == "ERROR":
            raise LoadGenError(f"load generator: {json.loads(body).get('message')}")
        raise LoadGenError(
            f"load generator sent {text[:200]!r} instead of {word}; stderr: {_tail(self.log)}"
        )

    def send(self, word: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(word.encode() + b"\n")

    async def finish(self) -> None:
        try:
            if self.process.returncode is None:
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    self.send("CLOSE")
                    assert self.process.stdin is not None
                    await self.process.stdin.drain()
                    self.process.stdin.close()
                try:
                    await asyncio.wait_for(self.process.wait(), 30.0)
                except TimeoutError:
                    self.process.kill()
                    await self.process.wait()
        finally:
            self.log.close()


@dataclass(frozen=True)
class Measured:
    """What the load generator reported plus the server's CPU and memory around the GO…DONE span."""

    load: dict[str, Any]
    before: Sample
    after: Sample

    @property
    def server_cpu_s(self) -> float:
        return self.after.cpu.total_s - self.before.cpu.total_s

    def number(self, key: str) -> float:
        """A figure the load generator reported; a missing or non-numeric one is its bug."""
        value = self.load.get(key)
        if not isinstance(value, int | float):
            raise LoadGenError(f"load generator reported {key}={value!r}, expected a number")
        return float(value)


async def measure(server: ServerProcess, spec: LoadSpec) -> Measured:
    """One load-generator run against a started server, sampling the server around it."""
    gen = await LoadGenProcess.start(spec)
    try:
        await gen.expect("READY", START_TIMEOUT_S + spec.clients / 50)
        before = server.sample()
        gen.send("GO")
        load = await gen.expect("DONE", spec.seconds + START_TIMEOUT_S + spec.clients / 50)
        after = server.sample()
    except BenchError as exc:
        if server.process.returncode is not None:
            raise BenchError(f"{server.name} died: {server.stderr_tail()}") from exc
        raise
    finally:
        await gen.finish()
    return Measured(load, before, after)


# ---------------------------------------------------------------- workloads


@dataclass(frozen=True)
class EchoResult:
    target: str
    clients: int
    messages: int
    msgs_per_s: float
    cpu_us_per_msg: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class BroadcastResult:
    target: str
    receivers: int
    deliveries: int
    deliveries_per_s: float
    cpu_us_per_delivery: float
    p99_ms: float
    slow: int = 0
    """Members that joined and never read (not counted in deliveries or latency)."""
    slow_closed: int = 0
    """How many of them the server closed by the end of the run."""
    slow_close_codes: tuple[int, ...] = ()
    slow_frames: int = 0
    """Frames that had reached the slow members when they finally read."""


@dataclass(frozen=True)
class IdleResult:
    target: str
    connections: int
    rss_before_kib: int
    rss_after_kib: int

    @property
    def kib_per_connection(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / self.connections


def _per(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


async def run_echo(target: Target, clients: int, messages: int, seconds: float) -> EchoResult:
    """`messages` in total, split evenly over `clients` closed-loop clients, at most `seconds`."""
    per_client = max(1, math.ceil(messages / clients))
    server = await target.start()
    try:
        spec = LoadSpec("echo", server.endpoint("echo"), clients, per_client, seconds)
        m = await measure(server, spec)
    finally:
        await server.stop()
    count = int(m.number("messages"))
    return EchoResult(
        target.name,
        clients,
        count,
        _per(count, m.number("elapsed_s")),
        _per(m.server_cpu_s * 1e6, count),
        m.number("p50_s") * 1e3,
        m.number("p99_s") * 1e3,
    )


async def run_broadcast(
    target: Target,
    receivers: int,
    messages: int,
    seconds: float,
    *,
    slow: int = 0,
    window: int = 16,
) -> BroadcastResult:
    """One sender (at most `window` broadcasts in flight), `receivers` counted members, and
    `slow` members that never read."""
    server = await target.start()
    try:
        spec = LoadSpec(
            "broadcast",
            server.endpoint("broadcast"),
            receivers,
            messages,
            seconds,
            window=window,
            slow=slow,
        )
        m = await measure(server, spec)
    finally:
        await server.stop()
    deliveries = int(m.number("deliveries"))
    codes = m.load.get("slow_close_codes", [])
    return BroadcastResult(
        target.name,
        receivers,
        deliveries,
        _per(deliveries, m.number("elapsed_s")),
        _per(m.server_cpu_s * 1e6, deliveries),
        m.number("p99_s") * 1e3,
        slow=slow,
        slow_closed=int(m.number("slow_closed")),
        slow_close_codes=tuple(int(c) for c in codes if isinstance(c, int)),
        slow_frames=int(m.number("slow_frames")),
    )


async def run_idle(target: Target, connections: int, seconds: float = 120.0) -> IdleResult:
    server = await target.start()
    try:
        spec = LoadSpec("idle", server.endpoint("idle"), connections, 0, seconds)
        m = await measure(server, spec)
    finally:
        await server.stop()
    if int(m.number("connected")) != connections:
        raise LoadGenError(f"opened {m.load['connected']} of {connections} idle connections")
    return IdleResult(target.name, connections, m.before.rss_kib, m.after.rss_kib)


@dataclass(frozen=True, slots=True)
class BenchPlan:
    """What a benchmark script needs before it starts anything: how many open files each of its
    processes may hold, the settings that decide that (named when the limit is too low), and
    the run itself."""

    files: int
    knobs: str
    run: Callable[[], Coroutine[Any, Any, int]]


def bench_main(name: str, plan: Callable[[], BenchPlan]) -> int:
    """The `main` of a benchmark script: settings errors exit 2, measurement errors 1, both with
    one line on stderr; the limit on open files is raised first (children inherit it)."""
    started = time.monotonic()
    try:
        p = plan()
        got = raise_nofile_limit(p.files)
        if got < p.files:
            print(
                f"{name}: need {p.files} open files per process, RLIMIT_NOFILE allows {got}; "
                f"lower {p.knobs} or raise `ulimit -Hn`",
                file=sys.stderr,
            )
            return 2
        rc = asyncio.run(p.run())
    except BenchConfigError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    except BenchError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    print(f"\n(full run {time.monotonic() - started:.0f} s)")
    return rc
