"""Measurement harness for the relay benchmarks (issue 5): bare aiohttp baseline servers, a
closed-loop WebSocket load generator in its own process, and server CPU / memory accounting from
/proc. `bench/bench_relay.py` runs it; our relay plugs in as one more `Target`."""

from __future__ import annotations

from .errors import (
    BenchConfigError,
    BenchError,
    LoadGenError,
    ProcessGoneError,
    ServerStartError,
)
from .harness import (
    BenchPlan,
    BroadcastResult,
    EchoResult,
    IdleResult,
    ServerProcess,
    Target,
    baseline_target,
    bench_main,
    command_target,
    module_targets,
    run_broadcast,
    run_echo,
    run_idle,
    start_command,
)

__all__ = [
    "BenchConfigError",
    "BenchError",
    "BenchPlan",
    "BroadcastResult",
    "EchoResult",
    "IdleResult",
    "LoadGenError",
    "ProcessGoneError",
    "ServerProcess",
    "ServerStartError",
    "Target",
    "baseline_target",
    "bench_main",
    "command_target",
    "module_targets",
    "run_broadcast",
    "run_echo",
    "run_idle",
    "start_command",
]
