"""From a target as an operator types it (`/dev/sdb`, `/dev/sr0`, `stdio:PATH`) to a drive backend.

Both `burnstand-agent burn` (burning by itself) and the agent (running a burn the CLI handed
it over the control socket) turn `--target` strings into drives the same way, so a target is
refused with the same sentence wherever the burn runs: optical for `/dev/srN` and `stdio:`,
block for the rest, never the system disk, and a partition only when asked for.
"""

from __future__ import annotations

import os
import re
import stat

from appliance.drives.base import BurnError, Drive

_BLOCK_PATTERNS = (r"/dev/sd[a-z]+", r"/dev/mmcblk\d+", r"/dev/loop\d+", r"/dev/nvme\d+n\d+")


class TargetRefused(Exception):
    """A target that cannot be burned: missing, not a device, or the system disk."""


def is_optical(target: str) -> bool:
    return target.startswith("stdio:") or re.fullmatch(r"/dev/sr\d+", target) is not None


def make_drive(target: str, *, partition_ok: bool = False) -> Drive:
    """The backend for a target: optical for /dev/srN and stdio:, block for the rest. A block
    target on the system disk is refused, and a partition unless `partition_ok`."""
    from appliance.drives.uid import drive_uid

    if is_optical(target):
        try:
            from appliance.drives.optical import OpticalDrive
        except ImportError as exc:
            raise TargetRefused(f"optical targets are not available here ({exc})") from exc
        return OpticalDrive(target, drive_uid(target))
    real = os.path.realpath(target)
    if not any(re.fullmatch(p, real) for p in _BLOCK_PATTERNS):
        try:
            is_block = stat.S_ISBLK(os.stat(real).st_mode)
        except OSError as exc:
            raise TargetRefused(f"no such target {target}: {exc.strerror}") from exc
        if not is_block:
            raise TargetRefused(f"{target} is not a block device, optical drive or stdio:PATH")
    from appliance.drives.block import BlockDrive
    from appliance.drives.systemdisk import refuse_system_target

    try:
        refuse_system_target(target, partition_ok=partition_ok)
    except BurnError as exc:
        raise TargetRefused(f"{exc.code}: {exc}") from exc
    return BlockDrive(target, drive_uid(target))
