"""`make rootfs-test`: the appliance root filesystem built by image-build/ boots and comes up.

Not collected by the default run (the file name does not start with `test_`): it takes minutes
(mmdebstrap, pip inside the chroot, a systemd-nspawn boot). `make rootfs-test` runs it by name:
`pytest tests/system/image_check.py`. image-build/image-test.sh does the work and prints one
PASS/FAIL line per check made from inside the booted container: the units active, the agent's
control socket, the kiosk page, and the first-boot enrollment from code to linked kiosk.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Checks the probe must have made and passed: a probe that silently skips one fails here too.
REQUIRED = (
    *(f"active:burnstand-{u}" for u in ("firstboot", "coordinator", "agent", "kiosk")),
    "notify-ready",
    "notify-watchdog",
    "enrollment-code",
    "agent-config-enrollment",
    "kiosk-sees-code",
    "coordinator-health",
    "agent-control-socket",
    "kiosk-page",
    "enrollment-pending",
    "enrollment-accepted",
    "link-online-after-accept",
    "credential-saved",
    "kiosk-hides-spent-code",
    *(f"still-active:burnstand-{u}" for u in ("coordinator", "agent", "kiosk")),
)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_built_rootfs_boots_and_burnstand_units_come_up(tmp_path: Path) -> None:
    for tool, package in (("mmdebstrap", "mmdebstrap"), ("systemd-nspawn", "systemd-container")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian package {package})")
    done = subprocess.run(
        ["bash", str(REPO / "image-build/image-test.sh"), str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=1700,
        check=False,
    )
    report = done.stdout
    assert report.strip(), done.stderr[-2000:]
    failed = [line for line in report.splitlines() if line.startswith("FAIL")]
    assert not failed, report + done.stderr[-2000:]
    passed = {line.split()[1] for line in report.splitlines() if line.startswith("PASS ")}
    missing = [name for name in REQUIRED if name not in passed]
    assert not missing, f"the probe did not report {missing}:\n{report}"
    assert done.returncode == 0, done.stderr[-2000:]
