"""Optical burn benchmark: our pipeline (write with progress + read-back verify) to a `stdio:`
pseudo-drive, against a bare run of the same tool with the same arguments, image fed from the
file on stdin. Image size from BENCH_OPTICAL_MIB (default 256). Prints the wall-time ratio
(target <= 1.10x). Median of several runs, since xorriso's own timing comes in coarse steps."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.drives.base import SourceImage
from appliance.drives.optical import MIB, OpticalDrive, choose_tool

RUNS = int(os.environ.get("BENCH_OPTICAL_RUNS", "5"))


def bare(argv: list[str], image: Path) -> float:
    t = time.perf_counter()
    with open(image, "rb") as f:
        subprocess.run(
            argv, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
        )
    return time.perf_counter() - t


async def ours(drive: OpticalDrive, image: SourceImage) -> tuple[float, int]:
    t = time.perf_counter()
    events = 0
    async for _ in drive.write(image):
        events += 1
    async for _ in drive.verify(image):
        events += 1
    return time.perf_counter() - t, events


def main() -> int:
    mib = int(os.environ.get("BENCH_OPTICAL_MIB", "256"))
    with tempfile.TemporaryDirectory(prefix="bench-optical-", dir="/var/tmp") as d:
        work = Path(d)
        img = work / "image.iso"
        with open(img, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(MIB))
        size = img.stat().st_size
        target = work / "disc.img"
        dev = f"stdio:{target}"
        choice = choose_tool(dev)
        drive = OpticalDrive(dev, "bench")
        fifo = min(32 * MIB, max(MIB, size // 8 // MIB * MIB))  # what OpticalDrive passes
        argv = choice.burn_argv(dev, size, fifo, real_drive=False)
        image = SourceImage(path=img, size=size)
        base_t, our_t, ev = [], [], []
        for _ in range(RUNS):
            target.unlink(missing_ok=True)
            base_t.append(bare(argv, img))
            target.unlink(missing_ok=True)
            t, n = asyncio.run(ours(drive, image))
            our_t.append(t)
            ev.append(n)
        b, o = statistics.median(base_t), statistics.median(our_t)
        print(
            f"tool: {choice.name}; image {mib} MiB random; fifo {fifo // MIB} MiB; "
            f"feed chunk 4 MiB; {RUNS} runs"
        )
        print(
            f"bare {choice.name} write:           median {b:.2f} s  "
            f"(runs {', '.join(f'{x:.2f}' for x in base_t)})"
        )
        print(
            f"ours write + verify (progress): median {o:.2f} s  "
            f"(runs {', '.join(f'{x:.2f}' for x in our_t)}); "
            f"{statistics.median(ev) / o:.1f} progress events/s"
        )
        print(f"ratio ours/bare: {o / b:.2f}x (target <= 1.10x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
