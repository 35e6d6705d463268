"""A burner's identity in the burn protocol (seed 004): md5 of its MAC followed by its device
path. Its own small module so a command that only needs the uid (the agent's `burn`, naming
its target) does not load the whole protocol package."""

from __future__ import annotations

import hashlib
import re

_MAC = re.compile(r"[0-9a-f]{2}([:\-]?)[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}")


def client_uid(mac: str, device_path: str) -> str:
    """The uid a burner presents in `ID`: md5 of its normalised MAC followed by the device path.

    The MAC is lowercased with `:` separators first, so `AA-BB-...`, `aabb...` and `aa:bb:...`
    give the same uid; two drives in one machine differ by their device path.
    """
    normal = mac.strip().lower()
    if _MAC.fullmatch(normal) is None:
        raise ValueError(f"{mac!r} is not a MAC address like aa:bb:cc:dd:ee:ff")
    if not device_path:
        raise ValueError("device path must not be empty")
    digits = normal.replace(":", "").replace("-", "")
    canonical = ":".join(digits[i : i + 2] for i in range(0, 12, 2))
    data = (canonical + device_path).encode("utf-8", "surrogateescape")
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
