"""The systemd units as systemd reads them: verified, scored for exposure, their users made.

`systemd-analyze verify --root=` loads each unit from a throw-away root that holds what the image
provides (systemd's own units, the venv commands, cage/Chromium/curl, the enrollment script): a
unit naming a program the image does not have, or carrying a misspelt setting, fails here.
`systemd-analyze security --offline=yes` scores the long-running services; the agent and the
coordinator must stay "OK" or better (exposure below 5.0 of 10). `systemd-sysusers --root=`
applies our sysusers.d files to an empty root so every User=/Group= the units name exists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS_DIR = REPO / "systemd"
UNITS = sorted(p.name for p in UNITS_DIR.glob("*.service"))
# What the image puts on disk for the units to run (image-build/customize.sh + its packages).
IMAGE_PROGRAMS = [
    "opt/burnstand/venv/bin/burnstand-coordinator",
    "opt/burnstand/venv/bin/burnstand-agent",
    "opt/burnstand/venv/bin/burnstand-kiosk",
    "opt/burnstand/venv/bin/python",
    "usr/bin/cage",
    "usr/bin/chromium",
    "usr/bin/curl",
]
SYSTEM_UNITS = Path("/usr/lib/systemd/system")
GOOD_LABELS = {"PERFECT", "SAFE", "OK"}
TIMEOUT = 120


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package systemd; make test installs it)")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, check=False)


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with systemd's units, our units and stand-ins for the programs they start."""
    if not SYSTEM_UNITS.is_dir():
        pytest.skip("systemd's unit directory is missing (Debian package systemd)")
    root = tmp_path_factory.mktemp("image-root")
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    unit_dir = root / "usr/local/lib/systemd/system"  # where customize.sh installs them
    unit_dir.mkdir(parents=True)
    for name in UNITS:
        shutil.copy(UNITS_DIR / name, unit_dir / name)
    for rel in IMAGE_PROGRAMS:
        stub = root / rel
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    enroll = root / "opt/burnstand/libexec/burnstand-enrollment-code"
    enroll.parent.mkdir(parents=True)
    shutil.copy(REPO / "image-build/files/burnstand-enrollment-code", enroll)
    return root


def test_every_expected_unit_is_shipped() -> None:
    assert set(UNITS) >= {
        "burnstand-coordinator.service",
        "burnstand-agent.service",
        "burnstand-kiosk.service",
        "burnstand-kiosk-display.service",
        "burnstand-firstboot.service",
    }


@pytest.mark.parametrize("unit", UNITS)
def test_unit_verifies_cleanly(image_root: Path, unit: str) -> None:
    tool = _tool("systemd-analyze")
    done = _run(tool, "verify", f"--root={image_root}", unit)
    # Unknown or misspelt settings are only warnings for systemd: any output counts as a failure.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_verify_catches_a_program_the_image_lacks(image_root: Path) -> None:
    """The check above has teeth: a unit whose ExecStart is missing from the root fails."""
    tool = _tool("systemd-analyze")
    cage = image_root / "usr/bin/cage"
    cage.rename(cage.with_suffix(".away"))
    try:
        done = _run(tool, "verify", f"--root={image_root}", "burnstand-kiosk-display.service")
    finally:
        cage.with_suffix(".away").rename(cage)
    assert done.returncode != 0
    assert "/usr/bin/cage" in done.stderr


@pytest.mark.parametrize(
    "unit",
    ["burnstand-agent.service", "burnstand-coordinator.service", "burnstand-kiosk.service"],
)
def test_service_exposure_is_ok_or_better(image_root: Path, unit: str) -> None:
    tool = _tool("systemd-analyze")
    done = _run(tool, "security", "--offline=yes", f"--root={image_root}", "--no-pager", unit)
    assert done.returncode == 0, done.stderr
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d) (\w+)", done.stdout)
    assert found is not None, done.stdout[-500:]
    score, label = float(found.group(1)), found.group(2)
    assert label in GOOD_LABELS, f"{unit}: exposure {score} {label}"
    assert score < 5.0
    # The same bar as systemd enforces it (exposure on its 0..100 scale), so CI fails alike.
    gate = _run(tool, "security", "--offline=yes", f"--root={image_root}", "--threshold=49", unit)
    assert gate.returncode == 0


