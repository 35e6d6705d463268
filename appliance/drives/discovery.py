"""Find the burners and write targets of this kiosk with udev, and follow them as they come and go.

Two kinds of device are offered: optical drives (udev's `ID_CDROM*` properties say which media
they write and what disc is loaded) and removable block targets (USB sticks, SD cards: `ID_BUS=usb`
or an mmc parent, `removable=1`, holding media, none of their partitions mounted). The disk that
holds `/` or `/boot` is never offered, whatever udev says about it: it is resolved from the mount
table (device numbers first, the mount source as a fallback for `/dev/root`-style names) and the
sysfs parent of the partition. An optional allow list and a deny list of device paths narrow the
choice further. `DriveWatcher.events()` turns udev add/change/remove uevents into typed
`DriveAdded` / `DriveRemoved` / `MediaChanged` events; the netlink socket sits in the asyncio
loop's reader set, so no thread polls.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
from collections.abc import AsyncIterator, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import pyudev

from appliance.drives.base import DriveInfo, DriveKind
from appliance.drives.systemdisk import MOUNTINFO, SYSTEM_MOUNTPOINTS, Mount, read_mounts
from appliance.drives.uid import drive_uid, primary_mac

log = logging.getLogger(__name__)


# udev property -> capability reported to the coordinator (seed 004's CAP values).
_OPTICAL_CAPS = (
    ("ID_CDROM_CD_R", "CDR"),
    ("ID_CDROM_DVD_R", "DVDR"),
    ("ID_CDROM_DVD_PLUS_R", "DVDR"),
    ("ID_CDROM_BD_R", "BDR"),
)


class MediaState(enum.StrEnum):
    NONE = "none"  # no disc / no card
    BLANK = "blank"
    APPENDABLE = "appendable"
    COMPLETE = "complete"  # a finished disc: cannot be written again
    PRESENT = "present"  # a block target's medium, or a disc udev says nothing more about


@dataclass(frozen=True, slots=True)
class DriveAdded:
    drive: DriveInfo
    media: MediaState


@dataclass(frozen=True, slots=True)
class DriveRemoved:
    drive: DriveInfo


@dataclass(frozen=True, slots=True)
class MediaChanged:
    drive: DriveInfo
    media: MediaState


DriveEvent = DriveAdded | DriveRemoved | MediaChanged


def _prop(device: pyudev.Device, key: str) -> str:
    value = device.properties.get(key)
    return str(value) if value is not None else ""


def _attr(device: pyudev.Device, key: str) -> str:
    try:
        value = device.attributes.get(key)
    except (OSError, KeyError):
        return ""
    if value is None:
        return ""
    return value.decode("ascii", "replace").strip() if isinstance(value, bytes) else str(value)


def _devnum(device: pyudev.Device) -> tuple[int, int] | None:
    try:
        return int(_prop(device, "MAJOR")), int(_prop(device, "MINOR"))
    except ValueError:
        return None


def _whole_disk(device: pyudev.Device) -> pyudev.Device:
    if device.device_type == "partition" and device.parent is not None:
        return device.parent
    return device


def optical_media(device: pyudev.Device) -> MediaState:
    """What disc udev's cdrom_id found in an optical drive."""
    if _prop(device, "ID_CDROM_MEDIA") != "1":
        return MediaState.NONE
    state = _prop(device, "ID_CDROM_MEDIA_STATE")
    try:
        return MediaState(state)
    except ValueError:
        return MediaState.PRESENT


