"""Stable drive identities for the burn protocol: uid = md5(MAC + device path).

Seed 004 asks each burner to identify itself with "MAC+device path md5 hashed", so that one
computer can host several burners and a burner keeps its identity across reconnects and reboots.
The MAC comes from the first non-loopback network interface in sorted order (stable on a Pi,
where eth0/wlan0 never change); tests and odd hosts can pass their own MAC instead.
"""

from __future__ import annotations

from pathlib import Path

from wire.burnuid import client_uid

SYS_CLASS_NET = Path("/sys/class/net")
_NULL_MAC = "00:00:00:00:00:00"


def primary_mac(sys_class_net: Path = SYS_CLASS_NET) -> str:
    """The MAC of the first non-loopback interface (sorted by name), or all zeros if none."""
    try:
        names = sorted(p.name for p in sys_class_net.iterdir())
    except OSError:
        return _NULL_MAC
    for name in names:
        if name == "lo":
            continue
        try:
            mac = (sys_class_net / name / "address").read_text(encoding="ascii").strip().lower()
        except (OSError, UnicodeDecodeError):
            continue
        # Interfaces without a hardware address (tun, wireguard) report all zeros or nothing.
        if mac and mac != _NULL_MAC:
            return mac
    return _NULL_MAC


def drive_uid(device_path: str, mac: str | None = None) -> str:
    """md5 hex of MAC + device path, e.g. drive_uid("/dev/sr0")."""
    # One definition of a burner's identity: the protocol's, which also normalises the MAC.
    return client_uid(mac if mac is not None else primary_mac(), device_path)
