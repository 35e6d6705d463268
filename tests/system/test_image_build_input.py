"""`make image` (image-build/build-image.sh) on a host that cannot build it: each case stops
before any work with one line saying what to install or set, and nothing lands in dist/.

The full-disk case fills a small tmpfs made for the test with a root tarball larger than it
(`--bootstrap`, the option for a bootstrap of your own), so the failure comes from a real ENOSPC
while unpacking, not from a simulated one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "image-build/build-image.sh"
GOOD = {"BURNSTAND_COORDINATOR_URL": "https://burn.example.org", "BURNSTAND_SHOW_ID": "3"}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the image build runs as root")


def build(
    out: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BURNSTAND_")}
    return subprocess.run(
        ["bash", str(SCRIPT), "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**base, **(env if env is not None else GOOD)},
    )


def only_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, done.stderr
    return errors[0]


@pytest.fixture
def emulation_ready(tmp_path: Path) -> dict[str, str]:
    """The build's environment on a host with every tool and arm64 emulation registered (a
    binfmt_misc folder of the test's own, so no test depends on, or changes, the host's)."""
    tools = ("mmdebstrap", "qemu-aarch64-static", "mcopy", "bmaptool", "mkfs.vfat")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed here: {missing} (make test installs them)")
    binfmt = tmp_path / "binfmt-registered"
    binfmt.mkdir()
    (binfmt / "status").write_text("enabled\n")
    (binfmt / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64\n")
    return {**GOOD, "BINFMT_MISC": str(binfmt)}


def path_without(tmp_path: Path, tool: str) -> str:
    """A PATH holding every program of /usr/bin except `tool`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for entry in Path("/usr/bin").iterdir():
        if entry.name != tool:
            (bin_dir / entry.name).symlink_to(entry)
    return f"{bin_dir}:/usr/sbin:/sbin"


def test_without_qemu_user_static_says_what_to_install(
    emulation_ready: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "dist"
    done = build(out, env={**GOOD, "PATH": path_without(tmp_path, "qemu-aarch64-static")})
    line = only_error_line(done)
    assert "apt-get install qemu-user-static" in line, line
    assert not out.exists() or not any(out.iterdir())


def test_without_binfmt_misc_says_how_to_mount_it(
    emulation_ready: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "dist"
    empty = tmp_path / "binfmt"
    empty.mkdir()
    line = only_error_line(build(out, env={**GOOD, "BINFMT_MISC": str(empty)}))
    assert f"mount -t binfmt_misc binfmt_misc {empty}" in line, line
    assert not out.exists()


def test_without_arm64_emulation_registered_says_what_to_install(
    emulation_ready: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "dist"
    binfmt = tmp_path / "binfmt"
    binfmt.mkdir()
    (binfmt / "status").write_text("enabled\n")  # mounted, but nothing registered
    line = only_error_line(build(out, env={**GOOD, "BINFMT_MISC": str(binfmt)}))
    assert "apt-get install qemu-user-static binfmt-support" in line, line
    assert "update-binfmts --enable qemu-aarch64" in line, line
    assert not out.exists()


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"BURNSTAND_SHOW_ID": "3"}, "no coordinator URL: set BURNSTAND_COORDINATOR_URL"),
        (
            {"BURNSTAND_COORDINATOR_URL": "https://burn.example.org"},
            "no show id: set BURNSTAND_SHOW_ID",
        ),
        ({**GOOD, "BURNSTAND_SHOW_ID": "three"}, "is not a show id"),
    ],
)
def test_missing_enrollment_settings_stop_before_any_work(
    emulation_ready: dict[str, str], tmp_path: Path, env: dict[str, str], says: str
) -> None:
    out = tmp_path / "dist"
    work = tmp_path / "work"
    binfmt = {"BINFMT_MISC": emulation_ready["BINFMT_MISC"]}
    line = only_error_line(build(out, "--work", str(work), env={**env, **binfmt}))
    assert says in line, line
    assert not out.exists()
    assert not work.exists(), "the build started before checking its settings"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_full_disk_leaves_no_half_image(
    emulation_ready: dict[str, str], tmp_path: Path, small_disk: Path
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "big").write_bytes(os.urandom(24 << 20))  # three times the disk, incompressible
    tarball = tmp_path / "root.tar"
    subprocess.run(["tar", "-C", str(tree), "-cf", str(tarball), "."], check=True)
    out = small_disk / "dist"
    work = small_disk / "work"
    done = build(out, "--work", str(work), "--bootstrap", str(tarball), env=emulation_ready)
    line = only_error_line(done)
    assert "is that disk full?" in line, done.stderr
    assert "nothing was written to" in done.stderr
    assert list(out.iterdir()) == [], "a half-made artifact was left in the output folder"
    assert not any(work.iterdir()), "the half-unpacked root was left behind"