def _settings(unit: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (UNITS_DIR / unit).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_agent_reaches_burners_and_targets_only() -> None:
    agent = _settings("burnstand-agent.service")
    assert agent["DevicePolicy"] == ["closed"]
    assert set(agent["DeviceAllow"]) == {
        "block-sd rw",
        "block-sr rw",
        "block-mmc rw",
        "block-loop rw",
        "block-blkext rw",
        "char-gpiochip rw",
    }
    assert agent["RuntimeDirectory"] == ["burnstand"]
    assert agent["RuntimeDirectoryMode"] == ["0750"]


@pytest.mark.parametrize("unit", ["burnstand-agent.service", "burnstand-coordinator.service"])
def test_daemons_are_notify_with_watchdog_and_restart(unit: str) -> None:
    settings = _settings(unit)
    assert settings["Type"] == ["notify"]
    assert int(settings["WatchdogSec"][0]) > 0
    assert settings["Restart"] == ["on-failure"]


def test_display_takes_tty1_and_comes_back() -> None:
    display = _settings("burnstand-kiosk-display.service")
    assert "getty@tty1.service" in display["Conflicts"][0].split()
    assert display["Restart"] == ["always"]
    assert display["TTYPath"] == ["/dev/tty1"]
    # Chromium points at the page the kiosk service serves.
    kiosk = _settings("burnstand-kiosk.service")
    assert "--port 8081" in kiosk["ExecStart"][0]
    assert "--host 127.0.0.1" in kiosk["ExecStart"][0]
    assert "http://127.0.0.1:8081/" in display["ExecStart"][0]


def test_sysusers_create_every_user_and_group_the_units_run_as(tmp_path: Path) -> None:
    tool = _tool("systemd-sysusers")
    confs = sorted((UNITS_DIR / "sysusers.d").glob("*.conf"))
    (tmp_path / "etc").mkdir()
    done = _run(tool, f"--root={tmp_path}", *map(str, confs))
    assert done.returncode == 0, done.stderr
    users = {line.split(":")[0] for line in (tmp_path / "etc/passwd").read_text().splitlines()}
    groups = {
        line.split(":")[0]: set(filter(None, line.split(":")[3].split(",")))
        for line in (tmp_path / "etc/group").read_text().splitlines()
    }
    for unit in UNITS:
        settings = _settings(unit)
        for user in settings.get("User", []):
            assert user in users, f"{unit}: User={user} is created by no sysusers.d file"
        for group in settings.get("Group", []):
            assert group in groups, f"{unit}: Group={group} is created by no sysusers.d file"
        for line in settings.get("SupplementaryGroups", []):
            for group in line.split():
                assert group in groups, f"{unit}: group {group} is created by no sysusers.d file"
    # The kiosk UI opens the agent's socket directory through group burnstand.
    assert "burnstand-kiosk" in groups["burnstand"]
    assert {"burnstand"} <= groups["cdrom"] & groups["disk"] & groups["gpio"]


@pytest.mark.parametrize("drop_in", sorted(p.name for p in (UNITS_DIR / "drop-ins").glob("*.conf")))
def test_documented_drop_in_verifies_on_the_coordinator(image_root: Path, drop_in: str) -> None:
    tool = _tool("systemd-analyze")
    target = image_root / "etc/systemd/system/burnstand-coordinator.service.d"
    target.mkdir(parents=True, exist_ok=True)
    installed = target / drop_in
    shutil.copy(UNITS_DIR / "drop-ins" / drop_in, installed)
    try:
        done = _run(tool, "verify", f"--root={image_root}", "burnstand-coordinator.service")
    finally:
        installed.unlink()
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
