"""Block maps for uploaded images: which 4 KiB blocks of the (unpacked) image hold data.

A kiosk that burns a take with a bmap writes only the mapped ranges and has the device zero the
rest, then reads the whole target back, so a mostly empty image burns in the time of its data.
`BmapBuilder` is fed the unpacked image in order (by `contents.inspect`, or `map_raw` for a raw
upload) and writes the bmap the way `bmaptool create` does (format 2.0, a SHA-256 per range and
for the file itself); blocks of zeros count as holes, since that is what they read as. An image
with less than `MIN_HOLES` of zeros gets no bmap: it would save nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 4096
MIN_HOLES = 1024 * 1024
PIECE = 1024 * 1024
_ZERO = bytes(PIECE)


class BmapBuilder:
    def __init__(self) -> None:
        self.size = 0
        self.holes = 0
        self._ranges: list[tuple[int, int, str]] = []  # first block, last block, sha256
        self._open: tuple[int, hashlib._Hash] | None = None  # the range being hashed
        self._tail = b""  # the start of a block the next piece completes

    def feed(self, piece: bytes | memoryview) -> None:
        data = self._tail + bytes(piece) if self._tail else piece
        whole = len(data) // BLOCK * BLOCK
        with memoryview(data) as view:
            self._blocks(view[:whole])
        self._tail = bytes(data[whole:])

    def _blocks(self, view: memoryview) -> None:
        """Whole blocks starting at byte `self.size`: runs of data are hashed in one call
        each, so a mostly full image costs little more than its hashing."""
        pos = 0
        zero = _ZERO[:BLOCK]
        while pos < len(view):
            if len(view) - pos >= PIECE and view[pos : pos + PIECE] == _ZERO:
                self._close(self.size + pos)
                self.holes += PIECE
                pos += PIECE
                continue
            run = pos
            while run < len(view) and view[run : run + BLOCK] != zero:
                run += BLOCK
            if run == pos:
                self._close(self.size + pos)
                self.holes += BLOCK
                pos += BLOCK
                continue
            if self._open is None:
                self._open = ((self.size + pos) // BLOCK, hashlib.sha256())
            self._open[1].update(view[pos:run])
            pos = run
        self.size += len(view)

    def _close(self, at: int) -> None:
        """End the open range before byte `at` (a block boundary, or the image's end)."""
        if self._open is not None:
            first, hasher = self._open
            self._ranges.append((first, (at - 1) // BLOCK, hasher.hexdigest()))
            self._open = None

    def finish(self) -> str | None:
        """The bmap's text, or None when the image has too few holes to be worth one."""
        tail, self._tail = self._tail, b""
        if tail.count(0) == len(tail):
            self._close(self.size)
            self.holes += len(tail)
        else:
            if self._open is None:
                self._open = (self.size // BLOCK, hashlib.sha256())
            self._open[1].update(tail)
        self.size += len(tail)
        self._close(self.size)
        if self.holes < MIN_HOLES:
            return None
        return _render(self.size, self._ranges)


def _render(size: int, ranges: list[tuple[int, int, str]]) -> str:
    blocks = (size + BLOCK - 1) // BLOCK
    mapped = sum(last - first + 1 for first, last, _ in ranges)
    lines = "".join(
        f'        <Range chksum="{sha}"> {first if first == last else f"{first}-{last}"} </Range>\n'
        for first, last, sha in ranges
    )
    text = (
        '<?xml version="1.0" ?>\n'
        '<bmap version="2.0">\n'
        f"    <ImageSize> {size} </ImageSize>\n"
        f"    <BlockSize> {BLOCK} </BlockSize>\n"
        f"    <BlocksCount> {blocks} </BlocksCount>\n"
        f"    <MappedBlocksCount> {mapped} </MappedBlocksCount>\n"
        "    <ChecksumType> sha256 </ChecksumType>\n"
        f"    <BmapFileChecksum> {'0' * 64} </BmapFileChecksum>\n"
        "    <BlockMap>\n"
        f"{lines}"
        "    </BlockMap>\n"
        "</bmap>\n"
    )
    own = hashlib.sha256(text.encode()).hexdigest()
    return text.replace("0" * 64, own, 1)


def map_raw(path: Path) -> str | None:
    """The bmap of a raw image file (worker thread)."""
    builder = BmapBuilder()
    with open(path, "rb") as f:
        while piece := f.read(PIECE):
            builder.feed(piece)
    return builder.finish()
