"""Keep the kiosk's own system disk out of the agent's reach, not only out of its discovery.

The agent runs in group `disk` so it can write USB sticks and SD cards, and its unit allows
`block-mmc` and `block-sd` devices, the same kinds the Pi boots from. Discovery never offers the
system disk, but a bug or a stolen credential driving the agent should not be one check away from
overwriting it. `burnstand-system-disk.service` runs this module as root before the agent starts:
it finds the disks that hold `/` and `/boot` (as discovery does), writes a udev rule that gives
them and their partitions to root:root mode 0600 (so a re-plug or a `change` event keeps it),
and applies the same owner and mode to their device nodes at once. The agent's user then gets
EACCES when it tries to open them for writing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import pyudev

from appliance.drives.discovery import Discovery

log = logging.getLogger(__name__)

RULE_PATH = Path("/run/udev/rules.d/59-burnstand-system-disk.rules")


def udev_rule(disks: Iterable[str]) -> str:
    """udev rules giving each disk (and, through KERNELS, each of its partitions) to root."""
    lines = ["# Written by burnstand-system-disk.service: the disks this kiosk runs from."]
    for disk in sorted(disks):
        lines.append(
            f'SUBSYSTEM=="block", KERNELS=="{disk}", OWNER="root", GROUP="root", MODE="0600"'
        )
    return "\n".join(lines) + "\n"


def device_nodes(context: pyudev.Context, disks: set[str]) -> list[Path]:
    """The device nodes of ``disks`` and of their partitions."""
    out = []
    for dev in context.list_devices(subsystem="block"):
        whole = dev if dev.device_type == "disk" else dev.find_parent("block", "disk")
        if whole is not None and whole.sys_name in disks and dev.device_node:
            out.append(Path(dev.device_node))
    return sorted(out)


def protect_nodes(nodes: Iterable[Path]) -> None:
    """Give each node to root:root with mode 0600 (what the udev rule does on the next event)."""
    for node in nodes:
        os.chown(node, 0, 0)
        os.chmod(node, 0o600)
        log.info("system disk protected", extra={"node": str(node)})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m appliance.sysdisk",
        description="Make the disks this kiosk runs from root-only (udev rule + device nodes).",
    )
    parser.add_argument("--rule", type=Path, default=RULE_PATH, help="where to write the rule")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    discovery = Discovery(mac="00:00:00:00:00:00")
    disks = discovery.system_disks()
    if not disks:
        print("burnstand-system-disk: no system disk found; nothing to protect", file=sys.stderr)
        return 0
    args.rule.parent.mkdir(parents=True, exist_ok=True)
    args.rule.write_text(udev_rule(disks), encoding="utf-8")
    protect_nodes(device_nodes(discovery.context, disks))
    print(f"burnstand-system-disk: protected {', '.join(sorted(disks))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
