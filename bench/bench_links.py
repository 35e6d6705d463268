"""Idle appliance-link memory benchmark (issue 5: "10,000 idle appliance links: ≤ 24 KiB each").

Holds BENCH_IDLE_LINKS (default 10,000) idle links on a real coordinator (`coordinator.cli
serve`, fresh data directory, one enrolled appliance per link) and reports its VmRSS growth per
link, beside the bare aiohttp idle server's growth per plain WebSocket measured in the same run.
See README-relay.md ("Idle appliance links")."""

from __future__ import annotations

import platform
import sys

from relaylib import BenchPlan, IdleResult, baseline_target, bench_main, run_idle
from relaylib.config import idle_links_from_env
from relaylib.links import WARM_LINKS, LinksResult, run_links

NOFILE_MARGIN = 256
LINK_GOAL_KIB = 24.0


def verdict(kib_per_link: float, limit: float = LINK_GOAL_KIB) -> str:
    return f"{'ok' if kib_per_link <= limit else 'MISS'} (≤{limit:g} KiB)"


HEADER = f"{'target':<16}{'conns':>8}{'RSS0 KiB':>12}{'RSS1 KiB':>12}{'KiB/conn':>10}{'x':>6}"


def bare_row(r: IdleResult) -> str:
    return (
        f"{r.target:<16}{r.connections:>8}{r.rss_before_kib:>12}{r.rss_after_kib:>12}"
        f"{r.kib_per_connection:>10.1f}{1.0:>6.2f}"
    )


def links_row(r: LinksResult, base: IdleResult) -> str:
    ratio = r.kib_per_link / base.kib_per_connection if base.kib_per_connection else float("nan")
    return (
        f"{'coordinator-link':<16}{r.links:>8}{r.rss_before_kib:>12}{r.rss_after_kib:>12}"
        f"{r.kib_per_link:>10.1f}{ratio:>6.2f}  {verdict(r.kib_per_link)}"
    )


async def run(links: int) -> int:
    print(
        f"idle appliance links: {platform.python_implementation()} {platform.python_version()}; "
        f"{links} links to /link (token-merge handshake, hello, acks) on `coordinator.cli serve`;"
        f" x = ratio to bare-idle's plain WebSockets",
        flush=True,
    )
    print(HEADER, flush=True)
    base = await run_idle(baseline_target("idle"), links)
    print(bare_row(base), flush=True)
    result = await run_links(links)
    print(links_row(result, base), flush=True)
    print(f"({result.links} links connected and settled in {result.connect_s:.1f} s)")
    return 0


def _plan() -> BenchPlan:
    links = idle_links_from_env()
    # The coordinator and the generators are our children and inherit the raised limit.
    return BenchPlan(links + WARM_LINKS + NOFILE_MARGIN, "BENCH_IDLE_LINKS", lambda: run(links))


def main() -> int:
    return bench_main("bench_links", _plan)


if __name__ == "__main__":
    sys.exit(main())
