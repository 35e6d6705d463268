"""Issue 23 case 9: the agent's user cannot open the disk the kiosk runs from for writing.

A loop device stands in for the system card. Like every disk udev makes it `root:disk 0660`, so
a process with the agent's credentials (an unprivileged user in group `disk`) can write it; after
`burnstand-system-disk.service`'s step it is root-only and the same open fails with EACCES, while
another disk stays writable.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.sysdisk import protect_nodes, udev_rule

if TYPE_CHECKING:
    from tests.appliance.conftest import LoopFactory

MiB = 1024 * 1024

DISK_GID = 6  # Debian's `disk` group

OPEN_FOR_WRITING = "import os, sys; os.close(os.open(sys.argv[1], os.O_WRONLY)); print('opened')"


def _as_agent(node: str) -> subprocess.CompletedProcess[str]:
    """Open ``node`` for writing as an unprivileged user in group disk, as the agent runs."""
    return subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            f"--groups={DISK_GID}",
            "--inh-caps=-all",
            sys.executable,
            "-c",
            OPEN_FOR_WRITING,
            node,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _like_udev(node: str) -> None:
    os.chown(node, 0, DISK_GID)
    os.chmod(node, 0o660)


def test_agent_user_cannot_open_the_system_disk_for_writing(loop_devices: LoopFactory) -> None:
    system, stick = loop_devices(4 * MiB), loop_devices(4 * MiB)
    for dev in (system, stick):
        _like_udev(dev.path)
    assert _as_agent(system.path).stdout.strip() == "opened"  # the danger, before the step
    protect_nodes([Path(system.path)])
    refused = _as_agent(system.path)
    assert refused.returncode != 0
    assert "PermissionError" in refused.stderr
    assert _as_agent(stick.path).stdout.strip() == "opened"  # targets stay writable


def test_udev_rule_names_each_system_disk_and_its_partitions() -> None:
    rule = udev_rule({"mmcblk0", "sda"})
    assert 'KERNELS=="mmcblk0", OWNER="root", GROUP="root", MODE="0600"' in rule
    assert 'KERNELS=="sda"' in rule
    assert rule.count("SUBSYSTEM==") == 2
