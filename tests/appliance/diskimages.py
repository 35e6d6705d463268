"""Real disk images as people bring them: an sfdisk-partitioned image with a FAT and an ext4
partition (made with mkfs.vfat and `mkfs.ext4 -d`, no loop partitions), and that image packed
with the real xz, gzip, bzip2, zstd and zip programs."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path
from typing import IO

import pytest

MiB = 1024 * 1024
SECTOR = 512
FAT_START, FAT_SIZE = 1 * MiB, 16 * MiB
EXT_START = FAT_START + FAT_SIZE
DISK_SIZE = 48 * MiB
BLOCK = 4096
TOOLS = ("sfdisk", "mkfs.vfat", "mkfs.ext4", "xz", "gzip", "bzip2", "zstd", "zip")


def need_tools(*names: str) -> None:
    missing = [n for n in names or TOOLS if shutil.which(n) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (make test installs them)")


def _run(*argv: str, stdout: IO[bytes] | None = None) -> None:
    out = subprocess.DEVNULL if stdout is None else stdout
    subprocess.run(argv, check=True, stdout=out, stderr=subprocess.PIPE)


def make_disk_image(root: Path, *, seed: int = 7) -> Path:
    """A 48 MiB MBR disk: p1 FAT (label BOOT), p2 ext4 (label ROOT) holding random and text
    files, and free space; the kind of image a Pi distribution ships."""
    need_tools("sfdisk", "mkfs.vfat", "mkfs.ext4")
    rng = random.Random(seed)
    tree = root / "rootfs"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("burnstand-test\n")
    (tree / "etc" / "motd").write_text("the quick brown fox\n" * 20000)
    (tree / "firmware.bin").write_bytes(rng.randbytes(6 * MiB))
    fat, ext = root / "fat.part", root / "ext.part"
    _run("mkfs.vfat", "-C", "-n", "BOOT", str(fat), str(FAT_SIZE // 1024))
    ext_size = DISK_SIZE - EXT_START
    _run("mkfs.ext4", "-q", "-F", "-L", "ROOT", "-d", str(tree), str(ext), f"{ext_size // 1024}k")
    disk = root / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(DISK_SIZE)
    table = (
        "label: dos\n"
        f"start={FAT_START // SECTOR}, size={FAT_SIZE // SECTOR}, type=c\n"
        f"start={EXT_START // SECTOR}, type=83\n"
    )
    subprocess.run(["sfdisk", "-q", str(disk)], input=table.encode(), check=True)
    # Only the blocks that hold data are written, so the image is sparse (as a distribution's
    # build leaves it) and `bmaptool create` finds its holes.
    with open(disk, "r+b") as f:
        for part, at in ((fat, FAT_START), (ext, EXT_START)):
            data = part.read_bytes()
            for off in range(0, len(data), BLOCK):
                piece = data[off : off + BLOCK]
                if piece.count(0) != len(piece):
                    f.seek(at + off)
                    f.write(piece)
    return disk


def make_bmap(image: Path) -> Path:
    """The bmap of `image`, made by the real `bmaptool create`."""
    need_tools("bmaptool")
    out = image.with_name(image.name + ".bmap")
    _run("bmaptool", "create", "-o", str(out), str(image))
    return out


def compress(raw: Path, fmt: str) -> Path:
    """`raw` packed by the real program for `fmt`; returns the new file."""
    argv = {
        "xz": ["xz", "-T0", "-6", "-c"],
        "gzip": ["gzip", "-c"],
        "bzip2": ["bzip2", "-c"],
        "zstd": ["zstd", "-q", "-c"],
    }
    suffix = {"xz": ".xz", "gzip": ".gz", "bzip2": ".bz2", "zstd": ".zst", "zip": ".zip"}[fmt]
    out = raw.with_name(raw.name + suffix)
    if out.exists():
        return out
    need_tools(fmt)
    if fmt == "zip":
        _run("zip", "-q", "-j", str(out), str(raw))
    else:
        with open(out, "wb") as f:
            _run(*argv[fmt], str(raw), stdout=f)
    return out


def damage(src: Path, dst: Path, *, truncate_to: float | None = None, flip_at: float = 0.0) -> Path:
    """A copy of `src` cut to a fraction of its length, or with one byte flipped at a fraction."""
    data = bytearray(src.read_bytes())
    if truncate_to is not None:
        data = data[: int(len(data) * truncate_to)]
    if flip_at:
        data[int(len(data) * flip_at)] ^= 0x55
    dst.write_bytes(bytes(data))
    return dst
