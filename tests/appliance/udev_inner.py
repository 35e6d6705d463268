"""Discovery against fake udev devices; runs only under umockdev-wrapper (see test_discovery.py).

The file name does not match test_*.py, so the normal run never collects it: outside the wrapper
pyudev would see the real machine, and UMockdev.Testbed would not intercept anything.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import gi
import pytest

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

from appliance.drives.base import DriveKind  # noqa: E402
from appliance.drives.discovery import (  # noqa: E402
    Discovery,
    DriveAdded,
    DriveEvent,
    DriveRemoved,
    DriveWatcher,
    MediaChanged,
    MediaState,
    list_drives,
)

MAC = "dc:a6:32:01:02:03"


def _kv(d: dict[str, str]) -> list[str]:
    return [x for pair in d.items() for x in pair]


def add(
    tb: UMockdev.Testbed,
    name: str,
    parent: str | None,
    attrs: dict[str, str],
    props: dict[str, str],
) -> str:
    props = {"DEVNAME": f"/dev/{name}", "DEVTYPE": "disk", **props}
    return str(tb.add_device("block", name, parent, _kv(attrs), _kv(props)))


@pytest.fixture
def testbed() -> UMockdev.Testbed:
    tb = UMockdev.Testbed.new()
    # A burner with a blank DVD-R in it.
    add(
        tb,
        "sr0",
        None,
        {"removable": "1", "size": "0"},
        {
            "ID_CDROM": "1",
            "ID_CDROM_CD_R": "1",
            "ID_CDROM_DVD_R": "1",
            "ID_CDROM_MEDIA": "1",
            "ID_CDROM_MEDIA_STATE": "blank",
            "ID_BUS": "ata",
            "ID_MODEL": "DVD_RW_DRU-870S",
            "ID_VENDOR": "SONY",
            "MAJOR": "11",
            "MINOR": "0",
        },
    )
    # The system disk: a USB SSD the Pi boots from, removable=1 like a stick. Never offered.
    sda = add(
        tb,
        "sda",
        None,
        {"removable": "1", "size": "62500000"},
        {"ID_BUS": "usb", "MAJOR": "8", "MINOR": "0"},
    )
    add(tb, "sda1", sda, {"size": "62000000"}, {"DEVTYPE": "partition", "MAJOR": "8", "MINOR": "1"})
    # A free USB stick.
    add(
        tb,
        "sdb",
        None,
        {"removable": "1", "size": "15633408"},
        {"ID_BUS": "usb", "ID_MODEL": "Cruzer_Blade", "MAJOR": "8", "MINOR": "16"},
    )
    # A USB stick whose partition is mounted: busy, not offered.
    sdc = add(
        tb,
        "sdc",
        None,
        {"removable": "1", "size": "15633408"},
        {"ID_BUS": "usb", "MAJOR": "8", "MINOR": "32"},
    )
    add(
        tb, "sdc1", sdc, {"size": "15600000"}, {"DEVTYPE": "partition", "MAJOR": "8", "MINOR": "33"}
    )
    # A fixed USB disk (removable=0): not offered.
    add(
        tb,
        "sdd",
        None,
        {"removable": "0", "size": "1953525168"},
        {"ID_BUS": "usb", "MAJOR": "8", "MINOR": "48"},
    )
    # A CD-ROM reader that cannot write: not a burner.
    add(
        tb,
        "sr1",
        None,
        {"removable": "1", "size": "0"},
        {"ID_CDROM": "1", "MAJOR": "11", "MINOR": "1"},
    )
    return tb


def mountinfo(tmp_path: Path, root_dev: str = "8:1", root_src: str = "/dev/sda1") -> Path:
    path = tmp_path / "mountinfo"
    path.write_text(
        f"22 1 {root_dev} / / rw,relatime shared:1 - ext4 {root_src} rw\n"
        "25 22 0:21 / /proc rw - proc proc rw\n"
        "31 22 8:33 / /media/my\\040stick rw,nosuid - vfat /dev/sdc1 rw\n"
    )
    return path


def uid(path: str) -> str:
    return hashlib.md5((MAC + path).encode(), usedforsecurity=False).hexdigest()


def test_lists_burner_and_free_stick_never_system_disk(
    testbed: UMockdev.Testbed, tmp_path: Path
) -> None:
    drives = {d.path: d for d in list_drives(mac=MAC, mountinfo=mountinfo(tmp_path))}
    assert sorted(drives) == ["/dev/sdb", "/dev/sr0"]
    sr0, sdb = drives["/dev/sr0"], drives["/dev/sdb"]
    assert sr0.kind is DriveKind.OPTICAL
    assert sr0.capabilities == frozenset({"CDR", "DVDR"})
    assert sr0.model == "SONY DVD RW DRU-870S"
    assert sr0.uid == uid("/dev/sr0")
    assert sdb.kind is DriveKind.BLOCK
    assert sdb.capacity == 15633408 * 512
    assert sdb.uid == uid("/dev/sdb")


def test_system_disk_found_by_source_name_when_numbers_are_anonymous(
    testbed: UMockdev.Testbed, tmp_path: Path
) -> None:
    # Overlay-style root: device number 0:x says nothing, the mount source names the partition.
    info = mountinfo(tmp_path, root_dev="0:30", root_src="/dev/sda1")
    paths = [d.path for d in list_drives(mac=MAC, mountinfo=info)]
    assert "/dev/sda" not in paths


def test_system_disk_found_by_number_when_source_is_dev_root(
    testbed: UMockdev.Testbed, tmp_path: Path
) -> None:
    # Raspberry Pi OS shows the root file system as /dev/root.
    info = mountinfo(tmp_path, root_dev="8:1", root_src="/dev/root")
    paths = [d.path for d in list_drives(mac=MAC, mountinfo=info)]
    assert "/dev/sda" not in paths


def test_system_disk_would_be_offered_without_the_root_mount(
    testbed: UMockdev.Testbed, tmp_path: Path
) -> None:
    # Proves the fixture's sda looks exactly like a stick: only the boot check keeps it out.
    info = tmp_path / "mountinfo"
    info.write_text("25 22 0:21 / /proc rw - proc proc rw\n")
    assert "/dev/sda" in [d.path for d in list_drives(mac=MAC, mountinfo=info)]


def test_allow_and_deny_lists(testbed: UMockdev.Testbed, tmp_path: Path) -> None:
    info = mountinfo(tmp_path)
    assert [d.path for d in list_drives(mac=MAC, mountinfo=info, deny=["/dev/sdb"])] == ["/dev/sr0"]
    assert [d.path for d in list_drives(mac=MAC, mountinfo=info, allow=["/dev/sdb"])] == [
        "/dev/sdb"
    ]
    # Allowing the system disk still never offers it.
    assert list_drives(mac=MAC, mountinfo=info, allow=["/dev/sda"]) == []


def test_sd_card_in_mmc_slot_is_offered(testbed: UMockdev.Testbed, tmp_path: Path) -> None:
    mmc = str(testbed.add_device("mmc", "mmc0:aaaa", None, ["type", "SD"], []))
    add(
        testbed,
        "mmcblk0",
        mmc,
        {"removable": "0", "size": "31116288"},
        {"MAJOR": "179", "MINOR": "0"},
    )
    emmc = str(testbed.add_device("mmc", "mmc1:0001", None, ["type", "MMC"], []))
    add(
        testbed,
        "mmcblk1",
        emmc,
        {"removable": "0", "size": "31116288"},
        {"MAJOR": "179", "MINOR": "32"},
    )
    paths = [d.path for d in list_drives(mac=MAC, mountinfo=mountinfo(tmp_path))]
    assert "/dev/mmcblk0" in paths
    assert "/dev/mmcblk1" not in paths  # soldered eMMC


async def _next(events: AsyncIterator[DriveEvent]) -> DriveEvent:
    return await asyncio.wait_for(anext(events), timeout=10)


async def test_watcher_follows_add_change_remove(testbed: UMockdev.Testbed, tmp_path: Path) -> None:
    watcher = DriveWatcher(Discovery(mac=MAC, mountinfo=mountinfo(tmp_path)))
    events = watcher.events(initial=True)
    try:
        first = [await _next(events), await _next(events)]
        assert all(isinstance(e, DriveAdded) for e in first)
        assert {e.drive.path for e in first} == {"/dev/sdb", "/dev/sr0"}
        sr0 = next(e for e in first if e.drive.path == "/dev/sr0")
        assert isinstance(sr0, DriveAdded)
        assert sr0.media is MediaState.BLANK

        # Plug a stick in (umockdev sends the "add" uevent itself).
        sde = add(
            testbed,
            "sde",
            None,
            {"removable": "1", "size": "7816704"},
            {"ID_BUS": "usb", "MAJOR": "8", "MINOR": "64"},
        )
        ev = await _next(events)
        assert isinstance(ev, DriveAdded)
        assert ev.drive.path == "/dev/sde"
        assert ev.drive.capacity == 7816704 * 512

        # The burned disc is now complete.
        syspath = "/sys/devices/sr0"
        testbed.set_property(syspath, "ID_CDROM_MEDIA_STATE", "complete")
        testbed.set_property(syspath, "DISK_MEDIA_CHANGE", "1")
        testbed.uevent(syspath, "change")
        ev = await _next(events)
        assert isinstance(ev, MediaChanged)
        assert (ev.drive.path, ev.media) == ("/dev/sr0", MediaState.COMPLETE)

        # Disc taken out.
        testbed.set_property(syspath, "ID_CDROM_MEDIA", "0")
        testbed.uevent(syspath, "change")
        ev = await _next(events)
        assert isinstance(ev, MediaChanged)
        assert ev.media is MediaState.NONE

        # Stick pulled.
        testbed.uevent(sde, "remove")
        testbed.remove_device(sde)
        ev = await _next(events)
        assert isinstance(ev, DriveRemoved)
        assert ev.drive.path == "/dev/sde"
        assert "/dev/sde" not in watcher.known

        # A partition of the system disk changing yields nothing; the next event is the stick's.
        testbed.uevent("/sys/devices/sda/sda1", "change")
        testbed.uevent("/sys/devices/sdb", "remove")
        ev = await _next(events)
        assert isinstance(ev, DriveRemoved)
        assert ev.drive.path == "/dev/sdb"
    finally:
        await events.aclose()
