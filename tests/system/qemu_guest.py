"""The flashable kiosk image as a QEMU `virt` board sees it: the disk, its two partitions, the
kernel and initrd read from its FAT firmware partition, a boot with user-mode networking, the
serial console as the only window in while it runs, and its journal read from the ext4 root
once it is off.

Nothing is added to the image: the test's settings go where a user puts them, as
`burnstand-agent.toml` on the boot partition (written with mtools, as on a card reader). Every
wait is for a line on the console or a state of the coordinator, bounded by a deadline; when one
does not come, the error names the units that failed and carries the last console lines.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = {
    "qemu-system-aarch64": "qemu-system-arm",
    "mcopy": "mtools",
    "sfdisk": "fdisk",
    "debugfs": "e2fsprogs",
    "journalctl": "systemd",
    "xz": "xz-utils",
}
CONSOLE_TAIL = 50
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# The console is 80 columns: status lines name units, not descriptions, so no name is cut short;
# and once the serial getty's prompt is up systemd stops printing status there, so the journal is
# forwarded to the console too ("Started burnstand-agent.service" then still shows).
STATUS_NAMES = "systemd.status_unit_format=name systemd.journald.forward_to_console=1"
# Lines systemd prints for a unit that did not come up, on the console and in the journal.
FAILED_UNIT = re.compile(
    r"Failed to start (\S+)|(\S+\.service): Failed with result|\[FAILED\].* (\S+\.service)"
)


def missing_tools() -> list[str]:
    """The Debian packages to install before an image can be booted here."""
    return sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})


def image_name() -> str:
    """dist/'s file name for this checkout's version (as image-build/build-image.sh names it)."""
    text = (REPO / "pyproject.toml").read_text()
    found = re.search(r'^version = "([^"]+)"$', text, re.MULTILINE)
    assert found, "no version in pyproject.toml"
    return f"burnstand-kiosk-{found.group(1)}-arm64"


@dataclass(frozen=True)
class Partition:
    start: int  # bytes from the start of the disk
    size: int


def partitions(disk: Path) -> list[Partition]:
    """The disk's partition table, read with sfdisk (a file or a block device)."""
    out = subprocess.run(
        ["sfdisk", "--json", str(disk)], capture_output=True, text=True, check=True, timeout=60
    )
    table = json.loads(out.stdout)["partitiontable"]
    unit = int(table.get("sectorsize", 512))
    return [Partition(p["start"] * unit, p["size"] * unit) for p in table["partitions"]]


def unpack(img_xz: Path, disk: Path, grow_by: int = 0) -> None:
    """The .img.xz as a sparse raw disk, `grow_by` bytes larger than the image (a bigger card)."""
    with disk.open("wb") as out:
        subprocess.run(["xz", "-dc", str(img_xz)], stdout=out, check=True, timeout=1200)
    subprocess.run(["fallocate", "--dig-holes", str(disk)], check=True, timeout=600)
    if grow_by:
        with disk.open("r+b") as f:
            f.truncate(disk.stat().st_size + grow_by)


def fat(disk: Path) -> str:
    """mtools' name for the disk's first (firmware) partition."""
    return f"{disk}@@{partitions(disk)[0].start}"


