"""Benchmark of kiosks sharing an image at a venue: eight kiosks, each in its own network
namespace on one bridged LAN, the coordinator behind a 40 Mbit/s `tc` link, one 256 MiB take.
One kiosk serves damaged chunks (it does not fetch); the other seven fetch the take at once, first
with sharing on, then with sharing off (each downloads from the coordinator alone), in one run.

Figures: bytes the coordinator sent, as a multiple of the image (target <= 1.5x with sharing; 7x
without), and the time until all seven hold the verified image, sharing vs no sharing (target
<= 0.40x). Run as root: `python bench/bench_swarm.py`. BENCH_SWARM_KIOSKS (8), BENCH_SWARM_MIB
(256) and BENCH_SWARM_RATE (40mbit) change the venue; BENCH_DIR the work folder.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.system.swarmnet import Venue, make_image, netns_available

MiB = 1024 * 1024
KIOSKS = int(os.environ.get("BENCH_SWARM_KIOSKS", "8"))
SIZE = int(os.environ.get("BENCH_SWARM_MIB", "256")) * MiB
RATE = os.environ.get("BENCH_SWARM_RATE", "40mbit")
WORK = Path(os.environ.get("BENCH_DIR", "/var/tmp/burnstand-bench")) / "swarm"


async def main() -> int:
    why = netns_available()
    if why is not None:
        print(f"skipped: {why}")
        return 0
    shutil.rmtree(WORK / "venue", ignore_errors=True)
    image = make_image(WORK / "images", SIZE)
    async with Venue(WORK / "venue", image, KIOSKS, rate=RATE) as venue:
        shared = await venue.round(share=True, liar=True)
        plain = await venue.round(share=False, liar=True)
    fetchers = KIOSKS - 1
    ok = all(k["ok"] for k in shared.done + plain.done)
    banned = any(k["banned"] == [shared.liar] for k in shared.done)
    out_ratio = shared.coordinator_bytes / SIZE
    time_ratio = shared.seconds / plain.seconds
    print(
        f"{KIOSKS} kiosks ({fetchers} fetching, 1 serving damaged chunks), {SIZE // MiB} MiB, "
        f"coordinator link {RATE}"
    )
    print(
        f"  coordinator bytes out, sharing: {out_ratio:.2f}x the image (target <= 1.5x); "
        f"without: {plain.coordinator_bytes / SIZE:.2f}x"
    )
    print(
        f"  all verified after {shared.seconds:.1f} s sharing vs {plain.seconds:.1f} s without: "
        f"{time_ratio:.2f}x (target <= 0.40x)"
    )
    print(
        f"  every digest right: {ok}; liar banned: {banned}; peer bytes: "
        f"{sum(k['peer_bytes'] for k in shared.done) // MiB} MiB"
    )
    return 0 if ok and banned and out_ratio <= 1.5 and time_ratio <= 0.4 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
