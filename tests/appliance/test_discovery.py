"""Drive discovery: udev-facing tests run under umockdev-wrapper; uid and mount parsing run here."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.drives.discovery import read_mounts
from appliance.drives.uid import drive_uid, primary_mac

HERE = Path(__file__).resolve().parent
INNER = HERE / "udev_inner.py"
REPO = HERE.parent.parent


def _inner_tests() -> list[str]:
    tree = ast.parse(INNER.read_text())
    return [
        n.name
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test_")
    ]


@pytest.mark.parametrize("name", _inner_tests())
def test_under_umockdev(name: str) -> None:
    wrapper = shutil.which("umockdev-wrapper")
    if wrapper is None:
        pytest.skip("umockdev is not installed (make test installs it)")
    if importlib.util.find_spec("gi") is None:
        pytest.skip("PyGObject is not installed in the venv (pip install 'PyGObject<3.51')")
    proc = subprocess.run(
        [
            wrapper,
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            f"{INNER}::{name}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "CI": ""},
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout


def test_uid_is_md5_of_mac_and_path() -> None:
    mac = "dc:a6:32:aa:bb:cc"
    assert (
        drive_uid("/dev/sr0", mac)
        == hashlib.md5(b"dc:a6:32:aa:bb:cc/dev/sr0", usedforsecurity=False).hexdigest()
    )
    # Two burners on one computer get different ids; the same burner keeps its id.
    assert drive_uid("/dev/sr0", mac) != drive_uid("/dev/sr1", mac)
    assert drive_uid("/dev/sr0", mac.upper()) == drive_uid("/dev/sr0", mac)


def test_primary_mac_skips_loopback_and_empty_addresses(tmp_path: Path) -> None:
    for name, mac in [
        ("lo", "00:00:00:00:00:00"),
        ("wlan0", "b8:27:eb:00:00:02"),
        ("eth0", "B8:27:EB:00:00:01"),
        ("tun0", ""),
    ]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "address").write_text(mac + "\n")
    assert primary_mac(tmp_path) == "b8:27:eb:00:00:01"  # eth0 sorts first
    assert primary_mac(tmp_path / "missing") == "00:00:00:00:00:00"


def test_read_mounts_parses_numbers_sources_and_escapes(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 179:2 / / rw,noatime shared:1 - ext4 /dev/root rw\n"
        "31 22 8:17 / /media/my\\040stick rw shared:9 master:2 - vfat /dev/sdb1 rw\n"
        "garbage line\n"
    )
    mounts = read_mounts(info)
    assert [(m.dev, m.source, m.mountpoint) for m in mounts] == [
        ((179, 2), "/dev/root", "/"),
        ((8, 17), "/dev/sdb1", "/media/my stick"),
    ]
    assert read_mounts(tmp_path / "absent") == []
