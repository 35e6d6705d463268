"""The system disk, told from real loop devices with real partition tables and a mount table."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from appliance.drives.systemdisk import PartitionTarget, SystemDisk, refuse_system_target

if TYPE_CHECKING:
    from tests.appliance.conftest import LoopFactory

MiB = 1024 * 1024


def mountinfo_with(tmp_path: Path, dev: str, mountpoint: str) -> Path:
    """A mount table (the /proc/self/mountinfo format) where `dev` is mounted at `mountpoint`."""
    rdev = os.stat(dev).st_rdev
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
        f"29 1 {os.major(rdev)}:{os.minor(rdev)} / {mountpoint} rw,relatime - ext4 {dev} rw\n"
    )
    return info


def test_every_partition_of_the_system_disk_is_refused_by_name(
    tmp_path: Path, loop_devices: LoopFactory
):
    system = loop_devices(16 * MiB, partitions=2)
    info = mountinfo_with(tmp_path, system.part(2), "/")  # p2 is the root filesystem
    said = f"{system.part(1)} is a partition of {system.path}, which holds / — the system"
    with pytest.raises(SystemDisk, match=f"^{said} this kiosk runs on$"):
        refuse_system_target(system.part(1), partition_ok=True, mountinfo=info)
    with pytest.raises(SystemDisk, match=f"^{system.path} holds / — the system"):
        refuse_system_target(system.path, mountinfo=info)
    with pytest.raises(SystemDisk):
        refuse_system_target(system.part(2), partition_ok=True, mountinfo=info)


def test_partitions_of_other_disks_need_partition_ok(tmp_path: Path, loop_devices: LoopFactory):
    system = loop_devices(16 * MiB, partitions=2)
    other = loop_devices(16 * MiB, partitions=2)
    info = mountinfo_with(tmp_path, system.part(1), "/boot/firmware")
    with pytest.raises(PartitionTarget, match="--partition-ok"):
        refuse_system_target(other.part(1), mountinfo=info)
    refuse_system_target(other.part(1), partition_ok=True, mountinfo=info)
    refuse_system_target(other.path, mountinfo=info)  # a whole other disk is fine
