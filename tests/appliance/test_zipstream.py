"""The zip entry reader on zips made by the real `zip` program: written to a file (sizes in the
local header), to a pipe (a data descriptor after the data, with zip64 or 32-bit sizes), stored,
with a directory in front, and the bad ones (two files, a flipped byte, cut short, encrypted,
another method). Each is fed whole and one byte at a time, as a download may deliver it."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.images.zipstream import NotStreamable, ZipDamaged, ZipEntryReader, ZipRefused

DATA = hashlib.shake_256(b"zip").digest(200_000) + bytes(300_000) + b"tail" * 1000


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("zip") is None:
        pytest.skip("zip not installed (make test installs it)")
    root = tmp_path_factory.mktemp("zips")
    (root / "pi.img").write_bytes(DATA)
    (root / "other.img").write_bytes(b"x" * 1000)
    (root / "dir").mkdir()
    return root


def zip_file(root: Path, name: str, *files: str, opts: tuple[str, ...] = ()) -> bytes:
    out = root / name
    out.unlink(missing_ok=True)
    subprocess.run(["zip", "-q", *opts, str(out), *files], cwd=root, check=True)
    return out.read_bytes()


def zip_pipe(root: Path, *args: str) -> bytes:
    """What `zip` writes when its output is a pipe: sizes only in a descriptor at the end."""
    with open(root / "pi.img", "rb") as src:
        zipper = subprocess.Popen(["zip", "-q", *args, "-", "-"], stdin=src, stdout=subprocess.PIPE)
        out, _ = zipper.communicate(timeout=60)
    assert zipper.returncode == 0
    return out


def unpack(data: bytes, step: int) -> tuple[bytes, ZipEntryReader]:
    z = ZipEntryReader()
    out = bytearray()
    for i in range(0, len(data), step):
        z.feed(data[i : i + step])
        while piece := z.read(4096):
            out += piece
    z.end_of_input()
    return bytes(out), z


def packed(made: Path, kind: str) -> bytes:
    if kind == "file":
        return zip_file(made, "a.zip", "pi.img")
    if kind == "stored":
        return zip_file(made, "s.zip", "pi.img", opts=("-0",))
    if kind == "dir-first":
        return zip_file(made, "d.zip", "dir", "pi.img")
    if kind == "pipe-zip64":
        return zip_pipe(made)
    return zip_pipe(made, "-fz-")  # pipe, 32-bit descriptor


KINDS = ["file", "stored", "dir-first", "pipe-zip64", "pipe-32"]


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_unpacks_to_the_image_fed_whole_and_byte_by_byte(made: Path, kind: str) -> None:
    data = packed(made, kind)
    whole, z = unpack(data, len(data))
    assert whole == DATA
    assert z.image in ("pi.img", "-")
    one, _ = unpack(data, 1)
    assert one == DATA


def test_a_flipped_byte_is_a_crc_or_inflate_error(made: Path) -> None:
    data = bytearray(packed(made, "pipe-zip64"))
    data[len(data) // 3] ^= 0x55
    with pytest.raises(ZipDamaged):
        unpack(bytes(data), 65536)


def test_a_stored_entry_with_a_changed_byte_fails_its_crc(made: Path) -> None:
    data = bytearray(packed(made, "stored"))
    data[len(data) // 2] ^= 0x55
    with pytest.raises(ZipDamaged, match="CRC"):
        unpack(bytes(data), 65536)


@pytest.mark.parametrize("kind", ["file", "pipe-zip64"])
def test_a_zip_cut_short_is_damaged(made: Path, kind: str) -> None:
    data = packed(made, kind)
    with pytest.raises(ZipDamaged, match="ends early"):
        unpack(data[: len(data) // 2], 65536)


def test_two_files_are_refused_by_name(made: Path) -> None:
    data = zip_file(made, "two.zip", "pi.img", "other.img")
    with pytest.raises(ZipRefused, match=r"pi\.img, other\.img"):
        unpack(data, 65536)


def test_a_zip_of_only_a_directory_holds_no_file(made: Path) -> None:
    data = zip_file(made, "empty.zip", "dir")
    with pytest.raises(ZipRefused, match="no file"):
        unpack(data, 65536)


@pytest.mark.parametrize(
    ("args", "words"), [(("-P", "secret"), "encrypted"), (("-Z", "bzip2"), "method 12")]
)
def test_entries_that_cannot_stream_say_why(made: Path, args: tuple[str, ...], words: str) -> None:
    data = zip_file(made, "odd.zip", "pi.img", opts=args)
    with pytest.raises(NotStreamable, match=words):
        unpack(data, 65536)


def test_bytes_that_are_no_zip_are_damaged() -> None:
    with pytest.raises(ZipDamaged, match="no zip entry header"):
        unpack(b"this is not a zip file at all" * 10, 100)
