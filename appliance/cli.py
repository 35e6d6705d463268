"""Command line of the agent (placeholder until the burn-engine issue lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("burnstand-agent: not built yet", file=sys.stderr)
    return 2