def boot_files(disk: Path, into: Path) -> tuple[Path, Path, str]:
    """The kernel, initrd and kernel command line the Pi's firmware would load, from the FAT."""
    listing = subprocess.run(
        ["mdir", "-b", "-i", fat(disk), "::/"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    names = [n.removeprefix("::/") for n in listing]
    kernel = next(n for n in names if n.startswith("vmlinuz-"))
    initrd = next(n for n in names if n.startswith("initrd.img-"))
    into.mkdir(parents=True, exist_ok=True)
    for name in (kernel, initrd, "cmdline.txt", "config.txt"):
        subprocess.run(
            ["mcopy", "-n", "-i", fat(disk), f"::/{name}", str(into / name)],
            check=True,
            timeout=120,
        )
    config = (into / "config.txt").read_text()
    assert f"kernel={kernel}" in config, config
    assert f"initramfs {initrd}" in config, config
    return into / kernel, into / initrd, (into / "cmdline.txt").read_text().strip()


def put_on_boot_partition(disk: Path, name: str, text: str, scratch: Path) -> None:
    """Write a file to the FAT partition, as a user does on a card reader before first boot."""
    scratch.write_text(text)
    subprocess.run(
        ["mcopy", "-o", "-i", fat(disk), str(scratch), f"::/{name}"], check=True, timeout=60
    )


def virt_cmdline(pi_cmdline: str, extra: str = "") -> str:
    """The image's own command line with the Pi's consoles swapped for the virt board's UART."""
    kept = [arg for arg in pi_cmdline.split() if not arg.startswith("console=")]
    return " ".join(["console=ttyAMA0", *kept, extra]).strip()


class BootFailed(AssertionError):
    """A wait on the guest ran out; the message says which units failed and shows the console."""


class Guest:
    """One qemu-system-aarch64 `-M virt -cpu cortex-a72` run of a disk (file or block device)."""

    def __init__(self, disk: Path, work: Path, *, cmdline_extra: str = "") -> None:
        self.disk = disk
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.console = work / "console.log"
        # A socket path must fit in 108 bytes, which pytest's tmp_path may not.
        self.qmp_path = Path(tempfile.mkdtemp(prefix="bs-qmp-")) / "qmp.sock"
        kernel, initrd, cmdline = boot_files(disk, work / "boot")
        self.cmdline = virt_cmdline(cmdline, f"{STATUS_NAMES} {cmdline_extra}")
        self.argv = [
            "qemu-system-aarch64",
            *("-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "2048"),
            *("-kernel", str(kernel), "-initrd", str(initrd), "-append", self.cmdline),
            *("-drive", f"file={disk},format=raw,if=virtio,cache=unsafe"),
            # User-mode networking: the guest reaches the host's loopback as 10.0.2.2.
            *("-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0,romfile="),
            *("-display", "none", "-monitor", "none", "-no-reboot"),
            *("-serial", f"file:{self.console}"),
            *("-qmp", f"unix:{self.qmp_path},server=on,wait=off"),
        ]
        self.log = (work / "qemu.log").open("wb")
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT)
        self.started = time.monotonic()

    # ---- the console ------------------------------------------------------------------------

    def text(self) -> str:
        """The console so far, without the colours systemd's status lines carry."""
        raw = self.console.read_text(errors="replace") if self.console.exists() else ""
        return ANSI.sub("", raw)

    def failed_units(self, text: str | None = None) -> list[str]:
        found: list[str] = []
        for match in FAILED_UNIT.finditer(self.text() if text is None else text):
            unit = next(g for g in match.groups() if g)
            if unit not in found:
                found.append(unit)
        return found

    def report(self, what: str) -> str:
        lines = self.text().splitlines()[-CONSOLE_TAIL:]
        failed = ", ".join(self.failed_units()) or "none reported on the console"
        ended = "" if self.proc.poll() is None else f" (qemu exited with {self.proc.returncode})"
        return (
            f"{what}{ended}; failed units: {failed}\n"
            f"last {len(lines)} console lines ({self.console}):\n" + "\n".join(lines)
        )

    def wait_for(
        self, pattern: str, deadline: float, *, fail_on: Callable[[str], bool] | None = None
    ) -> re.Match[str]:
        """The first console match of `pattern`, waited for until `deadline` (monotonic)."""
        regex = re.compile(pattern)
        while True:
            text = self.text()
            found = regex.search(text)
            if found:
                return found
            if fail_on is not None and fail_on(text):
                raise BootFailed(self.report(f"the boot failed before /{pattern}/"))
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BootFailed(self.report(f"no /{pattern}/ on the console"))
            time.sleep(0.5)  # poll the console file: qemu gives no event for a new line

    def uptime(self) -> float:
        return time.monotonic() - self.started

    # ---- stopping ---------------------------------------------------------------------------

    def power_off(self, timeout: float = 300) -> None:
        """Press the board's power button (QMP) and wait for the guest to shut down cleanly."""
        if self.proc.poll() is None:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(30)
                s.connect(str(self.qmp_path))
                f = s.makefile("rwb")
                f.readline()  # greeting
                for cmd in ("qmp_capabilities", "system_powerdown"):
                    f.write(json.dumps({"execute": cmd}).encode() + b"\n")
                    f.flush()
                    f.readline()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BootFailed(self.report("the guest did not power off")) from None
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)
        self.log.close()
        shutil.rmtree(self.qmp_path.parent, ignore_errors=True)


def journal(disk: Path, into: Path, *args: str) -> str:
    """`journalctl` over the journal the guest left on the disk's ext4 root (read with debugfs)."""
    root = partitions(disk)[1]
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["debugfs", "-R", f"rdump /var/log/journal {into}", f"{disk}?offset={root.start}"],
        capture_output=True,
        check=True,
        timeout=300,
    )
    out = subprocess.run(
        ["journalctl", "--no-pager", "-D", str(into / "journal"), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    return out.stdout


def root_blocks(disk: Path) -> int:
    """The block count of the ext4 root, as the guest left it (grown on first boot)."""
    root = partitions(disk)[1]
    out = subprocess.run(
        ["debugfs", "-R", "stats", f"{disk}?offset={root.start}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    found = re.search(r"^Block count:\s+(\d+)", out, re.MULTILINE)
    assert found, out[:2000]
    return int(found.group(1))
