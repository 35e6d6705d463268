"""The relays `bench_relay.py` measures: mode name → the argv that starts it (README-relay.md).

The server under benchmark lives here in bench/, not in the product: `relayserve` composes the
coordinator's own balancer and master with a provisioned room.
"""

from __future__ import annotations

import sys

BENCH_COMMANDS: dict[str, list[str]] = {
    "embedded": [sys.executable, "-m", "relaylib.relayserve", "--mode", "embedded"],
    "split": [sys.executable, "-m", "relaylib.relayserve", "--mode", "split"],
}
