"""Burns survive their neighbours: a second process on the same journal, an image file that
changes under a burn, a target that goes away, a target on the system disk.

Everything here runs the real `burnstand-agent` in subprocesses against real loop devices and a
real journal file. A burn that must still be running while a neighbour acts is slowed by a
blkio cgroup write limit on its target (the kernel throttles it; nothing sleeps).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from appliance.journal import JobState, JournalDB

if TYPE_CHECKING:
    from tests.appliance.conftest import ImageMaker, LoopFactory, Throttle

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]


def agent(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def start_burn(
    img: Path,
    dev: str,
    journal: Path,
    preexec: Callable[[], None] | None = None,
    *,
    own_group: bool = False,
) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "appliance.cli", "burn", "--image", str(img)]
    argv += ["--target", dev, "--json", "--journal", str(journal)]
    return subprocess.Popen(
        argv,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,  # only writes our pid into a cgroup file
        start_new_session=own_group,
    )


def read_until_writing(proc: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """Events up to the first write progress short of the end (the burn is mid-write)."""
    assert proc.stdout is not None
    seen: list[dict[str, Any]] = []
    for _ in range(1000):  # bounded: a few lines per 0.2 s
        line = proc.stdout.readline()
        assert line, f"the burn ended before it was mid-write: {seen}"
        ev = json.loads(line)
        seen.append(ev)
        if ev["event"] == "progress" and ev["phase"] == "write" and ev["done"] < ev["total"]:
            return seen
    raise AssertionError("no write progress")


def finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait(10)


# --------------------------------------------------------------------------- case 1: journal


def test_jobs_and_a_second_burn_leave_a_running_burn_alone(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker, throttle: Throttle
):
    img = make_test_image(32 * MiB)
    slow = loop_devices(32 * MiB)
    other = loop_devices(8 * MiB)
    small = make_test_image(4 * MiB, seed=2)
    journal = tmp_path / "journal.db"
    proc = start_burn(img, slow.path, journal, throttle(slow.path, 4 * MiB))
    try:
        head = read_until_writing(proc)
        job_id = next(e["job"] for e in head if e["event"] == "state")

        # A second process looks at the journal while the first one writes ...
        looked = agent("jobs", "--json", "--journal", str(journal))
        assert looked.returncode == 0, looked.stderr
        [running] = [j for j in events(looked.stdout) if j["id"] == job_id]
        assert running["state"] == "writing"  # the kernel holds it to 4 MiB/s: 8 s of writing
        # ... and a second burn opens the same journal as a writer, burns and passes.
        second = agent(
            "burn",
            "--image",
            str(small),
            "--target",
            other.path,
            "--journal",
            str(journal),
            "--json",
        )
        assert second.returncode == 0, second.stderr
        assert "interrupted" not in second.stdout

        out, err = finish(proc)
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    [result] = [e for e in events(out) if e["event"] == "result"]
    assert (result["state"], result["verified"]) == ("passed", True)
    assert slow.read(0, 32 * MiB) == img.read_bytes()
    states = {
        j["id"]: j["state"]
        for j in events(agent("jobs", "--json", "--journal", str(journal)).stdout)
    }
    assert states[job_id] == "passed"
    assert sorted(states.values()) == ["passed", "passed"]


# --------------------------------------------------------------------------- case 2: image


def test_image_copied_over_mid_burn_is_image_changed(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker, throttle: Throttle
):
    """`cp new.img same.img` while a burn reads same.img: once SIGBUS (rc 135, no result)."""
    img = make_test_image(32 * MiB)
    smaller = make_test_image(2 * MiB, seed=3)
    dev = loop_devices(32 * MiB, fill=b"\x5a")
    proc = start_burn(img, dev.path, tmp_path / "journal.db", throttle(dev.path, 4 * MiB))
    try:
        read_until_writing(proc)
        shutil.copyfile(smaller, img)  # truncates the same inode, then writes 2 MiB
        out, err = finish(proc)
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == 1, err
    [result] = [e for e in events(out) if e["event"] == "result"]
    assert (result["state"], result["reason"]) == ("failed", "image-changed")
    assert err.strip() == f"burnstand-agent: {dev.path}: image-changed: {result['message']}"
    assert dev.read(0, 8 * MiB) == bytes(8 * MiB)  # blank at its start, not a mix of two images


# --------------------------------------------------------------------------- case 4: system disk

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, MS_REC, MS_PRIVATE = 0x00020000, 0x4000, 1 << 18


def boot_from(partition: str) -> Callable[[], None]:
    """A preexec_fn: the child gets its own mount table in which `partition` is mounted on
    /boot — as on a Pi, where the card's first partition is /boot/firmware. The host's mounts
    are untouched (private namespace, propagation off)."""

    def enter() -> None:
        for ok in (
            _libc.unshare(CLONE_NEWNS) == 0,
            _libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) == 0,
            _libc.mount(partition.encode(), b"/boot", b"ext4", 0, None) == 0,
        ):
            if not ok:
                raise OSError(ctypes.get_errno(), "mount namespace setup failed")

    return enter


def test_a_partition_of_the_system_disk_is_refused_by_name(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(MiB)
    system = loop_devices(32 * MiB, partitions=2)
    subprocess.run(["mkfs.ext4", "-q", system.part(2)], check=True, capture_output=True)
    before = Path(system.part(1)).read_bytes()
    argv = [sys.executable, "-m", "appliance.cli", "burn", "--image", str(img)]
    argv += ["--target", system.part(1), "--partition-ok", "--journal", str(tmp_path / "j.db")]
    run = subprocess.run(
        argv,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=boot_from(system.part(2)),  # only mounts in the child's own namespace
    )
    assert run.returncode == 1, run.stdout
    assert run.stderr == (
        f"burnstand-agent: system-disk: {system.part(1)} is a partition of {system.path},"
        " which holds /boot — the system this kiosk runs on\n"
    )
    assert Path(system.part(1)).read_bytes() == before  # not a byte written


def test_a_partition_needs_partition_ok(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(MiB)
    other = loop_devices(32 * MiB, partitions=2)
    journal = str(tmp_path / "j.db")
    refused = agent("burn", "--image", str(img), "--target", other.part(1), "--journal", journal)
    assert refused.returncode == 1
    assert "--partition-ok" in refused.stderr
    assert refused.stderr.count("\n") == 1
    run = agent(
        "burn",
        "--image",
        str(img),
        "--target",
        other.part(1),
        "--partition-ok",
        "--journal",
        journal,
    )
    assert run.returncode == 0, run.stderr


# --------------------------------------------------------------------------- cases 5 and 6


def read_only_tmpfs_at(path: Path) -> Callable[[], None]:
    """A preexec_fn: in the child's own mount namespace, `path` is a read-only tmpfs."""

    def enter() -> None:
        for ok in (
            _libc.unshare(CLONE_NEWNS) == 0,
            _libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) == 0,
            _libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", 1, None) == 0,  # MS_RDONLY
        ):
            if not ok:
                raise OSError(ctypes.get_errno(), "mount namespace setup failed")

    return enter


