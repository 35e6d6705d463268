"""Benchmark of the images people bring, burned through the CLI onto loop devices, each figure a
ratio against a baseline measured in the same run (median of BENCH_REPEAT, interleaved):

- raw random image: `burnstand-agent burn` write + verify vs `dd oflag=direct` write + `dd
  iflag=direct` read (target >= 0.80x), and with `--sha256` (>= 0.50x);
- `.img.xz` (made with `xz -T0 -6`): CLI vs `xz -dc -T0 | dd oflag=direct` + `dd` read (>= 0.90x);
- `.img.zst`: CLI vs `zstd -dc | dd oflag=direct` + `dd` read (>= 0.90x);
- 70 %-zeros sparse image with its bmap: CLI `--bmap` (verifies the whole target) vs
  `bmaptool copy` (never reads back): faster;
- the `.img.xz` from a loopback HTTP server: CLI burning while downloading vs the larger of
  `curl -o /dev/null` and the CLI burning the local file (target <= 1.10x);
- start-up: milliseconds until `burn --json` prints its first event, beside a bare
  `python -c pass`.

Run as root: `python bench/bench_images.py`. BENCH_IMAGE_MIB (default 2048) sets the image size,
BENCH_DIR the work folder; the images are made once and kept.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from statistics import median

from bench_block import dd_argv, fresh_zero_target, loops, same_as_image

REPO = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024
SIZE = int(os.environ.get("BENCH_IMAGE_MIB", "2048")) * MiB
WORK = Path(os.environ.get("BENCH_DIR", "/var/tmp/burnstand-bench"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
CLI = [sys.executable, "-m", "appliance.cli", "burn", "--no-eject"]


def log(text: str) -> None:
    print(text, flush=True)


def make_image(path: Path, size: int, *, holes: float) -> Path:
    """Random 8 MiB chunks, with `holes` of them left as holes (sparse): a disk image's shape."""
    if path.exists() and path.stat().st_size == size:
        return path
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as f:
        for i, off in enumerate(range(0, size, 8 * MiB)):
            n = min(8 * MiB, size - off)
            if (i % 10) < holes * 10:
                f.seek(off + n)
            else:
                f.write(os.urandom(n))
        f.truncate(size)
    tmp.rename(path)
    return path


def packed(raw: Path, suffix: str, argv: list[str]) -> Path:
    out = raw.with_name(raw.name + suffix)
    if not out.exists():
        tmp = out.with_suffix(".part")
        with open(tmp, "wb") as f:
            subprocess.run([*argv, str(raw)], stdout=f, check=True)
        tmp.rename(out)
    return out


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# The CLI runs with compiled bytecode, as an installed package does (pip and dpkg compile it on
# install); a session that sets PYTHONDONTWRITEBYTECODE would otherwise recompile every module
# of ours on every run (~50 ms of CPU per start here). Kept apart under the work folder.
CLI_ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "PYTHONPYCACHEPREFIX": str(WORK / "pycache"),
}


def run(argv: list[str], **kw: object) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]


def cli_burn(image: str, dev: str, *extra: str) -> None:
    run([*CLI, "--image", image, "--target", dev, "--journal", str(WORK / "j.db"), *extra],
        cwd=REPO, env=CLI_ENV)  # fmt: skip


def dd_pipeline(decoder: list[str] | None, image: Path, dev: str, size: int) -> None:
    write, read = dd_argv(image, dev, size)
    if decoder is None:
        run(write)
    else:
        dec = subprocess.Popen([*decoder, str(image)], stdout=subprocess.PIPE)
        # A pipe hands out short reads; O_DIRECT needs whole blocks.
        run([*(a for a in write if not a.startswith("if=")), "iflag=fullblock"], stdin=dec.stdout)
        assert dec.stdout is not None
        dec.stdout.close()
        if dec.wait() != 0:
            raise RuntimeError("decoder failed")
    run(read)


def compare(label: str, target: float, contenders: dict[str, Callable[[str], None]]) -> None:
    """Each contender burns onto a fresh zero-filled loop device, interleaved, median of REPEAT;
    the first is the baseline. Prints the ratio baseline/ours (speed relative to baseline)."""
    backing = WORK / "target.img"
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(REPEAT):
        for name, fn in contenders.items():
            fresh_zero_target(backing, SIZE + 64 * MiB)
            with loops([backing], False) as devs:
                times[name].append(timed(partial(fn, devs[0])))
    base_name, *others = contenders
    base = median(times[base_name])
    for name in others:
        ours = median(times[name])
        verdict = "ok" if base / ours >= target else "MISSED"
        log(
            f"[{label}] {name} {ours:.2f}s vs {base_name} {base:.2f}s: "
            f"ratio {base / ours:.2f}x (target >= {target:.2f}x) {verdict}"
        )


