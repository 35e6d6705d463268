"""Compressed images burned as a user does it, `burnstand-agent burn --image X.img.xz`, onto real
loop devices: each format unpacks onto the target byte for byte, and every kind of bad input
fails with one clear line, a non-zero exit, a blank first block and a "failed" journal entry."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.appliance.diskimages import (
    DISK_SIZE,
    compress,
    damage,
    make_bmap,
    make_disk_image,
    need_tools,
)
from tests.appliance.test_cli import agent, events

if TYPE_CHECKING:
    from tests.appliance.conftest import LoopDevice, LoopFactory

MiB = 1024 * 1024
FILL = b"\x99"  # what a used card holds before the burn
FIRST_BLOCK = 8 * MiB  # the writer's chunk: blanked first, written last


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_disk_image(tmp_path_factory.mktemp("disk"))


def burn(tmp_path: Path, image: Path, target: str, *extra: str) -> tuple[Any, list[dict[str, Any]]]:
    run = agent(
        "burn",
        "--image",
        str(image),
        "--target",
        target,
        "--json",
        "--journal",
        str(tmp_path / "j.db"),
        *extra,
    )
    return run, events(run.stdout)


def journal_states(tmp_path: Path) -> list[str]:
    run = agent("jobs", "--journal", str(tmp_path / "j.db"), "--json")
    assert run.returncode == 0, run.stderr
    return [json.loads(line)["state"] for line in run.stdout.splitlines()]


def assert_failed(
    tmp_path: Path,
    run: Any,
    evs: list[dict[str, Any]],
    dev: LoopDevice,
    reason: str,
    *,
    untouched: bool = False,
) -> str:
    """Exit 1, one stderr line with the reason, journal failed, and the target's first block
    blank; a file refused before writing leaves the target as it was (`untouched`)."""
    assert run.returncode == 1, run.stdout
    assert run.stderr.count("\n") == 1, run.stderr
    assert reason in run.stderr
    [result] = [e for e in evs if e["event"] == "result"]
    assert (result["ok"], result["reason"]) == (False, reason)
    want = FILL * FIRST_BLOCK if untouched else bytes(FIRST_BLOCK)
    assert dev.read(0, FIRST_BLOCK) == want
    assert journal_states(tmp_path) == ["failed"]
    return str(result["message"])


@pytest.mark.parametrize("fmt", ["xz", "gzip", "bzip2", "zstd", "zip"])
def test_compressed_image_unpacks_onto_the_target(
    tmp_path: Path, disk: Path, loop_devices: LoopFactory, fmt: str
):
    packed = compress(disk, fmt)
    dev = loop_devices(64 * MiB, fill=FILL)
    run, evs = burn(tmp_path, packed, dev.path)
    assert run.returncode == 0, run.stderr
    [result] = [e for e in evs if e["event"] == "result"]
    assert result["ok"]
    assert result["verified"]
    assert dev.read(0, DISK_SIZE) == disk.read_bytes()
    # Past the image the card keeps what it held.
    assert dev.read(DISK_SIZE, MiB) == FILL * MiB
    verify = [e for e in evs if e["event"] == "progress" and e["phase"] == "verify"]
    assert verify[-1]["done"] == verify[-1]["total"] == DISK_SIZE


def test_renamed_file_is_recognised_by_content(
    tmp_path: Path, disk: Path, loop_devices: LoopFactory
):
    renamed = tmp_path / "raspios.img"  # an xz file without its .xz
    renamed.write_bytes(compress(disk, "xz").read_bytes())
    dev = loop_devices(64 * MiB)
    run, _ = burn(tmp_path, renamed, dev.path)
    assert run.returncode == 0, run.stderr
    assert dev.read(0, DISK_SIZE) == disk.read_bytes()


def test_raw_flag_writes_the_compressed_bytes(
    tmp_path: Path, disk: Path, loop_devices: LoopFactory
):
    packed = compress(disk, "xz")
    dev = loop_devices(64 * MiB)
    run, _ = burn(tmp_path, packed, dev.path, "--raw")
    assert run.returncode == 0, run.stderr
    size = packed.stat().st_size
    assert dev.read(0, 6) == b"\xfd7zXZ\x00"
    assert dev.read(0, size) == packed.read_bytes()


def test_declared_extracted_digest_and_size_pass(
    tmp_path: Path, disk: Path, loop_devices: LoopFactory
):
    import hashlib

    dev = loop_devices(64 * MiB)
    sha = hashlib.sha256(disk.read_bytes()).hexdigest()
    run, _ = burn(
        tmp_path,
        compress(disk, "gzip"),
        dev.path,
        "--extracted-sha256",
        sha,
        "--extracted-size",
        str(DISK_SIZE),
    )
    assert run.returncode == 0, run.stderr
    assert dev.read(0, DISK_SIZE) == disk.read_bytes()


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("fmt", ["xz", "gzip", "zstd"])
def test_truncated_image_fails_blank(
    tmp_path: Path, disk: Path, loop_devices: LoopFactory, fmt: str
):
    cut = damage(compress(disk, fmt), tmp_path / f"cut.{fmt}", truncate_to=0.6)
    dev = loop_devices(64 * MiB, fill=FILL)
    run, evs = burn(tmp_path, cut, dev.path)
    message = assert_failed(tmp_path, run, evs, dev, "corrupt-image")
    assert f"not a sound {fmt} file" in message


@pytest.mark.parametrize("fmt", ["xz", "gzip", "zstd", "bzip2"])
def test_corrupt_byte_mid_stream_fails_blank(
    tmp_path: Path, disk: Path, loop_devices: LoopFactory, fmt: str
):
    bad = damage(compress(disk, fmt), tmp_path / f"bad.{fmt}", flip_at=0.5)
    dev = loop_devices(64 * MiB, fill=FILL)
    run, evs = burn(tmp_path, bad, dev.path)
    assert_failed(tmp_path, run, evs, dev, "corrupt-image")


def test_zip_crc_error_fails_blank(tmp_path: Path, disk: Path, loop_devices: LoopFactory):
    bad = damage(compress(disk, "zip"), tmp_path / "bad.zip", flip_at=0.5)
    dev = loop_devices(64 * MiB, fill=FILL)
    run, evs = burn(tmp_path, bad, dev.path)
    assert_failed(tmp_path, run, evs, dev, "corrupt-image")


def test_zip_with_two_images_names_them(tmp_path: Path, loop_devices: LoopFactory):
    need_tools("zip")
    import subprocess

    for name in ("a.img", "b.img"):
        (tmp_path / name).write_bytes(random.Random(name).randbytes(MiB))
    two = tmp_path / "two.zip"
    subprocess.run(["zip", "-q", "-j", str(two), "a.img", "b.img"], cwd=tmp_path, check=True)
    dev = loop_devices(16 * MiB, fill=FILL)
    run, evs = burn(tmp_path, two, dev.path)
    message = assert_failed(tmp_path, run, evs, dev, "unsupported-image", untouched=True)
    assert "2 files (a.img, b.img)" in message


def test_zip_without_an_image_says_what_it_holds(tmp_path: Path, loop_devices: LoopFactory):
    need_tools("zip")
    import subprocess

    (tmp_path / "docs").mkdir()
    empty = tmp_path / "empty.zip"
    subprocess.run(["zip", "-q", str(empty), "docs/"], cwd=tmp_path, check=True)
    dev = loop_devices(16 * MiB, fill=FILL)
    run, evs = burn(tmp_path, empty, dev.path)
    message = assert_failed(tmp_path, run, evs, dev, "unsupported-image", untouched=True)
    assert "no image in it (it holds docs/)" in message


@pytest.mark.parametrize("fmt", ["gzip", "xz"])
def test_image_larger_than_target_stops_at_its_end(
    tmp_path: Path, disk: Path, loop_devices: LoopFactory, fmt: str
):
    # gzip does not state its size: the unpacker is stopped when it passes the target's end;
    # xz does: the burn is refused before anything is written.
    dev = loop_devices(32 * MiB, fill=FILL)
    run, evs = burn(tmp_path, compress(disk, fmt), dev.path)
    message = assert_failed(tmp_path, run, evs, dev, "media-too-small", untouched=fmt == "xz")
    assert ("unpacks to more than" if fmt == "gzip" else f"unpacks to {DISK_SIZE}") in message


def test_stream_past_declared_size_is_stopped_there(
    tmp_path: Path, disk: Path, loop_devices: LoopFactory
):
    dev = loop_devices(64 * MiB, fill=FILL)
    declared = 20 * MiB
    run, evs = burn(tmp_path, compress(disk, "zstd"), dev.path, "--extracted-size", str(declared))
    message = assert_failed(tmp_path, run, evs, dev, "corrupt-image")
    assert f"more than the {declared} bytes it declares" in message
    # Nothing was written past the declared size.
    assert dev.read(declared, DISK_SIZE - declared) == FILL * (DISK_SIZE - declared)


def test_wrong_extracted_sha256_fails_blank(tmp_path: Path, disk: Path, loop_devices: LoopFactory):
    dev = loop_devices(64 * MiB, fill=FILL)
    run, evs = burn(tmp_path, compress(disk, "xz"), dev.path, "--extracted-sha256", "a" * 64)
    message = assert_failed(tmp_path, run, evs, dev, "corrupt-image")
    assert "extracted_sha256" in message


def test_wrong_sha256_of_the_delivered_file_fails_blank(
    tmp_path: Path, disk: Path, loop_devices: LoopFactory
):
    dev = loop_devices(64 * MiB, fill=FILL)
    run, evs = burn(tmp_path, compress(disk, "zstd"), dev.path, "--sha256", "b" * 64)
    message = assert_failed(tmp_path, run, evs, dev, "corrupt-image")
    assert "does not match its digest" in message


def _seven_zip(path: Path) -> Path:
    path.write_bytes(b"7z\xbc\xaf\x27\x1c\x00\x04" + random.Random(1).randbytes(MiB))
    return path


def _rar(path: Path) -> Path:
    path.write_bytes(b"Rar!\x1a\x07\x01\x00" + random.Random(2).randbytes(MiB))
    return path


def _dmg(path: Path) -> Path:
    trailer = b"koly" + bytes(508)
    path.write_bytes(random.Random(3).randbytes(MiB) + trailer)
    return path


@pytest.mark.parametrize(
    ("make", "what"),
    [(_seven_zip, "7-Zip"), (_rar, "RAR"), (_dmg, "Apple disk image")],
)
def test_unsupported_archive_names_the_supported_formats(
    tmp_path: Path, loop_devices: LoopFactory, make: Any, what: str
):
    image = make(tmp_path / "download.img")
    dev = loop_devices(16 * MiB, fill=FILL)
    run, evs = burn(tmp_path, image, dev.path)
    message = assert_failed(tmp_path, run, evs, dev, "unsupported-image", untouched=True)
    assert what in message
    assert "supported are xz, gzip, bzip2, zstd, zip" in message


def test_disc_burner_refuses_compressed_bytes(tmp_path: Path, disk: Path):
    out = tmp_path / "disc.iso"
    run, _ = burn(tmp_path, compress(disk, "xz"), f"stdio:{out}")
    assert run.returncode == 1
    assert "compressed-image" in run.stderr
    assert not out.exists() or out.read_bytes()[:6] != b"\xfd7zXZ\x00"


# --------------------------------------------------------------------------- bmap


@pytest.mark.parametrize("fmt", ["raw", "xz"])
def test_bmap_burn_zeroes_the_holes_and_verifies_all(
    tmp_path: Path, disk: Path, loop_devices: LoopFactory, fmt: str
):
    bmap = make_bmap(disk)
    image = disk if fmt == "raw" else compress(disk, "xz")
    dev = loop_devices(64 * MiB, fill=FILL)  # a used card: its old bytes must not survive
    run, evs = burn(tmp_path, image, dev.path, "--bmap", str(bmap))
    assert run.returncode == 0, run.stderr
    [result] = [e for e in evs if e["event"] == "result"]
    assert result["verified"]
    # Holes read as zeros (bmaptool would leave the card's old bytes there).
    assert dev.read(0, DISK_SIZE) == disk.read_bytes()
    verify = [e for e in evs if e["event"] == "progress" and e["phase"] == "verify"]
    assert verify[-1]["done"] == DISK_SIZE


def test_bmap_of_another_image_fails_blank(tmp_path: Path, disk: Path, loop_devices: LoopFactory):
    other = make_disk_image(tmp_path / "other-build", seed=8)  # same layout, other files
    bmap = make_bmap(other)
    dev = loop_devices(64 * MiB, fill=FILL)
    run, evs = burn(tmp_path, disk, dev.path, "--bmap", str(bmap))
    message = assert_failed(tmp_path, run, evs, dev, "bad-bmap")
    assert "the bmap does not match disk.img" in message


def test_damaged_bmap_is_refused(tmp_path: Path, disk: Path, loop_devices: LoopFactory):
    bmap = make_bmap(disk)
    text = bmap.read_text()
    edited = tmp_path / "edited.bmap"
    edited.write_text(text.replace("<ImageSize> ", "<ImageSize> 1", 1))
    dev = loop_devices(64 * MiB, fill=FILL)
    run, evs = burn(tmp_path, disk, dev.path, "--bmap", str(edited))
    message = assert_failed(tmp_path, run, evs, dev, "bad-bmap", untouched=True)
    assert "is damaged" in message
