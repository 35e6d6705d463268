"""A raw image burned with its bmap steps over the image file's holes instead of reading them
(as bmaptool does), and still leaves every hole of the target reading as zeros, verified."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import appliance.drives.holecheck as holecheck
from appliance.drives.base import CorruptImage, SourceImage, VerifyMismatch
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


async def test_a_hole_the_device_says_it_zeroed_but_did_not_fails_and_leaves_the_start_blank(
    tmp_path: Path, loop_devices: LoopFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holes are read back while the write goes on; a device whose zeroing reports success
    but leaves the old bytes (no loop device does that, so its ioctl is the one thing faked)
    fails the burn before the first block goes down, naming the hole."""
    img = sparse_image(tmp_path / "sparse.img")
    bmap = make_bmap(img)
    dev = loop_devices(16 * MiB, fill=b"\xff")
    monkeypatch.setattr(holecheck, "zero_out", lambda fd, offset, length: True)
    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK)
    with pytest.raises(VerifyMismatch, match=f"bytes {2 * MiB}..{3 * MiB - 1} do not read back"):
        async for _ in drive.write(SourceImage(img, SIZE, bmap=bmap)):
            pass
    assert dev.read(0, CHUNK) == bytes(CHUNK)  # the start stays blank


async def test_the_verify_after_a_bmap_burn_still_compares_every_mapped_chunk(
    tmp_path: Path, loop_devices: LoopFactory
) -> None:
    """Its holes were read back during the write; the mapped chunks are read back afterwards,
    so a mapped chunk changed between write and verify is still caught."""
    img = sparse_image(tmp_path / "sparse.img")
    bmap = make_bmap(img)
    dev = loop_devices(16 * MiB, fill=b"\xff")
    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK)
    image = SourceImage(img, SIZE, bmap=bmap)
    async for _ in drive.write(image):
        pass
    fd = os.open(dev.path, os.O_WRONLY)  # something else writes to the card in between
    try:
        os.pwrite(fd, bytes(4096), 5 * MiB)
        os.fsync(fd)
    finally:
        os.close(fd)
    with pytest.raises(VerifyMismatch, match=f"bytes {5 * MiB}..{6 * MiB - 1}"):
        async for _ in drive.verify(image):
            pass


async def test_a_device_that_cannot_zero_gets_the_zeros_written(
    tmp_path: Path, loop_devices: LoopFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A card reader that refuses BLKZEROOUT (many USB bridges do): every hole is written as
    zeros instead, over the old bytes, and the target still equals the image."""
    img = sparse_image(tmp_path / "sparse.img")
    bmap = make_bmap(img)
    dev = loop_devices(16 * MiB, fill=b"\xff")
    monkeypatch.setattr(holecheck, "zero_out", lambda fd, offset, length: False)
    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK)
    await burn(drive, SourceImage(img, SIZE, bmap=bmap))
    assert dev.read(0, SIZE) == img.read_bytes()
    assert drive.zeroed_bytes == 0


async def test_neighbouring_holes_are_zeroed_by_one_request(
    tmp_path: Path, loop_devices: LoopFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each zeroing request changes the device's (or a loop file's) extents once: a run of
    holes goes down as one request, not one per chunk."""
    img = sparse_image(tmp_path / "sparse.img")
    bmap = make_bmap(img)
    dev = loop_devices(16 * MiB, fill=b"\xff")
    asked: list[tuple[int, int]] = []
    real = holecheck.zero_out

    def recording(fd: int, offset: int, length: int) -> bool:
        asked.append((offset, length))
        return real(fd, offset, length)

    monkeypatch.setattr(holecheck, "zero_out", recording)
    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK)
    await burn(drive, SourceImage(img, SIZE, bmap=bmap))
    assert asked == [(2 * MiB, 3 * MiB), (6 * MiB, 2 * MiB), (9 * MiB, 3 * MiB)]
    assert dev.read(0, SIZE) == img.read_bytes()
