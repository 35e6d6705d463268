"""Benchmark settings from BENCH_* environment variables, checked at the edge so a typo is one
clear error before any process starts. Defaults keep a full `bench_relay.py` run under three
minutes on two cores."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import BenchConfigError

MAX_CLIENTS = 10_000
MAX_IDLE_CONNS = 50_000


@dataclass(frozen=True)
class BenchConfig:
    clients: tuple[int, ...] = (100, 1000)
    """Echo runs, one per client count (BENCH_CLIENTS, e.g. "100,1000")."""
    echo_messages: int = 30_000
    """Messages per echo run, split evenly over its clients (BENCH_MESSAGES)."""
    seconds: float = 8.0
    """Upper bound on each measured span, whatever the count (BENCH_SECONDS)."""
    room: int = 100
    """Receivers in the broadcast room (BENCH_ROOM)."""
    broadcasts: int = 1_500
    """Messages the broadcast sender sends; deliveries = this x room (BENCH_BROADCASTS)."""
    idle_conns: int = 2_000
    """Idle connections for the memory figure (BENCH_IDLE_CONNS)."""
    slow_room: int = 1_000
    """Members of the slow-client room besides the slow one (BENCH_SLOW_ROOM; 0 skips it)."""
    slow_broadcasts: int = 1_000
    """Messages the sender sends in each slow-client run (BENCH_SLOW_BROADCASTS)."""


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        raise BenchConfigError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise BenchConfigError(f"{name}={value} is out of range; use {low}..{high}")
    return value


def _clients(env: Mapping[str, str]) -> tuple[int, ...]:
    raw = env.get("BENCH_CLIENTS")
    if raw is None or not raw.strip():
        return BenchConfig.clients
    counts: list[int] = []
    for part in raw.split(","):
        counts.append(_int({"BENCH_CLIENTS": part}, "BENCH_CLIENTS", -1, 1, MAX_CLIENTS))
    if any(c < 0 for c in counts):
        raise BenchConfigError(f"BENCH_CLIENTS={raw!r} has an empty entry; use e.g. '100,1000'")
    return tuple(counts)


def _seconds(env: Mapping[str, str]) -> float:
    raw = env.get("BENCH_SECONDS")
    if raw is None or not raw.strip():
        return BenchConfig.seconds
    try:
        value = float(raw)
    except ValueError:
        raise BenchConfigError(f"BENCH_SECONDS={raw!r} is not a number") from None
    if not 0.5 <= value <= 120:
        raise BenchConfigError(f"BENCH_SECONDS={value} is out of range; use 0.5..120")
    return value


def config_from_env(env: Mapping[str, str] | None = None) -> BenchConfig:
    env = os.environ if env is None else env
    return BenchConfig(
        clients=_clients(env),
        echo_messages=_int(env, "BENCH_MESSAGES", BenchConfig.echo_messages, 1, 10_000_000),
        seconds=_seconds(env),
        room=_int(env, "BENCH_ROOM", BenchConfig.room, 1, MAX_CLIENTS),
        broadcasts=_int(env, "BENCH_BROADCASTS", BenchConfig.broadcasts, 1, 10_000_000),
        idle_conns=_int(env, "BENCH_IDLE_CONNS", BenchConfig.idle_conns, 1, MAX_IDLE_CONNS),
        slow_room=_int(env, "BENCH_SLOW_ROOM", BenchConfig.slow_room, 0, MAX_CLIENTS),
        slow_broadcasts=_int(
            env, "BENCH_SLOW_BROADCASTS", BenchConfig.slow_broadcasts, 1, 10_000_000
        ),
    )


DEFAULT_IDLE_LINKS = 10_000
MAX_IDLE_LINKS = 50_000


def idle_links_from_env(env: Mapping[str, str] | None = None) -> int:
    """How many idle appliance links bench_links.py holds (BENCH_IDLE_LINKS)."""
    env = os.environ if env is None else env
    return _int(env, "BENCH_IDLE_LINKS", DEFAULT_IDLE_LINKS, 1, MAX_IDLE_LINKS)
