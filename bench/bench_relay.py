"""Relay benchmark (issue 5): bare aiohttp echo / broadcast / idle servers measured in this run
as the baselines, then our relay (each mode named in `relaylib.targets.BENCH_COMMANDS`) with
its figures as ratios against them, plus the slow-client room (p99 with a member that never
reads ÷ p99 without it, through the embedded relay). Server CPU per message comes from /proc, the
load generator runs in its own process; settings come from BENCH_* variables (README-relay.md)."""

from __future__ import annotations

import math
import platform
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from relaylib import (
    BenchError,
    BenchPlan,
    BroadcastResult,
    EchoResult,
    IdleResult,
    Target,
    baseline_target,
    bench_main,
    module_targets,
    run_broadcast,
    run_echo,
    run_idle,
)
from relaylib.config import BenchConfig, config_from_env
from relaylib.loadgen import loop_factory

NOFILE_MARGIN = 256


@dataclass(frozen=True)
class Goal:
    """One of ARCHITECTURE.md's performance targets: a ratio (or value) must stay ≤ or ≥ limit."""

    limit: float
    at_most: bool

    def verdict(self, value: float) -> str:
        if math.isnan(value):
            return "n/a"
        ok = value <= self.limit if self.at_most else value >= self.limit
        sign = "≤" if self.at_most else "≥"
        return f"{'ok' if ok else 'MISS'} ({sign}{self.limit:g})"


# Per relay mode: msgs/s ratio, µs/msg ratio, p99 ratio (echo); broadcast deliveries/s ratio;
# absolute idle KiB per connection.
ECHO_GOALS: dict[str, dict[str, Goal]] = {
    "relay-embedded": {
        "rate": Goal(0.85, at_most=False),
        "cpu": Goal(1.3, at_most=True),
        "p99": Goal(2.0, at_most=True),
    },
    "relay-split": {"cpu": Goal(2.0, at_most=True)},
}
BROADCAST_GOAL = Goal(0.9, at_most=False)
IDLE_GOAL_KIB = Goal(16.0, at_most=True)
SLOW_GOAL = Goal(1.5, at_most=True)
# The slow-client room is measured through this mode only (issue 5: "the embedded coordinator").
SLOW_TARGET = "relay-embedded"
# Few broadcasts in flight: each latency is then about one fan-out to the whole room, so a member
# that held the room up would show in it instead of hiding behind the generator's own queue.
SLOW_WINDOW = 4


def _ratio(value: float, base: float) -> float:
    return value / base if base and not math.isnan(base) else math.nan


def _verdicts(goals: dict[str, Goal], values: dict[str, float]) -> str:
    return "  ".join(f"{k} {goals[k].verdict(values[k])}" for k in goals)


def echo_row(r: EchoResult, base: EchoResult) -> str:
    rate = _ratio(r.msgs_per_s, base.msgs_per_s)
    cpu = _ratio(r.cpu_us_per_msg, base.cpu_us_per_msg)
    p99 = _ratio(r.p99_ms, base.p99_ms)
    goals = ECHO_GOALS.get(r.target, {})
    return (
        f"{r.target:<16}{r.clients:>8}{r.messages:>9}{r.msgs_per_s:>10.0f}{rate:>6.2f}"
        f"{r.cpu_us_per_msg:>9.1f}{cpu:>6.2f}{r.p50_ms:>8.2f}{r.p99_ms:>8.2f}{p99:>6.2f}  "
        + _verdicts(goals, {"rate": rate, "cpu": cpu, "p99": p99})
    )


ECHO_HEADER = (
    f"{'target':<16}{'clients':>8}{'msgs':>9}{'msgs/s':>10}{'x':>6}"
    f"{'µs/msg':>9}{'x':>6}{'p50 ms':>8}{'p99 ms':>8}{'x':>6}"
)


def broadcast_row(r: BroadcastResult, base: BroadcastResult) -> str:
    rate = _ratio(r.deliveries_per_s, base.deliveries_per_s)
    cpu = _ratio(r.cpu_us_per_delivery, base.cpu_us_per_delivery)
    verdict = "" if r.target.startswith("bare-") else BROADCAST_GOAL.verdict(rate)
    return (
        f"{r.target:<16}{r.receivers:>8}{r.deliveries:>12}{r.deliveries_per_s:>12.0f}{rate:>6.2f}"
        f"{r.cpu_us_per_delivery:>9.2f}{cpu:>6.2f}{r.p99_ms:>8.2f}  {verdict}"
    )


BROADCAST_HEADER = (
    f"{'target':<16}{'members':>8}{'deliveries':>12}{'deliv/s':>12}{'x':>6}"
    f"{'µs/deliv':>9}{'x':>6}{'p99 ms':>8}"
)


def idle_row(r: IdleResult, base: IdleResult) -> str:
    kib = r.kib_per_connection
    verdict = "" if r.target.startswith("bare-") else IDLE_GOAL_KIB.verdict(kib)
    return (
        f"{r.target:<16}{r.connections:>8}{r.rss_before_kib:>12}{r.rss_after_kib:>12}"
        f"{kib:>10.1f}{_ratio(kib, base.kib_per_connection):>6.2f}  {verdict}"
    )


def slow_fate(r: BroadcastResult) -> str:
    """What became of the members that never read, in words."""
    if not r.slow:
        return ""
    if r.slow_closed:
        codes = ",".join(str(c) for c in r.slow_close_codes) or "no code"
        return f"slow member closed by the server ({codes}); {r.slow_frames} frames reached it"
    return f"slow member still open; {r.slow_frames} frames reached it (its queue never filled)"


