"""The balancer: client WebSockets at `/ws/<session>`, routed to the session's master.

`BENCH_COMMANDS` plugs the relay into `bench/bench_relay.py` (see bench/README-relay.md).
"""

from __future__ import annotations

import sys

from coordinator.balancer.auth import AuthRefused, Grant, authorize
from coordinator.balancer.balancer import Balancer, ClientConn, EmbeddedRoute
from coordinator.balancer.host import HostLink, MasterHost

BENCH_COMMANDS: dict[str, list[str]] = {
    "embedded": [sys.executable, "-m", "coordinator.balancer.benchserve", "--mode", "embedded"],
    "split": [sys.executable, "-m", "coordinator.balancer.benchserve", "--mode", "split"],
}

__all__ = [
    "BENCH_COMMANDS",
    "AuthRefused",
    "Balancer",
    "ClientConn",
    "EmbeddedRoute",
    "Grant",
    "HostLink",
    "MasterHost",
    "authorize",
]
