"""Command line of the coordinator (placeholder until the rendezvous issue lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("burnstand-coordinator: not built yet", file=sys.stderr)
    return 2
