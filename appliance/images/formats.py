"""What an image file is, told by its first bytes (never by its name), and what it unpacks to.

People bring `.img.xz`, `.img.gz`, `.img.zst`, `.img.bz2`, `.zip` and plain `.img`/`.iso` files,
often renamed or with no extension at all. `sniff` reads the magic numbers; `describe` adds what
the container itself says about the image inside (the size `xz --list` or the zip directory
records, the zip entry to extract) and refuses, with a message naming the supported formats, a
file that is a known archive we cannot burn (7z, rar, dmg, lz4, tar) or a zip holding anything but
exactly one file. The magic numbers themselves live in `wire.imageformat`, shared with the
coordinator's image store. Everything here reads a few KiB and is meant to run in a worker thread.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

from appliance.drives.base import BurnError, SourceImage
from appliance.images.download import active
from plumbing.unpack import NotOneImage, image_entry
from wire.imageformat import HEAD, SUPPORTED, Encoding, sniff

__all__ = [
    "AUTO",
    "SUPPORTED",
    "CompressedNotAllowed",
    "Encoding",
    "UnsupportedImage",
    "describe",
    "require_raw",
    "resolve",
]


AUTO = "auto"  # SourceImage.encoding: decide from the content when the burn starts


class UnsupportedImage(BurnError):
    """A file we recognise but cannot burn: another archive format, or a zip that does not hold
    exactly one image. The message names what was found and what is supported."""

    code = "unsupported-image"


class CompressedNotAllowed(BurnError):
    """A compressed image offered to a writer that can only take raw bytes (a disc burner)."""

    code = "compressed-image"


# Recognised only to be refused by name.
_OTHER = (
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x04\x22\x4d\x18", "an LZ4 file"),
)


def _other_kind(path: Path, head: bytes) -> str | None:
    for magic, what in _OTHER:
        if head.startswith(magic):
            return what
    if head[257:262] == b"ustar":
        return "a tar archive"
    # An Apple disk image keeps its "koly" trailer in the last 512 bytes.
    try:
        with open(path, "rb") as f:
            f.seek(-512, os.SEEK_END)
            if f.read(4) == b"koly":
                return "an Apple disk image (dmg)"
    except OSError:
        pass
    return None


@dataclass(frozen=True, slots=True)
class Described:
    encoding: Encoding
    extracted_size: int | None  # what the container states, None when it does not say
    member: str | None = None  # the zip entry to extract


def describe(path: Path) -> Described:
    """Look inside `path`; raise UnsupportedImage for what cannot be burned, naming it."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD)
    except OSError as exc:
        raise BurnError(f"cannot read image {path}: {exc.strerror}") from exc
    enc = sniff(head)
    if enc is None:
        other = _other_kind(path, head)
        if other is not None:
            raise UnsupportedImage(
                f"{path.name} is {other}, which cannot be burned; supported are {SUPPORTED}"
            )
        return Described(Encoding.RAW, os.path.getsize(path))
    if enc is Encoding.ZIP:
        dl = active(path)
        if dl is not None and not dl.done:
            return Described(enc, None)  # its directory is yet to come: unpacked as it arrives
        return _describe_zip(path)
    if enc is Encoding.XZ:
        return Described(enc, _xz_size(path))
    return Described(enc, None)


def _describe_zip(path: Path) -> Described:
    try:
        with zipfile.ZipFile(path) as zf:
            entry = image_entry(zf)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsupportedImage(f"{path.name} is a damaged zip archive ({exc})") from exc
    except NotOneImage as exc:
        raise UnsupportedImage(f"{path.name} is {exc}") from exc
    return Described(Encoding.ZIP, entry.file_size, entry.filename)


def _xz_size(path: Path) -> int | None:
    """The uncompressed size xz's index records (a multi-block file made with -T0 has it too)."""
    exe = shutil.which("xz")
    if exe is None:
        return None
    try:
        out = subprocess.run(  # noqa: S603 - an argument list, the path is not interpreted
            [exe, "--robot", "--list", "--", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.stdout.splitlines():
        cols = line.split("\t")
        if out.returncode == 0 and cols[0] == "totals" and len(cols) > 4 and cols[4].isdigit():
            return int(cols[4])
    return None


def resolve(image: SourceImage) -> SourceImage:
    """`image` with its encoding decided from the content (unless the caller said `raw`) and
    the extracted size filled in from the container when the take did not declare it."""
    if image.encoding != AUTO:
        return image
    found = describe(Path(image.path))
    size = image.extracted_size if image.extracted_size is not None else found.extracted_size
    if found.encoding is Encoding.RAW:
        return replace(image, encoding=Encoding.RAW.value, extracted_size=image.size)
    return replace(image, encoding=found.encoding.value, extracted_size=size, member=found.member)


def require_raw(image: SourceImage, writer: str) -> SourceImage:
    """For writers that take bytes as they are (disc burners): refuse a compressed image rather
    than write its compressed bytes, unless the caller asked for exactly that (`raw`)."""
    resolved = resolve(image)
    if resolved.encoding != Encoding.RAW.value:
        raise CompressedNotAllowed(
            f"{Path(image.path).name} is {resolved.encoding}-compressed and {writer} writes "
            "images as they are; unpack it first (or pass --raw to write the compressed bytes)"
        )
    return resolved