def bmap_vs_bmaptool(sparse: Path) -> None:
    bmap = sparse.with_name(sparse.name + ".bmap")
    if not bmap.exists():
        run(["bmaptool", "create", "-o", str(bmap), str(sparse)])
    backing = WORK / "target.img"
    times: dict[str, list[float]] = {"bmaptool copy": [], "ours --bmap": []}
    intact = True
    for _ in range(REPEAT):
        fresh_zero_target(backing, SIZE + 64 * MiB)
        with loops([backing], False) as devs:
            copy = ["bmaptool", "copy", "--bmap", str(bmap), str(sparse), devs[0]]
            times["bmaptool copy"].append(timed(lambda a=copy: run(a, stderr=subprocess.DEVNULL)))
        fresh_zero_target(backing, SIZE + 64 * MiB)
        with loops([backing], False) as devs:
            times["ours --bmap"].append(
                timed(lambda d=devs[0]: cli_burn(str(sparse), d, "--bmap", str(bmap)))
            )
            intact &= same_as_image(devs[0], sparse, SIZE)
    peer, ours = median(times["bmaptool copy"]), median(times["ours --bmap"])
    log(
        f"[bmap 70% holes] ours write+verify of the whole target {ours:.2f}s (reads back equal: "
        f"{'yes' if intact else 'NO'}) vs bmaptool copy {peer:.2f}s (no read-back): "
        f"ratio {peer / ours:.2f}x (target: faster) {'ok' if ours < peer else 'MISSED'}"
    )


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


def url_vs_parts(xz: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = partial(_Quiet, directory=str(xz.parent))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{port}/{xz.name}"
    cache = WORK / "url-cache"
    try:
        download = median(
            timed(lambda: run(["curl", "-s", "-o", "/dev/null", url])) for _ in range(REPEAT)
        )

        def from_url(dev: str) -> None:
            shutil.rmtree(cache, ignore_errors=True)
            cli_burn(url, dev, "--cache", str(cache))

        backing = WORK / "target.img"
        local: list[float] = []
        remote: list[float] = []
        for _ in range(REPEAT):
            for fn, into in ((partial(cli_burn, str(xz)), local), (from_url, remote)):
                fresh_zero_target(backing, SIZE + 64 * MiB)
                with loops([backing], False) as devs:
                    into.append(timed(partial(fn, devs[0])))
        worst = max(download, median(local))
        ours = median(remote)
        log(
            f"[url .img.xz] burn while downloading {ours:.2f}s; download alone (curl) "
            f"{download:.2f}s, burn of the local file {median(local):.2f}s: ratio "
            f"{ours / worst:.2f}x of the larger (target <= 1.10x) "
            f"{'ok' if ours / worst <= 1.10 else 'MISSED'}"
        )
    finally:
        server.shutdown()
        shutil.rmtree(cache, ignore_errors=True)


def first_event_ms(image: Path, dev: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*CLI, "--image", str(image), "--target", dev, "--json", "--journal",
         str(WORK / "j.db")], cwd=REPO, env=CLI_ENV, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    proc.stdout.readline()
    elapsed = (time.perf_counter() - t0) * 1000
    proc.stdout.read()
    proc.wait()
    return elapsed


def startup(image: Path) -> None:
    backing = WORK / "target-small.img"
    fresh_zero_target(backing, 64 * MiB)
    bare = median(timed(lambda: run([sys.executable, "-c", "pass"])) for _ in range(5)) * 1000
    with loops([backing], False) as devs:
        first = median(first_event_ms(image, devs[0]) for _ in range(5))
    log(
        f"[start] burn --json first event after {first:.0f} ms (median of 5); a bare python "
        f"start takes {bare:.0f} ms here (target < 100 ms) {'ok' if first < 100 else 'MISSED'}"
    )


def main() -> int:
    if os.geteuid() != 0:
        log("bench_images: needs root (loop devices)")
        return 1
    missing = [t for t in ("xz", "zstd", "bmaptool", "curl", "dd") if shutil.which(t) is None]
    if missing:
        log(f"bench_images: missing {', '.join(missing)}")
        return 1
    WORK.mkdir(parents=True, exist_ok=True)
    mib = SIZE // MiB
    log(f"image {mib} MiB, median of {REPEAT}, interleaved, work dir {WORK}")
    raw = make_image(WORK / f"random-{mib}.img", SIZE, holes=0.0)
    # A distribution's disk image: a fifth data, the rest empty (xz -6 of random data is
    # slow to make, and the decode is what is measured).
    disk = make_image(WORK / f"quarter-{mib}.img", SIZE, holes=0.75)
    sparse = make_image(WORK / f"holes70-{mib}.img", SIZE, holes=0.7)
    xz = packed(disk, ".xz", ["xz", "-T0", "-6", "-c"])
    zst = packed(disk, ".zst", ["zstd", "-q", "-c"])
    sha = subprocess.run(["sha256sum", str(raw)], capture_output=True, text=True, check=True)
    digest = sha.stdout.split()[0]

    startup(make_image(WORK / "random-16.img", 16 * MiB, holes=0.0))
    compare(
        "raw", 0.80,
        {"dd": partial(dd_pipeline, None, raw, size=SIZE), "cli": partial(cli_burn, str(raw))},
    )  # fmt: skip
    compare(
        "raw --sha256", 0.50,
        {"dd": partial(dd_pipeline, None, raw, size=SIZE),
         "cli --sha256": lambda d: cli_burn(str(raw), d, "--sha256", digest)},
    )  # fmt: skip
    compare(
        ".img.xz", 0.90,
        {"xz -dc -T0 | dd": partial(dd_pipeline, ["xz", "-dc", "-T0"], xz, size=SIZE),
         "cli": partial(cli_burn, str(xz))},
    )  # fmt: skip
    compare(
        ".img.zst", 0.90,
        {"zstd -dc | dd": partial(dd_pipeline, ["zstd", "-dcq"], zst, size=SIZE),
         "cli": partial(cli_burn, str(zst))},
    )  # fmt: skip
    bmap_vs_bmaptool(sparse)
    url_vs_parts(xz)
    return 0


if __name__ == "__main__":
    sys.exit(main())