class Discovery:
    """Classifies udev block devices into burners and targets, with the system disk kept out."""

    def __init__(
        self,
        *,
        context: pyudev.Context | None = None,
        mac: str | None = None,
        allow: Collection[str] | None = None,
        deny: Collection[str] = (),
        mountinfo: Path = MOUNTINFO,
        system_mountpoints: Iterable[str] = SYSTEM_MOUNTPOINTS,
    ) -> None:
        self.context = context if context is not None else pyudev.Context()
        self._mac = mac
        self._allow = None if allow is None else {os.path.realpath(p) for p in allow}
        self._deny = {os.path.realpath(p) for p in deny}
        self._mountinfo = mountinfo
        self._system_mountpoints = tuple(system_mountpoints)

    @property
    def mac(self) -> str:
        if self._mac is None:
            self._mac = primary_mac()
        return self._mac

    def _blocks(self) -> list[pyudev.Device]:
        return list(self.context.list_devices(subsystem="block"))

    def system_disks(self) -> set[str]:
        """sys_names (``mmcblk0``, ``sda``) of the whole disks this machine runs from."""
        return self._system_disks(self._blocks(), read_mounts(self._mountinfo))

    def _system_disks(self, blocks: list[pyudev.Device], mounts: list[Mount]) -> set[str]:
        """sys_names of the whole disks that hold /, /boot and friends."""
        wanted = [m for m in mounts if m.mountpoint in self._system_mountpoints]
        numbers = {m.dev for m in wanted if m.dev[0] != 0}
        names = {os.path.basename(os.path.realpath(m.source)) for m in wanted}
        disks = set()
        for dev in blocks:
            if _devnum(dev) in numbers or dev.sys_name in names:
                disks.add(_whole_disk(dev).sys_name)
        return disks

    @staticmethod
    def _mounted_disks(blocks: list[pyudev.Device], mounts: list[Mount]) -> set[str]:
        numbers = {m.dev for m in mounts}
        names = {os.path.basename(os.path.realpath(m.source)) for m in mounts}
        return {
            _whole_disk(dev).sys_name
            for dev in blocks
            if _devnum(dev) in numbers or dev.sys_name in names
        }

    def _offered(self, path: str) -> bool:
        real = os.path.realpath(path)
        if path in self._deny or real in self._deny:
            return False
        return self._allow is None or path in self._allow or real in self._allow

    def _classify(
        self, device: pyudev.Device, system: set[str], mounted: set[str]
    ) -> tuple[DriveInfo, MediaState] | None:
        if device.subsystem != "block" or device.device_type != "disk":
            return None
        path = device.device_node
        if not path or device.sys_name in system or not self._offered(path):
            return None
        model = " ".join(
            p for p in (_prop(device, "ID_VENDOR"), _prop(device, "ID_MODEL")) if p
        ).replace("_", " ")
        if _prop(device, "ID_CDROM") == "1":
            caps = frozenset(cap for key, cap in _OPTICAL_CAPS if _prop(device, key) == "1")
            if not caps:
                return None  # a reader, not a burner
            info = DriveInfo(
                uid=drive_uid(path, self.mac),
                path=path,
                kind=DriveKind.OPTICAL,
                capabilities=caps,
                model=model,
                block_size=2048,
            )
            return info, optical_media(device)
        if device.sys_name in mounted or not self._removable(device):
            return None
        try:
            sectors = int(_attr(device, "size") or "0")
        except ValueError:
            sectors = 0
        if sectors <= 0:
            return None  # a card reader with no card
        try:
            block = int(_attr(device, "queue/logical_block_size") or "512")
        except ValueError:
            block = 512
        info = DriveInfo(
            uid=drive_uid(path, self.mac),
            path=path,
            kind=DriveKind.BLOCK,
            capabilities=frozenset({"BLOCK"}),
            capacity=sectors * 512,  # sysfs counts 512-byte units whatever the block size
            model=model,
            block_size=block,
        )
        return info, MediaState.PRESENT

    @staticmethod
    def _removable(device: pyudev.Device) -> bool:
        removable = _attr(device, "removable") == "1"
        if _prop(device, "ID_BUS") == "usb":
            return removable
        mmc = device.find_parent("mmc")
        if mmc is not None:
            # SD slots often report removable=0; an SD card is removable, soldered eMMC is not.
            return removable or _attr(mmc, "type") == "SD"
        return False

    def scan(self) -> list[tuple[DriveInfo, MediaState]]:
        """Every drive on offer with its media, sorted by path (blocking: sysfs reads)."""
        blocks = self._blocks()
        mounts = read_mounts(self._mountinfo)
        system = self._system_disks(blocks, mounts)
        mounted = self._mounted_disks(blocks, mounts)
        found = [r for dev in blocks if (r := self._classify(dev, system, mounted))]
        return sorted(found, key=lambda r: r[0].path)

    def evaluate(self, device: pyudev.Device) -> tuple[DriveInfo, MediaState] | None:
        """Classify one device as of now (used on every uevent)."""
        blocks = self._blocks()
        mounts = read_mounts(self._mountinfo)
        return self._classify(
            device, self._system_disks(blocks, mounts), self._mounted_disks(blocks, mounts)
        )

    def list_drives(self) -> list[DriveInfo]:
        return [info for info, _ in self.scan()]


def list_drives(
    *,
    mac: str | None = None,
    allow: Collection[str] | None = None,
    deny: Collection[str] = (),
    mountinfo: Path = MOUNTINFO,
) -> list[DriveInfo]:
    """Burners and targets on offer now (see `Discovery` for the rules)."""
    return Discovery(mac=mac, allow=allow, deny=deny, mountinfo=mountinfo).list_drives()


class DriveWatcher:
    """Follows udev and yields typed drive events; one per `events()` iteration."""

    def __init__(self, discovery: Discovery, *, max_queue: int = 1024) -> None:
        self.discovery = discovery
        self._max_queue = max_queue
        self.known: dict[str, tuple[DriveInfo, MediaState]] = {}

    async def events(self, *, initial: bool = True) -> AsyncIterator[DriveEvent]:
        """Yield DriveAdded for what is there (if `initial`), then changes as they happen."""
        loop = asyncio.get_running_loop()
        monitor = pyudev.Monitor.from_netlink(self.discovery.context)
        monitor.filter_by("block")
        monitor.start()
        queue: asyncio.Queue[pyudev.Device] = asyncio.Queue(self._max_queue)

        def readable() -> None:
            # Drain what is there without blocking; bounded so one burst cannot starve the loop.
            for _ in range(256):
                device = monitor.poll(timeout=0)
                if device is None:
                    return
                if queue.full():
                    log.warning("udev event dropped: queue full device=%s", device.sys_name)
                    return
                queue.put_nowait(device)

        fd = monitor.fileno()
        loop.add_reader(fd, readable)
        try:
            # Subscribed before the snapshot, so nothing that happens in between is missed.
            snapshot = await asyncio.to_thread(self.discovery.scan)
            self.known = {info.path: (info, media) for info, media in snapshot}
            if initial:
                for info, media in snapshot:
                    yield DriveAdded(info, media)
            while True:
                device = await queue.get()
                for event in await asyncio.to_thread(self._translate, device):
                    yield event
        finally:
            loop.remove_reader(fd)

    def _translate(self, device: pyudev.Device) -> list[DriveEvent]:
        action = device.action or "change"
        path = device.device_node or f"/dev/{device.sys_name}"
        before = self.known.get(path)
        now = None if action == "remove" else self.discovery.evaluate(device)
        if now is None:
            if before is None:
                return []
            del self.known[path]
            return [DriveRemoved(before[0])]
        self.known[path] = now
        if before is None:
            return [DriveAdded(*now)]
        media_changed = _prop(device, "DISK_MEDIA_CHANGE") == "1"
        if media_changed or now[1] != before[1] or now[0].capacity != before[0].capacity:
            return [MediaChanged(*now)]
        return []
