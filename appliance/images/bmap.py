"""Block maps (`.bmap`, as `bmaptool create` writes them): which blocks of an image hold data.

With a bmap the block writer puts only the mapped ranges on the target and has the holes
zeroed by the device (BLKZEROOUT) instead of writing them, so a mostly empty 8 GB image burns
in the time of its data. Unlike bmaptool, the holes are then read back too: the whole target
is verified, and reads as zeros where the image is empty. The bmap is checked before it is
trusted: its own `BmapFileChecksum`, its `ImageSize` against the image, and every range's
SHA-256 against the bytes that go down (a mismatch fails the burn before the first block is
written, like any other bad image).
"""

from __future__ import annotations

import hashlib
import re

# A bmap is read whole only up to MAX_BMAP, and expat refuses entity-expansion bombs.
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from appliance.drives.base import CorruptImage

MAX_BMAP = 64 * 1024 * 1024  # a bmap of a 1 TB image with 4 KiB fragmentation stays below this


class BadBmap(CorruptImage):
    """A bmap that is damaged or does not describe this image."""

    code = "bad-bmap"


@dataclass(frozen=True, slots=True)
class BmapRange:
    start: int  # byte offsets in the image, [start, end)
    end: int
    sha256: str | None


@dataclass(frozen=True, slots=True)
class Bmap:
    image_size: int
    block_size: int
    ranges: tuple[BmapRange, ...]  # sorted, not overlapping

    def first_mapped_at_or_after(self, index: int, offset: int) -> int:
        """The index of the first range that ends after `offset`, searching from `index`."""
        while index < len(self.ranges) and self.ranges[index].end <= offset:
            index += 1
        return index

    def is_hole(self, index: int, start: int, end: int) -> bool:
        """Whether [start, end) holds no mapped byte (`index` from `first_mapped_at_or_after`)."""
        return index >= len(self.ranges) or self.ranges[index].start >= end


def load_bmap(path: Path) -> Bmap:
    name = path.name
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_BMAP + 1)
    except OSError as exc:
        raise BadBmap(f"cannot read the bmap {path}: {exc.strerror}") from exc
    if len(text) > MAX_BMAP:
        raise BadBmap(f"{name} is larger than {MAX_BMAP} bytes; not a bmap")
    try:
        root = ET.fromstring(text)  # noqa: S314 - see the import
    except ET.ParseError as exc:
        raise BadBmap(f"{name} is not a bmap file ({exc})") from exc
    version = root.get("version", "")
    if root.tag != "bmap" or not version.startswith("2."):
        raise BadBmap(f"{name} is not a bmap of format 2.x (found {root.tag} {version!r})")

    def number(tag: str) -> int:
        node = root.find(tag)
        value = (node.text or "").strip() if node is not None else ""
        if not value.isdigit():
            raise BadBmap(f"{name} has no valid <{tag}>")
        return int(value)

    image_size, block_size = number("ImageSize"), number("BlockSize")
    if block_size <= 0 or block_size % 512:
        raise BadBmap(f"{name} has a block size of {block_size}, not a multiple of 512")
    kind = (root.findtext("ChecksumType") or "").strip()
    if kind != "sha256":
        raise BadBmap(f"{name} uses {kind or 'no'} checksums; only sha256 bmaps are accepted")
    want = (root.findtext("BmapFileChecksum") or "").strip()
    if re.fullmatch(r"[0-9a-f]{64}", want) is None:
        raise BadBmap(f"{name} has no BmapFileChecksum")
    got = hashlib.sha256(text.replace(want.encode(), b"0" * 64, 1)).hexdigest()
    if got != want:
        raise BadBmap(f"{name} is damaged: its checksum is {got}, it says {want}")
    ranges: list[BmapRange] = []
    for node in root.iterfind("BlockMap/Range"):
        span = (node.text or "").strip()
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", span)
        if m is None:
            raise BadBmap(f"{name} has a range {span!r} that is not N or N-M")
        first, last = int(m[1]), int(m[2] or m[1])
        start, end = first * block_size, min((last + 1) * block_size, image_size)
        if last < first or start >= image_size or (ranges and start < ranges[-1].end):
            raise BadBmap(f"{name} has a range {span!r} outside the image or out of order")
        ranges.append(BmapRange(start, end, node.get("chksum")))
    return Bmap(image_size, block_size, tuple(ranges))


class RangeChecker:
    """Feeds the stream, in order, through each mapped range's SHA-256; the first range whose
    bytes differ from the bmap's checksum fails the burn."""

    def __init__(self, bmap: Bmap, name: str) -> None:
        self.bmap = bmap
        self.name = name
        self.index = 0
        self.hasher = hashlib.sha256()

    def feed(self, offset: int, data: memoryview) -> None:
        end = offset + len(data)
        ranges = self.bmap.ranges
        while self.index < len(ranges):
            r = ranges[self.index]
            lo, hi = max(r.start, offset), min(r.end, end)
            if lo >= hi:
                if r.start >= end:
                    return  # this range starts in a later piece
                self.index += 1  # pragma: no cover - ranges are consumed in order
                continue
            self.hasher.update(data[lo - offset : hi - offset])
            if hi < r.end:
                return  # the range goes on in the next piece
            got = self.hasher.hexdigest()
            self.hasher = hashlib.sha256()
            self.index += 1
            if r.sha256 is not None and got != r.sha256.lower():
                raise BadBmap(
                    f"the bmap does not match {self.name}: bytes {r.start}..{r.end - 1} have "
                    f"SHA-256 {got}, the bmap says {r.sha256}"
                )