def slow_row(r: BroadcastResult, base: BroadcastResult) -> str:
    ratio = _ratio(r.p99_ms, base.p99_ms)
    verdict = SLOW_GOAL.verdict(ratio) if r.slow else ""
    return (
        f"{r.target:<16}{r.receivers:>8}{r.slow:>6}{r.deliveries:>12}{r.deliveries_per_s:>10.0f}"
        f"{r.p99_ms:>9.1f}{ratio:>6.2f}  {verdict}"
    ).rstrip() + (f"\n{'':<16}{slow_fate(r)}" if r.slow else "")


SLOW_HEADER = (
    f"{'target':<16}{'members':>8}{'slow':>6}{'deliveries':>12}{'deliv/s':>10}{'p99 ms':>9}{'x':>6}"
)


IDLE_HEADER = f"{'target':<16}{'conns':>8}{'RSS0 KiB':>12}{'RSS1 KiB':>12}{'KiB/conn':>10}{'x':>6}"


async def _guarded(name: str, fn: Callable[[], Awaitable[None]]) -> None:
    """Run one relay measurement; a relay failure is reported, the rest of the run goes on."""
    try:
        await fn()
    except BenchError as exc:
        print(f"{name:<16}failed: {exc}", flush=True)


async def run(cfg: BenchConfig) -> int:
    relays, why_not = module_targets()
    loop_name, _ = loop_factory()
    print(
        f"relay benchmark: {platform.python_implementation()} {platform.python_version()}, "
        f"server loop asyncio, load generator loop {loop_name}; "
        f"{cfg.echo_messages} msgs/echo run, ≤{cfg.seconds:g} s per span",
        flush=True,
    )

    print("\necho: closed loop, ~100-byte JSON; x = ratio to bare-echo at the same client count")
    print(ECHO_HEADER, flush=True)
    echo_base: dict[int, EchoResult] = {}
    for clients in cfg.clients:
        echo_base[clients] = await run_echo(
            baseline_target("echo"), clients, cfg.echo_messages, cfg.seconds
        )
        print(echo_row(echo_base[clients], echo_base[clients]).rstrip(), flush=True)
    for relay in relays:
        for clients in cfg.clients:
            await _guarded(relay.name, _echo_job(relay, clients, cfg, echo_base[clients]))

    print(f"\nbroadcast: one sender, {cfg.room} receivers; x = ratio to bare-broadcast")
    print(BROADCAST_HEADER, flush=True)
    bcast_base = await run_broadcast(
        baseline_target("broadcast"), cfg.room, cfg.broadcasts, cfg.seconds
    )
    print(broadcast_row(bcast_base, bcast_base).rstrip(), flush=True)
    for relay in relays:
        await _guarded(relay.name, _broadcast_job(relay, cfg, bcast_base))

    slow_relay = next((r for r in relays if r.name == SLOW_TARGET), None)
    if cfg.slow_room and slow_relay is not None:
        print(
            f"\nslow client: {cfg.slow_room}-member room, four broadcasts in flight, with and "
            "without one more member that never reads; x = p99 ratio to the run without it"
        )
        print(SLOW_HEADER, flush=True)
        await _guarded(SLOW_TARGET, _slow_job(slow_relay, cfg))

    print(f"\nidle: RSS after {cfg.idle_conns} idle WebSockets minus before, per connection")
    print(IDLE_HEADER, flush=True)
    idle_base = await run_idle(baseline_target("idle"), cfg.idle_conns)
    print(idle_row(idle_base, idle_base).rstrip(), flush=True)
    for relay in relays:
        await _guarded(relay.name, _idle_job(relay, cfg, idle_base))

    if not relays:
        print(f"\nrelay: not built yet ({why_not}); baseline figures only")
    return 0


def _echo_job(
    relay: Target, clients: int, cfg: BenchConfig, base: EchoResult
) -> Callable[[], Awaitable[None]]:
    async def job() -> None:
        r = await run_echo(relay, clients, cfg.echo_messages, cfg.seconds)
        print(echo_row(r, base).rstrip(), flush=True)

    return job


def _broadcast_job(
    relay: Target, cfg: BenchConfig, base: BroadcastResult
) -> Callable[[], Awaitable[None]]:
    async def job() -> None:
        r = await run_broadcast(relay, cfg.room, cfg.broadcasts, cfg.seconds)
        print(broadcast_row(r, base).rstrip(), flush=True)

    return job


def _slow_job(relay: Target, cfg: BenchConfig) -> Callable[[], Awaitable[None]]:
    async def job() -> None:
        runs = []
        for slow in (0, 1):
            runs.append(
                await run_broadcast(
                    relay,
                    cfg.slow_room,
                    cfg.slow_broadcasts,
                    cfg.seconds,
                    slow=slow,
                    window=SLOW_WINDOW,
                )
            )
            print(slow_row(runs[-1], runs[0]), flush=True)

    return job


def _idle_job(relay: Target, cfg: BenchConfig, base: IdleResult) -> Callable[[], Awaitable[None]]:
    async def job() -> None:
        r = await run_idle(relay, cfg.idle_conns)
        print(idle_row(r, base).rstrip(), flush=True)

    return job


def _plan() -> BenchPlan:
    cfg = config_from_env()
    # Children inherit the raised limit; each also raises its own on start.
    files = max(cfg.idle_conns, *cfg.clients, cfg.room + 1, cfg.slow_room + 2) + NOFILE_MARGIN
    return BenchPlan(files, "BENCH_IDLE_CONNS/BENCH_CLIENTS", lambda: run(cfg))


def main() -> int:
    return bench_main("bench_relay", _plan)


if __name__ == "__main__":
    sys.exit(main())