@pytest.mark.parametrize("where", ["directory", "read-only"])
def test_an_unusable_journal_path_is_one_line(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker, where: str
):
    img = make_test_image(MiB)
    dev = loop_devices(4 * MiB, fill=b"\x5a")
    ro = tmp_path / "ro"
    ro.mkdir()
    journal = tmp_path if where == "directory" else ro / "journal.db"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "appliance.cli",
            "burn",
            "--image",
            str(img),
            "--target",
            dev.path,
            "--journal",
            str(journal),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=read_only_tmpfs_at(ro),
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert run.stderr.count("\n") == 1, run.stderr
    assert str(journal) in run.stderr
    said = "is a directory" if where == "directory" else "Read-only file system"
    assert said in run.stderr
    assert dev.read(0, MiB) == b"\x5a" * MiB  # nothing burned without a journal


def test_md5_and_the_absolute_image_path_are_journaled(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(2 * MiB)
    dev = loop_devices(4 * MiB)
    journal = tmp_path / "j.db"
    md5 = hashlib.md5(img.read_bytes(), usedforsecurity=False).hexdigest()
    argv = [sys.executable, "-m", "appliance.cli", "burn", "--image", img.name, "--md5", md5]
    argv += ["--target", dev.path, "--journal", str(journal)]
    run = subprocess.run(
        argv,
        cwd=img.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert run.returncode == 0, run.stderr
    [job] = events(agent("jobs", "--json", "--journal", str(journal)).stdout)
    assert (job["image"], job["md5"]) == (str(img), md5)
    bad = agent("burn", "--image", str(img), "--md5", "xyz", "--target", dev.path)
    assert bad.returncode == 2
    assert "not an MD5" in bad.stderr


def test_an_interrupted_job_reads_interrupted_once(tmp_path: Path):
    path = tmp_path / "j.db"
    db = JournalDB(path)
    db.create("gone", "u", "/dev/sdz", "/i.img", None, None)
    db.transition("gone", JobState.WRITING)
    db.close()  # its owner is gone, the job never finished
    run = agent("jobs", "--journal", str(path))
    assert run.returncode == 0, run.stderr
    [row] = [line for line in run.stdout.splitlines() if line.startswith("gone ")]
    assert "failed (interrupted)" in row
    assert run.stdout.count("interrupted") == 1
    assert "gone: the burn stopped mid-way: power loss or crash" in run.stdout.splitlines()


def test_a_killed_optical_burn_leaves_no_disc_that_looks_complete(
    tmp_path: Path, make_test_image: ImageMaker
):
    """A pseudo-drive is a plain file: killed mid-burn, its start must not be the image's (an
    ISO's label and directory live there), so nothing mistakes it for a finished disc."""
    img = make_test_image(320 * MiB)
    disc = tmp_path / "disc.iso"
    proc = start_burn(img, f"stdio:{disc}", tmp_path / "journal.db", own_group=True)
    try:
        assert proc.stdout is not None
        for _ in range(1000):  # bounded: a few lines per 0.2 s
            line = proc.stdout.readline()
            assert line, "the burn ended before it was mid-write"
            ev = json.loads(line)
            # Past the tool's 32 MiB fifo, so the file holds the start of the image, and short
            # of the end, so the first chunk cannot have been put in place yet.
            mid = ev["event"] == "progress" and ev["phase"] == "write"
            if mid and 64 * MiB <= ev["done"] < ev["total"]:
                break
        # Like a power cut: the CLI and its burn tool die at once, mid-image.
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    with open(img, "rb") as f:
        head = f.read(MiB)
    assert disc.stat().st_size >= 32 * MiB  # the tool had written a good part of the image
    with open(disc, "rb") as f:
        start = f.read(MiB)
    assert start != head
    assert start == bytes(MiB)
