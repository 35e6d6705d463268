"""`burnstand-agent` as a user runs it: exit codes, JSON-lines events, crash recovery."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from appliance import cli

if TYPE_CHECKING:
    from tests.appliance.conftest import ImageMaker, LoopFactory

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]


def agent(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
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


def test_burn_json_two_targets_exit_0(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(10 * MiB + 100)
    a, b = loop_devices(16 * MiB), loop_devices(16 * MiB)
    sha = hashlib.sha256(img.read_bytes()).hexdigest()
    run = agent(
        "burn",
        "--image",
        str(img),
        "--sha256",
        sha,
        "--target",
        a.path,
        "--target",
        b.path,
        "--json",
        "--journal",
        str(tmp_path / "j.db"),
    )
    assert run.returncode == 0, run.stderr
    evs = events(run.stdout)
    results = {e["target"]: e for e in evs if e["event"] == "result"}
    assert set(results) == {a.path, b.path}
    assert all(r["ok"] and r["verified"] and r["state"] == "passed" for r in results.values())
    phases = {(e["target"], e["phase"]) for e in evs if e["event"] == "progress"}
    assert phases == {(t, p) for t in (a.path, b.path) for p in ("write", "verify")}
    progress = next(e for e in evs if e["event"] == "progress")
    assert {"done", "total", "percent", "speed", "eta"} <= set(progress)
    for dev in (a, b):
        assert dev.read(0, img.stat().st_size) == img.read_bytes()


def test_plain_output_when_not_a_tty(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(3 * MiB)
    dev = loop_devices(4 * MiB)
    run = agent(
        "burn", "--image", str(img), "--target", dev.path, "--journal", str(tmp_path / "j.db")
    )
    assert run.returncode == 0, run.stderr
    assert f"{dev.path}: PASS: written and verified" in run.stdout
    assert "\x1b[" not in run.stdout


def test_wrong_sha256_fails_and_no_target_looks_good(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(12 * MiB)
    dev = loop_devices(16 * MiB, fill=b"\x99")
    run = agent(
        "burn",
        "--image",
        str(img),
        "--sha256",
        "f" * 64,
        "--target",
        dev.path,
        "--json",
        "--journal",
        str(tmp_path / "j.db"),
    )
    assert run.returncode == 1
    [result] = [e for e in events(run.stdout) if e["event"] == "result"]
    assert (result["ok"], result["reason"]) == (False, "corrupt-image")
    assert run.stderr.count("\n") == 1
    assert "corrupt-image" in run.stderr
    assert dev.read(0, 8 * MiB) == bytes(8 * MiB)  # no partition table, no boot code


def test_too_small_target_exit_1(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(6 * MiB)
    dev = loop_devices(4 * MiB)
    run = agent(
        "burn", "--image", str(img), "--target", dev.path, "--journal", str(tmp_path / "j.db")
    )
    assert run.returncode == 1
    assert "media-too-small" in run.stderr
    assert run.stderr.count("\n") == 1
    # The failure's message is printed once: on stderr, not again on the target's own line.
    message = run.stderr.split("media-too-small: ", 1)[1].strip()
    assert (run.stdout + run.stderr).count(message) == 1
    assert "FAIL (media-too-small)" in run.stdout


def test_kill_mid_write_then_restart_reports_failed(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(256 * MiB)
    dev = loop_devices(256 * MiB)
    journal = tmp_path / "j.db"
    proc = start_json_burn(img, dev.path, journal)
    try:
        wait_for_write_progress(proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == -signal.SIGKILL

    run = agent("jobs", "--json", "--journal", str(journal))
    assert run.returncode == 0, run.stderr
    [job] = events(run.stdout)
    assert (job["state"], job["reason"]) == ("failed", "interrupted")
    assert "power loss or crash" in job["message"]
    assert job["reported_upstream"] is False
    assert dev.read(0, 8 * MiB) == bytes(8 * MiB)  # and the stick does not look good either


def test_bad_sha256_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    img = tmp_path / "i.img"
    img.write_bytes(b"x" * 1024)
    with pytest.raises(SystemExit) as exc:
        cli.main(["burn", "--image", str(img), "--sha256", "xyz", "--target", "/dev/loop9"])
    assert exc.value.code == 2
    assert "not a SHA-256" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("make", "target", "message"),
    [
        ("missing", "/dev/loop0", "cannot read image"),
        ("empty", "/dev/loop0", "is empty"),
        ("ok", "{tmp}/plain-file", "not a block device"),
        ("ok", "/dev/nonexistent-dev", "no such target"),
    ],
)
def test_bad_input_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: str, target: str, message: str
):
    img = tmp_path / "i.img"
    if make == "ok":
        img.write_bytes(b"x" * 4096)
    elif make == "empty":
        img.write_bytes(b"")
    (tmp_path / "plain-file").write_bytes(bytes(8192))
    rc = cli.main(
        [
            "burn",
            "--image",
            str(img),
            "--target",
            target.format(tmp=tmp_path),
            "--journal",
            str(tmp_path / "j.db"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "j.db").exists() or make == "ok"


def test_same_target_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    img = tmp_path / "i.img"
    img.write_bytes(b"x" * 4096)
    rc = cli.main(
        [
            "burn",
            "--image",
            str(img),
            "--target",
            "/dev/loop0",
            "--target",
            "/dev/loop0",
            "--journal",
            str(tmp_path / "j.db"),
        ]
    )
    assert rc == 1
    assert "twice" in capsys.readouterr().err


def test_drives_without_discovery_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setitem(sys.modules, "appliance.drives.discovery", None)
    assert cli.main(["drives"]) == 1
    assert "discovery is not available" in capsys.readouterr().err


def test_help_lists_the_commands():
    run = agent("--help")
    assert run.returncode == 0
    for word in ("burn", "drives", "jobs"):
        assert word in run.stdout
    burn_help = agent("burn", "--help").stdout
    for flag in ("--image", "--sha256", "--target", "--no-verify", "--json", "--journal"):
        assert flag in burn_help


def start_json_burn(img: Path, dev: str, journal: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "appliance.cli",
            "burn",
            "--image",
            str(img),
            "--target",
            dev,
            "--json",
            "--journal",
            str(journal),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_write_progress(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    for _ in range(1000):  # bounded: a few lines per 0.2 s
        line = proc.stdout.readline()
        assert line, "the burn ended before it reported write progress"
        ev = json.loads(line)
        if ev["event"] == "progress" and ev["phase"] == "write" and ev["done"] < ev["total"]:
            return


def test_sigterm_cancels_cleanly(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(256 * MiB)
    dev = loop_devices(256 * MiB, fill=b"\x5a")
    journal = tmp_path / "j.db"
    proc = start_json_burn(img, dev.path, journal)
    try:
        wait_for_write_progress(proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == 130
    assert "cancelled" in err
    [result] = [e for e in events(out) if e["event"] == "result"]
    assert (result["state"], result["reason"]) == ("cancelled", "cancelled")
    run = agent("jobs", "--json", "--journal", str(journal))
    [job] = events(run.stdout)
    assert job["state"] == "cancelled"
    assert dev.read(0, 8 * MiB) == bytes(8 * MiB)


def test_progress_bars_on_a_terminal(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(6 * MiB)
    a, b = loop_devices(8 * MiB), loop_devices(8 * MiB)
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "appliance.cli",
            "burn",
            "--image",
            str(img),
            "--target",
            a.path,
            "--target",
            b.path,
            "--journal",
            str(tmp_path / "j.db"),
        ],
        cwd=REPO,
        stdout=secondary,
        stderr=subprocess.PIPE,
    )
    os.close(secondary)
    chunks: list[bytes] = []
    try:
        for _ in range(10_000):  # bounded; ends when the child closes the terminal
            try:
                data = os.read(primary, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait(10)
        os.close(primary)
        if proc.stderr is not None:
            proc.stderr.close()
    screen = b"".join(chunks).decode()
    assert "\x1b[2F" in screen  # redrawn in place, two lines for two targets
    assert "[####################] 100.0%" in screen
    assert screen.count("PASS: written and verified") >= 2


def test_unusable_journal_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    img = tmp_path / "i.img"
    img.write_bytes(b"x" * 4096)
    bad = tmp_path / "journal.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    rc = cli.main(["jobs", "--journal", str(bad)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "not a usable job journal" in err
    assert err.count("\n") == 1
    assert bad.read_bytes() == b"this is not sqlite" * 100  # nothing lost


# --------------------------------------------------------------------------- optical targets


def disc_holds(disc: Path, data: bytes) -> bool:
    """Whether a pseudo-drive file starts with the whole image (it is padded past it)."""
    if not disc.exists() or disc.stat().st_size < len(data):
        return False
    with open(disc, "rb") as f:
        return f.read(len(data)) == data


def test_burn_to_stdio_pseudo_drive_verified(tmp_path: Path, make_test_image: ImageMaker):
    img = make_test_image(24 * MiB + 4096, seed=7)
    disc = tmp_path / "discs" / "disc.img"
    disc.parent.mkdir()
    target = f"stdio:{disc}"
    run = agent(
        "burn",
        "--image",
        str(img),
        "--target",
        target,
        "--json",
        "--journal",
        str(tmp_path / "j.db"),
    )
    assert run.returncode == 0, run.stderr
    evs = [e for e in events(run.stdout) if e["target"] == target]
    kinds = [e["event"] for e in evs]
    assert kinds[-1] == "result"
    assert kinds.index("result") > max(i for i, k in enumerate(kinds) if k == "progress")
    result = evs[-1]
    assert (result["ok"], result["verified"], result["state"]) == (True, True, "passed")
    progress = [e for e in evs if e["event"] == "progress"]
    phases = [e["phase"] for e in progress]
    assert phases[0] == "write"
    assert phases[-1] == "verify"
    assert phases == sorted(phases, key=["write", "verify"].index)  # write, then verify
    for phase in ("write", "verify"):
        done = [e["done"] for e in progress if e["phase"] == phase]
        assert done == sorted(done)
        assert done[-1] == img.stat().st_size
    states = [e["state"] for e in evs if e["event"] == "state"]
    assert states == ["writing", "verifying", "passed"]
    assert disc_holds(disc, img.read_bytes())


def test_stdio_and_loop_targets_burn_in_parallel(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(32 * MiB, seed=8)
    dev = loop_devices(40 * MiB, fill=b"\x3c")
    disc = tmp_path / "disc.img"
    optical = f"stdio:{disc}"
    run = agent(
        "burn",
        "--image",
        str(img),
        "--target",
        optical,
        "--target",
        dev.path,
        "--json",
        "--journal",
        str(tmp_path / "j.db"),
    )
    assert run.returncode == 0, run.stderr
    evs = events(run.stdout)
    results = {e["target"]: e for e in evs if e["event"] == "result"}
    assert set(results) == {optical, dev.path}
    assert all(r["ok"] and r["verified"] for r in results.values())
    # Parallel, not one after the other: both jobs were writing before either had a result.
    first_result = next(i for i, e in enumerate(evs) if e["event"] == "result")
    writing = {e["target"] for e in evs[:first_result] if e.get("state") == "writing"}
    assert writing == {optical, dev.path}
    phases = {(e["target"], e["phase"]) for e in evs if e["event"] == "progress"}
    assert phases == {(t, p) for t in (optical, dev.path) for p in ("write", "verify")}
    data = img.read_bytes()
    assert disc_holds(disc, data)
    assert dev.read(0, len(data)) == data


def test_wrong_sha256_to_stdio_target_leaves_no_complete_image(
    tmp_path: Path, make_test_image: ImageMaker
):
    img = make_test_image(20 * MiB, seed=9)
    disc = tmp_path / "disc.img"
    target = f"stdio:{disc}"
    run = agent(
        "burn",
        "--image",
        str(img),
        "--sha256",
        "e" * 64,
        "--target",
        target,
        "--json",
        "--journal",
        str(tmp_path / "j.db"),
    )
    assert run.returncode == 1
    [result] = [e for e in events(run.stdout) if e["event"] == "result"]
    assert (result["ok"], result["verified"], result["reason"]) == (False, False, "corrupt-image")
    assert "does not match" in result["message"]
    assert run.stderr.count("\n") == 1
    assert f"{target}: corrupt-image" in run.stderr
    # The last chunk was withheld and the tool killed before EOF: no full copy on the "disc".
    assert not disc_holds(disc, img.read_bytes())
    run = agent("jobs", "--json", "--journal", str(tmp_path / "j.db"))
    [job] = events(run.stdout)
    assert (job["state"], job["reason"]) == ("failed", "corrupt-image")


# --------------------------------------------------------------------------- drives


def system_disks() -> set[str]:
    """The device holding / and its whole disk, e.g. {"/dev/vda"} or {"/dev/sda2", "/dev/sda"}."""
    source = subprocess.run(
        ["findmnt", "-n", "-o", "SOURCE", "/"], capture_output=True, text=True, check=True
    ).stdout.strip()
    disks = {source}
    parent = subprocess.run(
        ["lsblk", "-n", "-o", "PKNAME", source], capture_output=True, text=True, check=False
    ).stdout.strip()
    if parent:
        disks.add(f"/dev/{parent}")
    return disks


def test_drives_table_never_lists_the_system_disk():
    run = agent("drives")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["PATH", "KIND", "CAPABILITIES", "SIZE", "MODEL", "UID"]
    listed = {line.split()[0] for line in lines[1:]}
    assert not listed & system_disks()
    if not listed:
        assert "no drives found" in run.stderr


def test_drives_json_is_one_array_without_the_system_disk():
    run = agent("drives", "--json")
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)
    assert isinstance(rows, list)
    assert not {r["path"] for r in rows} & system_disks()
    for r in rows:
        assert {"uid", "path", "kind", "capabilities", "capacity", "model"} <= set(r)


def test_burn_json_starts_with_a_start_event_per_target(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(2 * MiB)
    a, b = loop_devices(4 * MiB), loop_devices(4 * MiB)
    run = agent(
        "burn", "--image", str(img), "--target", a.path, "--target", b.path, "--json",
        "--journal", str(tmp_path / "j.db"),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    first = events(run.stdout)[:2]
    assert [(e["event"], e["target"]) for e in first] == [("start", a.path), ("start", b.path)]
