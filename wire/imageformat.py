"""What an image is, told from its first bytes: the compression it is packed in and, for a raw
image, which media it suits. Pure functions on bytes, shared by the coordinator's image store
(which records what an upload unpacks to) and the appliance (which decodes while it burns).

`sniff` reads the magic numbers of xz, gzip, bzip2, zstd and zip. `media_of` reads the first
36 KiB of a raw image: a partition table (MBR signature or GPT header) without an ISO 9660
descriptor is a disk image for USB sticks and SD cards; ISO 9660 alone is for discs; both is a
hybrid ISO, which works on either.
"""

from __future__ import annotations

import enum


class Encoding(enum.StrEnum):
    RAW = "raw"
    XZ = "xz"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    ZSTD = "zstd"
    ZIP = "zip"


class Media(enum.StrEnum):
    DISK = "disk"  # partition table, no ISO 9660: USB sticks and SD cards only
    ISO = "iso"  # ISO 9660 without a partition table: discs only
    HYBRID = "hybrid"  # ISO 9660 and MBR/GPT: discs and USB
    UNKNOWN = "unknown"  # neither: offered wherever it fits, as before


SUPPORTED = "xz, gzip, bzip2, zstd, zip (with one image inside) and raw .img/.iso"
HEAD = 4096  # enough bytes for `sniff`
MEDIA_HEAD = 36 * 1024  # enough bytes for `media_of` (the ISO descriptor sits at 32 KiB)

_XZ = b"\xfd7zXZ\x00"
_ZSTD = b"\x28\xb5\x2f\xfd"
_ZIP = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_BZIP2_BLOCK = (b"\x31\x41\x59\x26\x53\x59", b"\x17\x72\x45\x38\x50\x90")


def sniff(head: bytes) -> Encoding | None:
    """The packing the first bytes announce; None when they announce none we unpack."""
    if head.startswith(_XZ):
        return Encoding.XZ
    if head.startswith(_ZSTD) or (
        len(head) >= 4 and head[1:4] == b"\x2a\x4d\x18" and head[0] & 0xF0 == 0x50
    ):
        return Encoding.ZSTD  # a frame, or a skippable frame (0x184D2A5?) in front of one
    if head[:3] == b"\x1f\x8b\x08":
        return Encoding.GZIP  # method 8 (deflate) is the only one gzip defines
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] in _BZIP2_BLOCK:
        return Encoding.BZIP2
    if head[:4] in _ZIP:
        return Encoding.ZIP
    return None


def media_of(head: bytes) -> Media:
    """Classify a raw (unpacked) image from its first `MEDIA_HEAD` bytes."""
    has_table = head[510:512] == b"\x55\xaa" or head[512:520] == b"EFI PART"
    if head[32769:32774] == b"CD001":
        return Media.HYBRID if has_table else Media.ISO
    return Media.DISK if has_table else Media.UNKNOWN
