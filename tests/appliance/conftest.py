"""Fixtures for the appliance tests: real loop devices on sparse files, and test images.

`loop_devices` makes as many loop devices as a test wants (`losetup -f --show` on a file in
tmp_path) and always detaches them at teardown, even when the test failed. Images are made from
a seeded PRNG so a failure is reproducible.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

MiB = 1024 * 1024


@dataclass(frozen=True)
class LoopDevice:
    path: str  # /dev/loopN
    backing: Path

    def read(self, offset: int, length: int) -> bytes:
        """Bytes as the device presents them (through the backing file, flushed)."""
        with open(self.backing, "rb") as f:
            f.seek(offset)
            return f.read(length)

    def part(self, n: int) -> str:
        """The path of partition `n` (from 1) of a device made with `partitions=`."""
        return f"{self.path}p{n}"

    def shrink_to_nothing(self) -> None:
        """What a pulled USB stick looks like to a writer: the device drops to 0 bytes.
        Truncate the backing file and tell the loop driver (LOOP_SET_CAPACITY); writes then fail
        with ENOSPC and the size reads 0. (`losetup -d` on a busy device only detaches lazily,
        and device-mapper's error target is not available in every kernel.)"""
        os.truncate(self.backing, 0)
        subprocess.run(["losetup", "-c", self.path], check=True, capture_output=True)


class LoopFactory:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.devices: list[LoopDevice] = []

    def __call__(
        self,
        size: int,
        *,
        fill: bytes | None = None,
        direct_io: bool = False,
        read_only: bool = False,
        partitions: int = 0,
    ) -> LoopDevice:
        """A loop device of `size` bytes; sparse (reads zeros) unless `fill` gives a pattern.
        `partitions` > 0 writes an MBR table of that many equal partitions (sfdisk) and has
        the kernel scan it, so /dev/loopNp1.. exist."""
        backing = self.root / f"loop-backing-{len(self.devices)}.img"
        if fill is None:
            with open(backing, "wb") as f:
                f.truncate(size)
        else:
            with open(backing, "wb") as f:
                pattern = (fill * (MiB // len(fill) + 1))[:MiB]
                for off in range(0, size, MiB):
                    f.write(pattern[: min(MiB, size - off)])
        if partitions:
            each = size // 512 // (partitions + 1)
            table = "".join(f"start={2048 + i * each}, size={each}\n" for i in range(partitions))
            subprocess.run(
                ["sfdisk", "-q", str(backing)],
                input=table,
                text=True,
                check=True,
                capture_output=True,
            )
        argv = ["losetup", "-f", "--show"]
        if partitions:
            argv.append("-P")
        if direct_io:
            argv.append("--direct-io=on")
        if read_only:
            argv.append("-r")
        out = subprocess.run([*argv, str(backing)], check=True, capture_output=True, text=True)
        dev = LoopDevice(out.stdout.strip(), backing)
        self.devices.append(dev)
        if partitions:
            # Without udev the scan at attach time is not always there yet; ask again, and
            # wait (bounded) for the kernel to make the partition nodes.
            subprocess.run(["blockdev", "--rereadpt", dev.path], check=False, capture_output=True)
            deadline = time.monotonic() + 10
            while not all(os.path.exists(dev.part(i + 1)) for i in range(partitions)):
                assert time.monotonic() < deadline, f"no partitions appeared on {dev.path}"
                subprocess.run(["partx", "-a", dev.path], check=False, capture_output=True)
        return dev

    def detach_all(self) -> None:
        for dev in self.devices:
            subprocess.run(["losetup", "-d", dev.path], check=False, capture_output=True)
        self.devices.clear()


@pytest.fixture
def loop_devices(tmp_path: Path) -> Iterator[LoopFactory]:
    if shutil.which("losetup") is None or os.geteuid() != 0:
        pytest.skip("loop devices need losetup and root (make test runs as root)")
    factory = LoopFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.detach_all()


def make_image(
    path: Path, size: int, *, seed: int = 1, zero_fraction: float = 0.0, zero_run: int = 8 * MiB
) -> Path:
    """A random image of `size` bytes; `zero_fraction` of it in all-zero runs of `zero_run`."""
    rng = random.Random(seed)
    with open(path, "wb") as f:
        off = 0
        while off < size:
            n = min(zero_run, size - off)
            if zero_fraction and rng.random() < zero_fraction:
                f.write(bytes(n))
            else:
                f.write(rng.randbytes(n))
            off += n
    return path


class ImageMaker:
    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, size: int, *, seed: int = 1, zero_fraction: float = 0.0) -> Path:
        name = f"image-{seed}-{size}-{zero_fraction}.img"
        return make_image(self.root / name, size, seed=seed, zero_fraction=zero_fraction)


@pytest.fixture
def make_test_image(tmp_path: Path) -> ImageMaker:
    """make_test_image(size, seed=, zero_fraction=) -> Path of a reproducible random image."""
    return ImageMaker(tmp_path)


# --------------------------------------------------------------------------- throttled targets

BLKIO = Path("/sys/fs/cgroup/blkio")
UNIFIED = Path("/sys/fs/cgroup/unified")


def _dev_numbers(dev: str) -> str:
    rdev = os.stat(dev).st_rdev
    return f"{os.major(rdev)}:{os.minor(rdev)}"


Throttle = Callable[[str, int], Callable[[], None]]


@pytest.fixture
def throttle() -> Iterator[Throttle]:
    """throttle(dev, bytes_per_s) -> a preexec_fn that puts the child in a cgroup whose writes
    to `dev` the kernel limits to that rate (cgroup v1 blkio, or v2 io.max)."""
    made: list[Path] = []

    def make(dev: str, bps: int) -> Callable[[], None]:
        name = f"burnstand-test-{uuid.uuid4().hex[:8]}"
        if (BLKIO / "blkio.throttle.write_bps_device").exists():
            group = BLKIO / name
            group.mkdir()
            made.append(group)
            (group / "blkio.throttle.write_bps_device").write_text(f"{_dev_numbers(dev)} {bps}")
        elif (UNIFIED / "cgroup.controllers").exists() and "io" in (
            UNIFIED / "cgroup.subtree_control"
        ).read_text().split():
            group = UNIFIED / name
            group.mkdir()
            made.append(group)
            (group / "io.max").write_text(f"{_dev_numbers(dev)} wbps={bps}")
        else:
            pytest.skip("no blkio cgroup to throttle a target with")
        procs = str(group / "cgroup.procs")

        def enter() -> None:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

        return enter

    yield make
    for group in made:
        # Bounded: the children are gone by now, so the group empties at once.
        for _ in range(100):
            try:
                group.rmdir()
                break
            except OSError:
                os.sched_yield()
