"""An optical drive's tray, as the kernel drives it: the CDROM ioctls (linux/cdrom.h) that eject,
close and ask for the drive's status, behind a function the tests can replace."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable

# linux/cdrom.h
CDROMEJECT = 0x5309
CDROMCLOSETRAY = 0x5319
CDROM_DRIVE_STATUS = 0x5326
CDSL_CURRENT = 0x7FFFFFFF  # INT_MAX: "the current slot" for changers and plain drives alike
CDS_NO_INFO = 0
CDS_NO_DISC = 1
CDS_TRAY_OPEN = 2
CDS_DRIVE_NOT_READY = 3
CDS_DISC_OK = 4

IoctlFn = Callable[[str, int, int], int]


def sys_ioctl(path: str, request: int, arg: int) -> int:
    # O_NONBLOCK: opening a CD drive without it waits for (and may try to close) the tray.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return int(fcntl.ioctl(fd, request, arg))
    finally:
        os.close(fd)
