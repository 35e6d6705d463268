"""The small interface every drive backend implements, and the errors a burn can end with.

The burn pipeline, the agent and the kiosk only ever see a `Drive`: an optical burner driven by
cdrskin, a USB stick or SD card written with O_DIRECT, or the simulated drive of the demo. Each
backend streams `Progress` events while it writes and while it reads back, and ends a failed job
with one `BurnError` subclass whose message a visitor or operator can act on.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable


class DriveKind(enum.StrEnum):
    OPTICAL = "optical"
    BLOCK = "block"
    SIMULATED = "simulated"


class Phase(enum.StrEnum):
    WRITE = "write"
    VERIFY = "verify"


class DriveState(enum.StrEnum):
    """What a drive can tell about itself between jobs (seed 004's STATUS values map onto it)."""

    IDLE = "idle"  # media present and writable
    EMPTY = "empty"  # no media / no target
    TRAY_OPEN = "trayopen"
    BUSY = "busy"
    GONE = "gone"  # the device disappeared


@dataclass(frozen=True, slots=True)
class DriveInfo:
    uid: str  # md5(MAC + device path), see appliance.drives.uid
    path: str  # /dev/sr0, /dev/sdb, /dev/loop3, stdio:/var/tmp/disc.iso
    kind: DriveKind
    # Optical: subset of {"CDR", "DVDR", "BDR"}; block targets: {"BLOCK"}.
    capabilities: frozenset[str]
    capacity: int | None = None  # writable bytes of the loaded media, None when unknown
    model: str = ""
    block_size: int = 512


@dataclass(frozen=True, slots=True)
class SourceImage:
    """One image to burn, as the cache (or the command line) hands it to a drive.

    `proven` means the cache checked `sha256` when the image arrived; then only the fast
    `xxh3_128` digest is recomputed while writing. An unproven image with `sha256` set pays for
    SHA-256 during the write, and the write fails before the first block if it does not match.

    `sha256`/`size` describe the file as delivered. A compressed file (xz, gzip, bzip2, zstd,
    zip) is unpacked while it is written: `encoding` is "auto" (decide from the content), "raw"
    (write the bytes as they are: the `--raw` flag) or the decided format, and a take may declare
    the image it unpacks to with `extracted_size`/`extracted_sha256`.
    """

    path: Path
    size: int
    sha256: str | None = None
    xxh3_128: str | None = None
    md5: str | None = None
    proven: bool = False
    name: str = field(default="")
    encoding: str = "auto"
    extracted_size: int | None = None
    extracted_sha256: str | None = None
    member: str | None = None  # the entry to extract from a zip
    bmap: Path | None = None  # a block map: only its ranges are written, holes are zeroed
    # Hash the unpacked stream though no extracted_sha256 is declared (the agent reports it).
    measure_extracted: bool = False


@dataclass(frozen=True, slots=True)
class Progress:
    phase: Phase
    done: int  # bytes
    total: int  # bytes
    speed: float  # bytes per second, recent average
    eta: float | None  # seconds left in this phase, None when unknown

    @property
    def percent(self) -> float:
        return 100.0 if self.total <= 0 else min(100.0, 100.0 * self.done / self.total)


class BurnError(Exception):
    """A job failed for a reason the user can act on. `code` is stable and machine-readable."""

    code = "burn-failed"


class NoMedia(BurnError):
    code = "no-media"


class MediaTooSmall(BurnError):
    code = "media-too-small"


class WriteProtected(BurnError):
    code = "write-protected"


class TargetBusy(BurnError):
    """The target is mounted or held open by another program (O_EXCL refused it)."""

    code = "target-busy"


class DrivePulled(BurnError):
    code = "drive-pulled"


class VerifyMismatch(BurnError):
    code = "verify-mismatch"


class CorruptImage(BurnError):
    code = "corrupt-image"


class ImageChanged(BurnError):
    """The image file was resized or rewritten while it was being burned."""

    code = "image-changed"


class DiskFull(BurnError):
    code = "disk-full"


class ToolFailed(BurnError):
    """An external tool (cdrskin, xorriso) failed; the message carries its stderr."""

    code = "tool-failed"


class ToolMissing(BurnError):
    code = "tool-missing"


class Cancelled(BurnError):
    code = "cancelled"


@runtime_checkable
class Drive(Protocol):
    """A burner or write target. Cancel a write by cancelling the task that iterates it."""

    @property
    def info(self) -> DriveInfo: ...

    def write(self, image: SourceImage) -> AsyncIterator[Progress]:
        """Write the image, yielding progress at least 4 times a second; raise BurnError."""
        ...

    def verify(self, image: SourceImage) -> AsyncIterator[Progress]:
        """Read back exactly image.size bytes and compare; raise VerifyMismatch on a difference."""
        ...

    async def eject(self) -> None: ...

    async def close_tray(self) -> None: ...

    async def state(self) -> DriveState: ...
