"""Which disk this kiosk runs on, so nothing ever writes to it.

Discovery never offers the system disk, but a target typed on the command line does not go
through discovery. `refuse_system_target` checks any block device path against the mount table:
the whole disk that holds `/`, `/boot` (and the firmware and EFI partitions) is refused, and so
is every partition on it, by name (on a Pi, `/dev/mmcblk0p1` is the boot partition of the card
the system runs from). A partition of any other disk is written only when asked for explicitly.
Only the mount table and sysfs are read: no udev needed.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from appliance.drives.base import BurnError

log = logging.getLogger(__name__)

MOUNTINFO = Path("/proc/self/mountinfo")
SYSTEM_MOUNTPOINTS = ("/", "/boot", "/boot/firmware", "/boot/efi")
SYS_DEV_BLOCK = Path("/sys/dev/block")


class SystemDisk(BurnError):
    """The target is the disk (or a partition of the disk) this kiosk runs on."""

    code = "system-disk"


class PartitionTarget(BurnError):
    """The target is a partition; images are written to whole disks unless asked otherwise."""

    code = "partition"


@dataclass(frozen=True, slots=True)
class Mount:
    dev: tuple[int, int]
    source: str
    mountpoint: str


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def read_mounts(mountinfo: Path = MOUNTINFO) -> list[Mount]:
    """Parse /proc/self/mountinfo: device numbers, mount source and mount point of each mount."""
    mounts: list[Mount] = []
    try:
        text = mountinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        log.warning("cannot read mount table path=%s", mountinfo)
        return []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        major, _, minor = fields[2].partition(":")
        try:
            dev = (int(major), int(minor))
        except ValueError:
            continue
        mounts.append(Mount(dev, _unescape(tail[1]), _unescape(fields[4])))
    return mounts


def _sysfs_node(dev: tuple[int, int]) -> Path | None:
    node = SYS_DEV_BLOCK / f"{dev[0]}:{dev[1]}"
    try:
        return node.resolve(strict=True)
    except OSError:
        return None


def whole_disk(dev: tuple[int, int]) -> tuple[str, bool] | None:
    """(kernel name of the whole disk, whether `dev` is a partition of it), from sysfs."""
    node = _sysfs_node(dev)
    if node is None:
        return None
    if (node / "partition").exists():
        return node.parent.name, True
    return node.name, False


def _device_numbers(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISBLK(st.st_mode):
        return None
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def system_disks(
    mountinfo: Path = MOUNTINFO, mountpoints: tuple[str, ...] = SYSTEM_MOUNTPOINTS
) -> dict[str, str]:
    """Whole-disk kernel name -> the system mount point it holds (the first one found)."""
    disks: dict[str, str] = {}
    for m in read_mounts(mountinfo):
        if m.mountpoint not in mountpoints:
            continue
        dev: tuple[int, int] | None = m.dev if m.dev[0] != 0 else None
        if dev is None and m.source.startswith("/dev/"):
            dev = _device_numbers(os.path.realpath(m.source))
        found = None if dev is None else whole_disk(dev)
        if found is not None:
            disks.setdefault(found[0], m.mountpoint)
    return disks


def refuse_system_target(
    path: str, *, partition_ok: bool = False, mountinfo: Path = MOUNTINFO
) -> None:
    """Raise `SystemDisk` if block device `path` is on the disk that holds the running system,
    and `PartitionTarget` if it is a partition of another disk and `partition_ok` is not set."""
    dev = _device_numbers(os.path.realpath(path))
    if dev is None:
        return  # not a block device (yet): opening it will say what is wrong
    found = whole_disk(dev)
    if found is None:
        return
    disk, is_partition = found
    held = system_disks(mountinfo).get(disk)
    if held is not None:
        if is_partition:
            raise SystemDisk(
                f"{path} is a partition of /dev/{disk}, which holds {held} — the system this"
                " kiosk runs on"
            )
        raise SystemDisk(f"{path} holds {held} — the system this kiosk runs on")
    if is_partition and not partition_ok:
        raise PartitionTarget(
            f"{path} is a partition of /dev/{disk}; burn the whole disk /dev/{disk}, or pass"
            " --partition-ok to write the image into this partition"
        )
