"""A raw image burned with its bmap steps over the image file's holes instead of reading them
(as bmaptool does), and still leaves every hole of the target reading as zeros, verified."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from appliance.drives.base import CorruptImage, SourceImage
from appliance.drives.block import BlockDrive
from tests.appliance.diskimages import make_bmap

if TYPE_CHECKING:
    from tests.appliance.conftest import LoopFactory

MiB = 1024 * 1024
CHUNK = 1 * MiB
SIZE = 12 * MiB
DATA = (0, 1, 5, 8)  # MiB blocks holding data; the rest (9..11 too) are holes of the file


def sparse_image(path: Path) -> Path:
    with open(path, "wb") as f:
        for block in DATA:
            f.seek(block * MiB)
            f.write(os.urandom(MiB))
        f.truncate(SIZE)
    return path


async def burn(drive: BlockDrive, image: SourceImage) -> None:
    async for _ in drive.write(image):
        pass
    async for _ in drive.verify(image):
        pass


async def test_the_file_holes_become_zeros_over_old_data(
    tmp_path: Path, loop_devices: LoopFactory
) -> None:
    img = sparse_image(tmp_path / "sparse.img")
    bmap = make_bmap(img)
    dev = loop_devices(16 * MiB, fill=b"\xff")  # a used card
    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK)
    await burn(drive, SourceImage(img, SIZE, bmap=bmap))
    assert dev.read(0, SIZE) == img.read_bytes()
    assert drive.zeroed_bytes == SIZE - len(DATA) * MiB
    assert dev.read(SIZE, MiB) == b"\xff" * MiB  # nothing past the image changed


async def test_a_file_shorter_than_its_bmap_fails_blank_even_where_the_bmap_says_hole(
    tmp_path: Path, loop_devices: LoopFactory
) -> None:
    img = sparse_image(tmp_path / "sparse.img")
    bmap = make_bmap(img)
    # After the size was taken the file loses its last three MiB, all holes in the bmap (a file
    # cut short or overwritten): the burn must not make up zeros past the file's end.
    os.truncate(img, 9 * MiB)
    dev = loop_devices(16 * MiB, fill=b"\xff")
    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK)
    with pytest.raises(CorruptImage, match="unpacked to"):
        async for _ in drive.write(SourceImage(img, SIZE, bmap=bmap)):
            pass
    assert dev.read(0, CHUNK) == bytes(CHUNK)  # the start stays blank
