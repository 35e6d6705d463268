"""Benchmark of the block backend against `dd`, measured in the same run on real loop devices.

Prints, for a random image written to a zero-filled loop device (once on a default loop device,
once with `losetup --direct-io=on`): our write + verify (proven image, XXH3-128 on the path;
then unproven with SHA-256 on the path) as a ratio of `dd oflag=direct` write + `dd iflag=direct`
read of the same image; a sparse 70 %-zeros image against `bmaptool create` + `bmaptool copy`
(each on a freshly zero-filled loop device, both read back to check the holes read as zeros);
and 4 parallel targets against 4 parallel dd pipelines. Run as root:
`python bench/bench_block.py` (see README.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import mmap
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import xxhash

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.burn import burn_many
from appliance.drives.base import SourceImage
from appliance.drives.block import DEFAULT_CHUNK, BlockDrive

MiB = 1024 * 1024
SIZE = int(os.environ.get("BENCH_SIZE_MIB", "1024")) * MiB
PARALLEL_SIZE = int(os.environ.get("BENCH_PARALLEL_MIB", str(SIZE // MiB // 2))) * MiB
WORK = Path(os.environ.get("BENCH_DIR", "/var/tmp/burnstand-bench"))
DD_BS = "8M"
REPEAT = int(os.environ.get("BENCH_REPEAT", "2"))  # best of N for every figure


def log(text: str) -> None:
    print(text, flush=True)


def make_image(path: Path, size: int, zero_fraction: float) -> Path:
    """Persistent test image: random, or random with runs of zeros (every 10th 8 MiB chunk
    pattern decides), so reruns compare the same bytes."""
    if path.exists() and path.stat().st_size == size:
        return path
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as f:
        for i, off in enumerate(range(0, size, 8 * MiB)):
            n = min(8 * MiB, size - off)
            f.write(bytes(n) if (i % 10) < zero_fraction * 10 else os.urandom(n))
    tmp.rename(path)
    return path


def zero_fill(path: Path, size: int) -> None:
    """A backing file with every block allocated and holding zeros (not a sparse file: fresh
    sparse files make dd vary several-fold)."""
    if path.exists() and path.stat().st_size == size and path.stat().st_blocks * 512 >= size:
        return
    subprocess.run(
        [
            "dd",
            "if=/dev/zero",
            f"of={path}",
            "bs=8M",
            f"count={size // (8 * MiB) + 1}",
            "iflag=count_bytes",
            "status=none",
            "conv=fsync",
        ],
        check=True,
    )
    os.truncate(path, size)


@contextmanager
def loops(backings: list[Path], direct_io: bool) -> Iterator[list[str]]:
    devs: list[str] = []
    try:
        for b in backings:
            argv = ["losetup", "-f", "--show"]
            if direct_io:
                argv.append("--direct-io=on")
            out = subprocess.run([*argv, str(b)], check=True, capture_output=True, text=True)
            devs.append(out.stdout.strip())
        yield devs
    finally:
        for d in devs:
            subprocess.run(["losetup", "-d", d], check=False)


def dd_argv(image: Path, dev: str, size: int) -> tuple[list[str], list[str]]:
    write = [
        "dd",
        f"if={image}",
        f"of={dev}",
        f"bs={DD_BS}",
        "oflag=direct",
        "conv=fsync",
        "status=none",
    ]
    read = [
        "dd",
        f"if={dev}",
        "of=/dev/null",
        f"bs={DD_BS}",
        "iflag=direct,count_bytes",
        f"count={size}",
        "status=none",
    ]
    return write, read


def time_dd(image: Path, devs: list[str], size: int) -> float:
    """dd write then dd read, one pipeline per device, all devices at once."""
    t0 = time.perf_counter()
    procs = []
    for dev in devs:
        w, r = dd_argv(image, dev, size)
        script = [*w, "&&", *r]
        procs.append(subprocess.Popen(["sh", "-c", " ".join(script)]))
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError("dd failed")
    return time.perf_counter() - t0


def time_ours(image: SourceImage, devs: list[str], *, sparse: bool = True) -> float:
    drives = [BlockDrive(d, f"bench-{i}", sparse=sparse) for i, d in enumerate(devs)]
    t0 = time.perf_counter()
    results = asyncio.run(burn_many(drives, image, eject=False))
    elapsed = time.perf_counter() - t0
    bad = [r for r in results if not r.ok]
    if bad:
        raise RuntimeError(f"burn failed: {bad[0].reason}: {bad[0].message}")
    return elapsed


def best(*fns: Callable[[], float]) -> list[float]:
    """Best time of each contender, run interleaved so drift in the host hits all alike."""
    times = [[fn() for fn in fns] for _ in range(REPEAT)]
    return [min(run[i] for run in times) for i in range(len(fns))]


def gibps(size: int, seconds: float) -> str:
    return f"{size / seconds / 2**30:.2f} GiB/s"


def digests(path: Path) -> tuple[str, str]:
    sha, xxh = hashlib.sha256(), xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(8 * MiB):
            sha.update(chunk)
            xxh.update(chunk)
    return sha.hexdigest(), xxh.hexdigest()


def make_sparse_image(path: Path, size: int) -> Path:
    """The 70 %-zeros image of `make_image`, but with its zero chunks left as holes in the file,
    as a sparse image arrives: that is what `bmaptool create` maps, so bmaptool gets to skip
    them (with zeros written out as data it would have to copy everything)."""
    if path.exists() and path.stat().st_size == size:
        return path
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as f:
        for i, off in enumerate(range(0, size, 8 * MiB)):
            n = min(8 * MiB, size - off)
            if (i % 10) < 7:
                f.seek(off + n)
            else:
                f.write(os.urandom(n))
        f.truncate(size)
    tmp.rename(path)
    return path


def fresh_zero_target(path: Path, size: int) -> None:
    """Every contender gets the same start: a fully allocated, zero-filled backing file (our
    BLKZEROOUT punches holes in it and bmaptool leaves data in it, so it is remade each time)."""
    path.unlink(missing_ok=True)
    zero_fill(path, size)


def same_as_image(dev: str, image: Path, size: int) -> bool:
    """Read the target back (O_DIRECT, not the page cache) and compare with the image: the
    holes must read as zeros there, whoever wrote it."""
    with open(image, "rb") as src:
        fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
        buf = mmap.mmap(-1, 8 * MiB)
        try:
            for off in range(0, size, 8 * MiB):
                n = min(8 * MiB, size - off)
                got = os.preadv(fd, [buf], off)
                if got < n or buf[:n] != src.read(n):
                    return False
        finally:
            buf.close()
            os.close(fd)
    return True


def sparse_vs_bmaptool() -> bool:
    """70 %-zeros image: ours (write + verify) against `bmaptool create` + `bmaptool copy`,
    each onto a freshly zero-filled loop device; True when ours is faster and both targets
    read back equal to the image."""
    img = make_sparse_image(WORK / f"zeros70-sparse-{SIZE // MiB}.img", SIZE)
    sha, xxh = digests(img)
    image = SourceImage(img, SIZE, sha256=sha, xxh3_128=xxh, proven=True)
    backing = WORK / "target-sparse.img"
    bmap = img.with_suffix(".bmap")
    have_bmaptool = shutil.which("bmaptool") is not None
    if not have_bmaptool:
        log("[70% zeros] peer missing: bmaptool is not installed (Debian package bmap-tools)")
    times: dict[str, list[float]] = {"dd": [], "ours": [], "create": [], "copy": []}
    intact = {"ours": True, "bmaptool": True}

    def run_bmaptool(dev: str) -> None:
        bmap.unlink(missing_ok=True)
        t0 = time.perf_counter()
        subprocess.run(["bmaptool", "create", "-o", str(bmap), str(img)], check=True)
        t1 = time.perf_counter()
        subprocess.run(
            ["bmaptool", "copy", "--bmap", str(bmap), str(img), dev],
            check=True,
            capture_output=True,
        )
        t2 = time.perf_counter()
        times["create"].append(t1 - t0)
        times["copy"].append(t2 - t1)

    for _ in range(REPEAT):  # interleaved: dd, ours, bmaptool, dd, ours, bmaptool, ...
        fresh_zero_target(backing, SIZE + MiB)
        with loops([backing], False) as devs:
            times["dd"].append(time_dd(img, devs, SIZE))
        fresh_zero_target(backing, SIZE + MiB)
        with loops([backing], False) as devs:
            times["ours"].append(time_ours(image, devs))
            intact["ours"] &= same_as_image(devs[0], img, SIZE)
        if have_bmaptool:
            fresh_zero_target(backing, SIZE + MiB)
            with loops([backing], False) as devs:
                run_bmaptool(devs[0])
                intact["bmaptool"] &= same_as_image(devs[0], img, SIZE)
    backing.unlink(missing_ok=True)
    bmap.unlink(missing_ok=True)
    dd, ours = min(times["dd"]), min(times["ours"])
    log(
        f"[70% zeros] sparse image file ({SIZE // MiB} MiB, 70 % of its 8 MiB chunks are holes),"
        " zero-filled loop target, each contender on a fresh one, best of "
        f"{REPEAT}, interleaved"
    )
    log(
        f"[70% zeros] ours write+verify (proven image) {ours:.2f}s, read back equal to the image"
        f" (holes read as zeros): {'yes' if intact['ours'] else 'NO'}; "
        f"dd write+read {dd:.2f}s (ratio {dd / ours:.2f}x)"
    )
    if not have_bmaptool:
        return intact["ours"]
    create, copy = min(times["create"]), min(times["copy"])
    peer = min(a + b for a, b in zip(times["create"], times["copy"], strict=True))
    ok = intact["ours"] and ours < peer
    log(
        f"[70% zeros] bmaptool create {create:.2f}s + copy {copy:.2f}s = {peer:.2f}s "
        f"(write only, never reads the target back), read back equal: "
        f"{'yes' if intact['bmaptool'] else 'NO'}"
    )
    log(
        f"[70% zeros] ours/bmaptool speed ratio {peer / ours:.2f}x (create+copy), "
        f"{copy / ours:.2f}x (copy alone); target: faster than bmaptool "
        f"{'ok' if ok else 'MISSED'}"
    )
    return ok


def main() -> int:
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        log("bench_block: needs root and losetup")
        return 1
    WORK.mkdir(parents=True, exist_ok=True)
    log(
        f"image {SIZE // MiB} MiB, parallel image {PARALLEL_SIZE // MiB} MiB x4, "
        f"chunk {DEFAULT_CHUNK // MiB} MiB, dd bs={DD_BS}, best of {REPEAT}, work dir {WORK}"
    )
    img = make_image(WORK / f"random-{SIZE // MiB}.img", SIZE, 0.0)
    sha, xxh = digests(img)
    proven = SourceImage(img, SIZE, sha256=sha, xxh3_128=xxh, proven=True)
    unproven = SourceImage(img, SIZE, sha256=sha)
    backing = [WORK / f"target-{i}.img" for i in range(4)]
    for b in backing:
        zero_fill(b, max(SIZE, PARALLEL_SIZE) + MiB)
    failed = False

    for direct in (False, True):
        mode = "loop --direct-io=on" if direct else "loop (buffered backing)"
        with loops(backing[:1], direct) as devs:
            dd, fast, slow = best(
                lambda: time_dd(img, devs, SIZE),
                lambda: time_ours(proven, devs),
                lambda: time_ours(unproven, devs),
            )
        log(f"[{mode}] dd write+read {dd:.2f}s ({gibps(SIZE, dd)})")
        ok = fast <= dd / 0.80
        failed |= not ok
        log(
            f"[{mode}] write+verify, proven image (XXH3-128): {fast:.2f}s  "
            f"ratio {dd / fast:.2f}x  (target >= 0.80x) {'ok' if ok else 'MISSED'}"
        )
        ok = slow <= dd / 0.50
        failed |= not ok
        log(
            f"[{mode}] write+verify, SHA-256 on the path:     {slow:.2f}s  "
            f"ratio {dd / slow:.2f}x  (target >= 0.50x) {'ok' if ok else 'MISSED'}"
        )

    failed |= not sparse_vs_bmaptool()

    par_img = make_image(WORK / f"random-{PARALLEL_SIZE // MiB}.img", PARALLEL_SIZE, 0.0)
    par = SourceImage(par_img, PARALLEL_SIZE)
    with loops(backing, False) as devs:
        dd, ours = best(
            lambda: time_dd(par_img, devs, PARALLEL_SIZE),
            lambda: time_ours(par, devs),
        )
    agg = 4 * PARALLEL_SIZE
    ok = ours <= dd / 0.80
    failed |= not ok
    log(
        f"[4 parallel] dd {dd:.2f}s ({gibps(agg, dd)} aggregate); ours {ours:.2f}s "
        f"({gibps(agg, ours)}) ratio {dd / ours:.2f}x (target >= 0.80x) {'ok' if ok else 'MISSED'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
