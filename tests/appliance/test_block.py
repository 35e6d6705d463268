"""Block backend against real loop devices: what a person burning a USB stick would notice."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import xxhash

from appliance.burn import JobEvent, JobProgress, burn_many
from appliance.control import ResultView
from appliance.drives.base import (
    Cancelled,
    CorruptImage,
    Drive,
    DrivePulled,
    DriveState,
    ImageChanged,
    MediaTooSmall,
    NoMedia,
    Phase,
    Progress,
    SourceImage,
    TargetBusy,
    VerifyMismatch,
    WriteProtected,
)
from appliance.drives.block import BlockDrive, BlockHooks
from appliance.journal import JobState, Journal
from appliance.kiosk.model import reason_text
from wire import failures

if TYPE_CHECKING:
    from tests.appliance.conftest import ImageMaker, LoopFactory

MiB = 1024 * 1024
CHUNK = 4 * MiB


def source(path: Path, **kw: object) -> SourceImage:
    return SourceImage(path=path, size=path.stat().st_size, **kw)  # type: ignore[arg-type]


def flip_bit(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x04]))
        f.flush()
        os.fsync(f.fileno())


async def drain(it: object) -> list[Progress]:
    return [p async for p in it]  # type: ignore[attr-defined]


async def test_write_and_verify_256_mib(loop_devices: LoopFactory, make_test_image: ImageMaker):
    img = make_test_image(256 * MiB)
    dev = loop_devices(260 * MiB)
    digest = xxhash.xxh3_128(img.read_bytes()).hexdigest()
    drive = BlockDrive(dev.path, "uid-1")
    assert isinstance(drive, Drive)
    image = source(img, xxh3_128=digest, proven=True)

    wrote = await drain(drive.write(image))
    checked = await drain(drive.verify(image))

    assert dev.read(0, 256 * MiB) == img.read_bytes()
    assert wrote[-1].phase is Phase.WRITE
    assert wrote[-1].done == image.size
    assert checked[-1].phase is Phase.VERIFY
    assert checked[-1].percent == 100.0
    assert all(a.done <= b.done for a, b in itertools.pairwise(wrote))
    assert drive.info.capacity == 260 * MiB


async def test_flipped_bit_after_write_is_caught(
    loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(20 * MiB)
    dev = loop_devices(32 * MiB)
    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK)
    image = source(img)
    await drain(drive.write(image))
    flip_bit(dev.backing, 9 * MiB + 12345)  # one bit, deep inside the third chunk
    with pytest.raises(VerifyMismatch, match="differs"):
        await drain(drive.verify(image))


async def test_target_smaller_than_image_is_refused_untouched(
    loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(12 * MiB)
    dev = loop_devices(8 * MiB, fill=b"\x55\xaa")
    before = dev.read(0, 8 * MiB)
    with pytest.raises(MediaTooSmall, match="needs"):
        await drain(BlockDrive(dev.path, "u").write(source(img)))
    assert dev.read(0, 8 * MiB) == before


async def test_device_shrinking_mid_write_is_drive_pulled(
    loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(24 * MiB)
    dev = loop_devices(32 * MiB)

    def pull(n: int) -> None:
        if n == 2:
            dev.shrink_to_nothing()

    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK, hooks=BlockHooks(after_chunk=pull))
    with pytest.raises(DrivePulled, match="removed"):
        await drain(drive.write(source(img)))


async def test_stop_mid_write_leaves_first_chunk_blank(
    loop_devices: LoopFactory, make_test_image: ImageMaker
):
    """A stick that looked bootable before must not look bootable after a half-done burn."""
    img = make_test_image(24 * MiB)
    dev = loop_devices(32 * MiB, fill=b"\xeb\x63\x90OLDBOOT")
    data = img.read_bytes()

    def stop_after(n: int) -> None:
        if n == 3:
            raise Cancelled("test stop")

    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK, hooks=BlockHooks(after_chunk=stop_after))
    with pytest.raises(Cancelled):
        await drain(drive.write(source(img)))
    assert dev.read(0, CHUNK) == bytes(CHUNK)  # neither the old boot sector nor the image's
    assert dev.read(CHUNK, 3 * CHUNK) == data[CHUNK : 4 * CHUNK]  # the body did land
    assert dev.read(4 * CHUNK, 16) == b"\xeb\x63\x90OLDBOOT\xeb\x63\x90OLD"


async def test_task_cancel_mid_write_stops_and_leaves_start_blank(
    loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(24 * MiB)
    dev = loop_devices(32 * MiB, fill=b"\x11")
    reached = threading.Event()
    release = threading.Event()

    def park(n: int) -> None:
        if n == 2:
            reached.set()
            release.wait(10)

    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK, hooks=BlockHooks(after_chunk=park))
    task = asyncio.create_task(drain(drive.write(source(img))))
    assert await asyncio.to_thread(reached.wait, 10)
    task.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert dev.read(0, CHUNK) == bytes(CHUNK)
    assert dev.read(4 * CHUNK, CHUNK) == b"\x11" * CHUNK  # stopped: later chunks never written
    assert await drive.state() is DriveState.IDLE


async def test_wrong_sha256_is_corrupt_image_and_first_chunk_never_written(
    loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(16 * MiB + 700)
    dev = loop_devices(32 * MiB, fill=b"\x77")
    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK)
    with pytest.raises(CorruptImage, match="does not match"):
        await drain(drive.write(source(img, sha256="0" * 64)))
    assert dev.read(0, CHUNK) == bytes(CHUNK)


async def test_right_sha256_passes(loop_devices: LoopFactory, make_test_image: ImageMaker):
    img = make_test_image(16 * MiB + 700)
    dev = loop_devices(32 * MiB)
    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK)
    image = source(img, sha256=hashlib.sha256(img.read_bytes()).hexdigest())
    await drain(drive.write(image))
    await drain(drive.verify(image))
    assert dev.read(0, image.size) == img.read_bytes()


async def test_rotten_proven_image_fails_fast_digest(
    loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(12 * MiB)
    good = xxhash.xxh3_128(img.read_bytes()).hexdigest()
    flip_bit(img, 7 * MiB)  # the cache's SD card rotted after the image was proven
    dev = loop_devices(16 * MiB)
    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK)
    with pytest.raises(CorruptImage):
        await drain(drive.write(source(img, xxh3_128=good, proven=True)))
    assert dev.read(0, CHUNK) == bytes(CHUNK)


@pytest.mark.parametrize("size", [5 * MiB + 333, MiB + 100, 300])
async def test_unaligned_tail_changes_nothing_past_the_image(
    loop_devices: LoopFactory, make_test_image: ImageMaker, size: int
):
    img = make_test_image(size)
    dev = loop_devices(8 * MiB, fill=b"\xc3")
    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK)
    image = source(img)
    await drain(drive.write(image))
    await drain(drive.verify(image))
    assert dev.read(0, size) == img.read_bytes()
    assert dev.read(size, 8 * MiB - size) == b"\xc3" * (8 * MiB - size)


async def test_zero_runs_read_as_zeros_over_old_data(
    loop_devices: LoopFactory, make_test_image: ImageMaker
):
    """Unlike bmaptool, holes never keep what the stick held before."""
    img = make_test_image(64 * MiB, zero_fraction=0.7)
    dev = loop_devices(64 * MiB, fill=b"\xff")
    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK)
    image = source(img)
    await drain(drive.write(image))
    await drain(drive.verify(image))
    assert dev.read(0, image.size) == img.read_bytes()
    assert drive.zeroed_bytes > 0  # the zero runs went through BLKZEROOUT, not writes


async def test_device_held_exclusively_is_busy(
    loop_devices: LoopFactory, make_test_image: ImageMaker
):
    """A mounted filesystem holds its device exclusively, just like this O_EXCL open."""
    img = make_test_image(MiB)
    dev = loop_devices(4 * MiB)
    holder = os.open(dev.path, os.O_RDONLY | os.O_EXCL)
    try:
        with pytest.raises(TargetBusy, match="in use"):
            await drain(BlockDrive(dev.path, "u").write(source(img)))
    finally:
        os.close(holder)


async def test_read_only_device_is_write_protected(
    loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(MiB)
    dev = loop_devices(4 * MiB, read_only=True)
    with pytest.raises(WriteProtected):
        await drain(BlockDrive(dev.path, "u").write(source(img)))


async def test_missing_device_is_no_media(tmp_path: Path, make_test_image: ImageMaker):
    img = make_test_image(MiB)
    drive = BlockDrive(str(tmp_path / "no-such-dev"), "u")
    with pytest.raises(NoMedia):
        await drain(drive.write(source(img)))
    assert await drive.state() is DriveState.GONE


async def test_device_shrinking_mid_verify_is_drive_pulled(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker
):
    """A stick pulled while it is being read back fails the job as pulled, never as a pass."""
    img = make_test_image(24 * MiB)
    dev = loop_devices(32 * MiB)
    pulled_after: list[int] = []

    def pull(n: int) -> None:
        if n == 2:
            dev.shrink_to_nothing()
            pulled_after.append(n)

    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK, hooks=BlockHooks(after_verify_chunk=pull))
    events: list[JobEvent] = []
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        [result] = await burn_many(
            [drive], source(img), journal=journal, eject=False, listener=events.append
        )
        [record] = await journal.jobs()
    finally:
        await journal.close()

    assert pulled_after == [2]  # the write passed and the read-back had begun
    assert (result.ok, result.verified) == (False, False)
    assert result.reason == DrivePulled.code
    assert "during verify" in result.message or "disappeared" in result.message
    assert (record.state, record.reason) == (JobState.FAILED, DrivePulled.code)
    verify_seen = [e.done for e in events if isinstance(e, JobProgress) and e.phase is Phase.VERIFY]
    assert verify_seen  # it got as far as reading back
    assert max(verify_seen) < img.stat().st_size  # and never claimed to have read it all
    assert await drive.state() is DriveState.EMPTY  # the target now reads as 0 bytes


async def test_verify_of_pulled_device_raises_drive_pulled(
    loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(24 * MiB)
    dev = loop_devices(32 * MiB)

    def pull(n: int) -> None:
        if n == 1:
            dev.shrink_to_nothing()

    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK, hooks=BlockHooks(after_verify_chunk=pull))
    image = source(img)
    await drain(drive.write(image))
    with pytest.raises(DrivePulled, match="verify"):
        await drain(drive.verify(image))


# --------------------------------------------------------------------------- image changes


def cut_to(path: Path, size: int) -> None:
    """What `cp smaller.img same.img` does to a file a burn is reading: same inode, shorter."""
    with open(path, "r+b") as f:
        f.truncate(size)


async def test_image_shrinking_mid_write_is_image_changed_not_sigbus(
    loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(24 * MiB)
    dev = loop_devices(32 * MiB, fill=b"\x5a")

    def shrink(n: int) -> None:
        if n == 1:
            cut_to(img, 6 * MiB)  # the next chunk now lies past the end of the file

    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK, hooks=BlockHooks(after_chunk=shrink))
    with pytest.raises(ImageChanged, match="shrank"):
        await drain(drive.write(SourceImage(path=img, size=24 * MiB)))
    assert dev.read(0, CHUNK) == bytes(CHUNK)  # the target does not look bootable


async def test_image_rewritten_mid_write_gets_no_first_chunk(
    loop_devices: LoopFactory, make_test_image: ImageMaker
):
    """Same size, new content (an in-place copy of another build): no digest to catch it, yet
    the target must not be finished with a mix of two images."""
    img = make_test_image(16 * MiB)
    other = make_test_image(16 * MiB, seed=7).read_bytes()
    dev = loop_devices(16 * MiB)

    def rewrite(n: int) -> None:
        if n == 2:
            with open(img, "r+b") as f:
                f.write(other)

    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK, hooks=BlockHooks(after_chunk=rewrite))
    with pytest.raises(ImageChanged, match="changed while it was being burned"):
        await drain(drive.write(source(img)))
    assert dev.read(0, CHUNK) == bytes(CHUNK)


async def test_image_shrinking_mid_verify_is_image_changed_not_sigbus(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(24 * MiB)
    dev = loop_devices(24 * MiB)

    def shrink(n: int) -> None:
        if n == 2:
            cut_to(img, 6 * MiB)

    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK, hooks=BlockHooks(after_verify_chunk=shrink))
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        [result] = await burn_many([drive], source(img), journal=journal, eject=False)
    finally:
        await journal.close()
    assert (result.state, result.reason, result.verified) == (
        JobState.FAILED,
        "image-changed",
        False,
    )


# --------------------------------------------------------------------------- pulled / empty


async def test_an_empty_card_reader_is_no_media_not_too_small(
    loop_devices: LoopFactory, make_test_image: ImageMaker
):
    """A reader with no card is a node of 0 bytes: the visitor must be told to insert one."""
    img = make_test_image(MiB)
    dev = loop_devices(4 * MiB)
    dev.shrink_to_nothing()
    with pytest.raises(NoMedia, match="no media"):
        await drain(BlockDrive(dev.path, "u").write(source(img)))


async def test_a_target_detached_mid_write_is_drive_pulled_everywhere(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker
):
    """`losetup -d` while the write holds the device: the kernel detaches it once the write
    closes it, and the read-back finds a 0-byte node. That is a pulled target, and the kiosk
    says so, not "the disc is too small"."""
    img = make_test_image(16 * MiB)
    dev = loop_devices(16 * MiB)

    def detach(n: int) -> None:
        if n == 1:
            subprocess.run(["losetup", "-d", dev.path], check=True, capture_output=True)

    drive = BlockDrive(dev.path, "u", chunk_size=CHUNK, hooks=BlockHooks(after_chunk=detach))
    journal = await Journal.open(tmp_path / "journal.db")
    try:
        [result] = await burn_many([drive], source(img), journal=journal, eject=False)
        [record] = await journal.jobs()
    finally:
        await journal.close()
    assert (result.state, result.reason) == (JobState.FAILED, "drive-pulled")
    assert record.reason == "drive-pulled"
    view: ResultView = {
        "job_id": result.job_id,
        "image": "",
        "ok": False,
        "reason": result.reason,
        "message": result.message,
        "image_name": img.name,
    }
    assert reason_text(view) == failures.sentence("drive-pulled")
    assert reason_text(view).startswith("The burner or stick was unplugged")
