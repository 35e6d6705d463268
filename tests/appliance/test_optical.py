"""Optical backend: real xorriso and cdrskin burning `stdio:` pseudo-drives, tray, errors."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import xxhash

from appliance.drives import optical, optical_feed, optical_verify
from appliance.drives.base import (
    CorruptImage,
    DriveState,
    ImageChanged,
    MediaTooSmall,
    NoMedia,
    Phase,
    Progress,
    SourceImage,
    ToolFailed,
    ToolMissing,
    VerifyMismatch,
)
from appliance.drives.imagefile import ImageFile
from appliance.drives.optical import (
    CDROM_DRIVE_STATUS,
    CDROMCLOSETRAY,
    CDROMEJECT,
    CDS_DISC_OK,
    CDS_NO_DISC,
    CDS_TRAY_OPEN,
    MIB,
    PACIFIER_INTERVAL,
    LineSplitter,
    OpticalDrive,
    ToolChoice,
    choose_tool,
    fifo_bytes,
    parse_progress,
)

# Captured from cdrskin 1.5.4 and xorriso 1.5.4 on this machine.
CDRSKIN_OUT = (
    b"Waiting for reader process to fill input buffer ... input buffer ready.\n\n"
    b"                                                                              \r"
    b"Track 01:    1 of   20 MB written (fifo 100%) [buf  50%]  72.9x.\r"
    b"Track 01:    3 of   20 MB written (fifo 100%) [buf  50%]  64.4x.\r"
    b"Track 01:   18 of   20 MB written (fifo 100%) [buf  50%]  88.2x.\r"
    b"Track 01: Total bytes read/written: 20971520/20971520 (10240 sectors).\n"
    b"Writing  time:  0.265s\n"
)
XORRISO_ERR = (
    b"Beginning to write data track.\n"
    b"xorriso : UPDATE :    7 of   20 MB written (fifo  0%) [buf  50%]\n"
    b"Writing to 'stdio:/tmp/optx/t1.iso' completed successfully.\n"
)


def test_parse_progress_lines() -> None:
    assert parse_progress("Track 01:   12 of   64 MB written (fifo 100%) [buf  99%]   4.0x.") == (
        12 * MIB
    )
    assert parse_progress("xorriso : UPDATE :    7 of   20 MB written (fifo  0%) [buf  50%]") == (
        7 * MIB
    )
    assert parse_progress("Track 01: Total bytes read/written: 20971520/20971520 (10240 s") == (
        20971520
    )
    assert parse_progress("Starting to write CD/DVD at speed MAX in real TAO mode") is None
    assert parse_progress("Total size:       20 MB (02:18.53) = 10240 sectors") is None


@pytest.mark.parametrize("piece", [1, 7, 64, len(CDRSKIN_OUT)])
def test_splitter_handles_carriage_returns_in_any_chunking(piece: int) -> None:
    splitter = LineSplitter()
    lines: list[str] = []
    for i in range(0, len(CDRSKIN_OUT), piece):
        lines += splitter.feed(CDRSKIN_OUT[i : i + piece])
    lines += splitter.flush()
    written = [w for w in map(parse_progress, lines) if w is not None]
    assert written == [1 * MIB, 3 * MIB, 18 * MIB, 20971520]
    assert lines[-1] == "Writing  time:  0.265s"
    xorriso = [parse_progress(x) for x in LineSplitter().feed(XORRISO_ERR)]
    assert xorriso == [None, 7 * MIB, None]


@pytest.fixture(scope="module")
def iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ISO 9660 image of a few MiB made by xorriso -as mkisofs."""
    if shutil.which("xorriso") is None:
        pytest.skip("xorriso is not installed (make test installs it)")
    root = tmp_path_factory.mktemp("isoroot")
    tree = root / "tree"
    tree.mkdir()
    for i in range(3):
        (tree / f"part{i}.bin").write_bytes(os.urandom(4 * MIB))
    (tree / "README.txt").write_text("burnstand test disc\n")
    out = root / "test.iso"
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "-quiet", "-V", "BURNSTAND", "-o", str(out), str(tree)],
        check=True,
        capture_output=True,
    )
    return out


def read(path: Path) -> bytes:
    return path.read_bytes()


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ 0x10]))


def source(path: Path, **kw: object) -> SourceImage:
    return SourceImage(path=path, size=path.stat().st_size, **kw)  # type: ignore[arg-type]


async def collect(events: AsyncIterator[Progress]) -> list[Progress]:
    return [p async for p in events]


def assert_progress(events: list[Progress], phase: Phase, size: int) -> None:
    assert all(p.phase is phase for p in events)
    percents = [p.percent for p in events]
    assert percents == sorted(percents)  # never goes backwards
    assert len(set(percents)) >= 3  # moved through several values
    assert percents[-1] == 100.0
    assert events[-1].done == size
    assert any(p.speed > 0 for p in events)


async def test_xorriso_burn_verify_good(iso: Path, tmp_path: Path) -> None:
    drive = OpticalDrive(f"stdio:{tmp_path / 'disc.img'}", "uid0", tool="xorriso")
    image = source(iso)
    wrote = await collect(drive.write(image))
    assert drive.last_tool == "xorriso"
    assert_progress(wrote, Phase.WRITE, image.size)
    disc, original = read(tmp_path / "disc.img"), read(iso)
    assert len(disc) >= image.size  # padded past the image
    assert disc[: image.size] == original
    checked = await collect(drive.verify(image))
    assert checked[-1].phase is Phase.VERIFY
    assert checked[-1].percent == 100.0


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory user `nobody` can write (pytest's tmp dirs are private to root)."""
    with tempfile.TemporaryDirectory(prefix="burnstand-cdrskin-") as d:
        os.chmod(d, 0o777)  # noqa: S103 - the unprivileged cdrskin must create its pseudo-drive
        yield Path(d)


async def test_cdrskin_burn_verify_good(iso: Path, shared_dir: Path) -> None:
    if shutil.which("cdrskin") is None or shutil.which("runuser") is None:
        pytest.skip("cdrskin/runuser not installed (make test installs them)")
    # As root cdrskin refuses pseudo-drives, so it runs as an unprivileged user.
    drive = OpticalDrive(
        f"stdio:{shared_dir / 'disc.img'}", "uid1", tool="cdrskin", run_as="nobody"
    )
    image = source(iso)
    wrote = await collect(drive.write(image))
    assert drive.last_tool == "cdrskin"
    assert wrote[-1].percent == 100.0
    assert [p.percent for p in wrote] == sorted(p.percent for p in wrote)
    checked = await collect(drive.verify(image))
    assert checked[-1].done == image.size


async def test_verify_catches_a_corrupted_disc(iso: Path, tmp_path: Path) -> None:
    target = tmp_path / "disc.img"
    drive = OpticalDrive(f"stdio:{target}", "uid0")
    image = source(iso)
    await collect(drive.write(image))
    flip(target, image.size // 2 + 123)  # one byte rots in the middle of the burned data
    with pytest.raises(VerifyMismatch, match=f"at byte {image.size // 2 + 123} "):
        await collect(drive.verify(image))


async def test_verify_of_a_short_disc_fails(iso: Path, tmp_path: Path) -> None:
    target = tmp_path / "disc.img"
    drive = OpticalDrive(f"stdio:{target}", "uid0")
    image = source(iso)
    await collect(drive.write(image))
    os.truncate(target, image.size - 4096)
    with pytest.raises(VerifyMismatch, match="holds only"):
        await collect(drive.verify(image))


async def test_verify_with_nothing_burned(iso: Path, tmp_path: Path) -> None:
    drive = OpticalDrive(f"stdio:{tmp_path / 'never.img'}", "uid0")
    with pytest.raises(NoMedia):
        await collect(drive.verify(source(iso)))


async def test_missing_tools(iso: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    drive = OpticalDrive(f"stdio:{tmp_path / 'disc.img'}", "uid0")
    with pytest.raises(ToolMissing, match="not installed"):
        await collect(drive.write(source(iso)))
    assert not (tmp_path / "disc.img").exists()


async def test_failing_tool_reports_its_stderr(iso: Path, tmp_path: Path) -> None:
    target = tmp_path / "adir"
    target.mkdir()
    drive = OpticalDrive(f"stdio:{target}", "uid0", tool="xorriso")
    with pytest.raises(ToolFailed, match="Is a directory") as err:
        await collect(drive.write(source(iso)))
    assert "xorriso exited with status" in str(err.value)
    assert await drive.state() is DriveState.IDLE  # usable again, not stuck busy


async def test_rotten_image_never_completes_the_disc(iso: Path, tmp_path: Path) -> None:
    data = read(iso)
    good = xxhash.xxh3_128(data).hexdigest()
    rotten = tmp_path / "rotten.iso"
    shutil.copyfile(iso, rotten)
    flip(rotten, 5 * MIB)  # the cache's SD card flipped a bit after the image was proven
    target = tmp_path / "disc.img"
    drive = OpticalDrive(f"stdio:{target}", "uid0", chunk_bytes=MIB)
    with pytest.raises(CorruptImage, match="digest"):
        await collect(drive.write(source(rotten, xxh3_128=good, proven=True)))
    # The tool was stopped before the last chunk: the pseudo-drive never holds the image.
    held = read(target) if target.exists() else b""
    assert held[: len(data)] != read(rotten)


async def test_image_with_wrong_size_is_refused(iso: Path, tmp_path: Path) -> None:
    drive = OpticalDrive(f"stdio:{tmp_path / 'disc.img'}", "uid0")
    wrong = SourceImage(path=iso, size=source(iso).size + 2048)
    with pytest.raises(CorruptImage, match="the take says"):
        await collect(drive.write(wrong))
    assert not (tmp_path / "disc.img").exists()


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


async def test_media_too_small_is_refused_before_writing(iso: Path, tiny_fs: Path) -> None:
    drive = OpticalDrive(f"stdio:{tiny_fs / 'disc.img'}", "uid0")
    with pytest.raises(MediaTooSmall, match="bytes free"):
        await collect(drive.write(source(iso)))
    assert not (tiny_fs / "disc.img").exists()


async def test_pseudo_drive_tray_and_state(tmp_path: Path) -> None:
    drive = OpticalDrive(f"stdio:{tmp_path / 'disc.img'}", "uid0")
    assert await drive.state() is DriveState.IDLE
    await drive.eject()
    assert await drive.state() is DriveState.TRAY_OPEN
    await drive.close_tray()
    assert await drive.state() is DriveState.IDLE
    gone = OpticalDrive(f"stdio:{tmp_path / 'nowhere' / 'disc.img'}", "uid0")
    assert await gone.state() is DriveState.GONE


class FakeCdrom:
    """The kernel side of /dev/sr0's ioctls, for a machine with no burner."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, path: str, request: int, arg: int) -> int:
        self.calls.append((path, request, arg))
        if request == CDROMEJECT:
            self.status = CDS_TRAY_OPEN
        elif request == CDROMCLOSETRAY:
            self.status = CDS_NO_DISC
        elif request == CDROM_DRIVE_STATUS:
            return self.status
        return 0


async def test_real_drive_tray_through_ioctls() -> None:
    cdrom = FakeCdrom(CDS_DISC_OK)
    drive = OpticalDrive("/dev/sr0", "uid0", ioctl=cdrom)
    assert await drive.state() is DriveState.IDLE
    await drive.eject()
    assert await drive.state() is DriveState.TRAY_OPEN
    await drive.close_tray()
    assert await drive.state() is DriveState.EMPTY
    assert [c[1] for c in cdrom.calls] == [
        CDROM_DRIVE_STATUS,
        CDROMEJECT,
        CDROM_DRIVE_STATUS,
        CDROMCLOSETRAY,
        CDROM_DRIVE_STATUS,
    ]
    assert all(c[0] == "/dev/sr0" for c in cdrom.calls)


async def test_real_drive_without_disc_is_refused(iso: Path) -> None:
    cdrom = FakeCdrom(CDS_TRAY_OPEN)  # tray open, and closing it finds no disc
    drive = OpticalDrive("/dev/sr0", "uid0", ioctl=cdrom, tool="xorriso")
    with pytest.raises(NoMedia, match="no disc"):
        await collect(drive.write(source(iso)))
    assert CDROMCLOSETRAY in [c[1] for c in cdrom.calls]


async def test_unplugged_drive_reports_gone() -> None:
    def unplugged(path: str, request: int, arg: int) -> int:
        raise OSError(errno.ENOENT, "No such file or directory")

    drive = OpticalDrive("/dev/sr7", "uid0", ioctl=unplugged)
    assert await drive.state() is DriveState.GONE


def test_tool_choice_policy(tmp_path: Path) -> None:
    both = {"cdrskin": "/usr/bin/cdrskin", "xorriso": "/usr/bin/xorriso"}.get
    perm = tmp_path / "allow_emulated_drives"

    def pick(path: str, root: bool, which: Callable[[str], str | None] = both) -> str:
        return choose_tool(path, as_root=root, which=which, permission_file=perm).name

    # xorriso first when both are there (a quarter of cdrskin's CPU for the same burn).
    assert pick("stdio:/x.iso", root=True) == "xorriso"
    assert pick("stdio:/x.iso", root=False) == "xorriso"
    assert pick("/dev/sr0", root=False) == "xorriso"
    only_cdrskin = {"cdrskin": "/usr/bin/cdrskin"}.get
    assert pick("/dev/sr0", root=True, which=only_cdrskin) == "cdrskin"
    assert pick("stdio:/x.iso", root=False, which=only_cdrskin) == "cdrskin"
    with pytest.raises(ToolMissing, match="refuses stdio"):
        pick("stdio:/x.iso", root=True, which=only_cdrskin)  # as root cdrskin refuses a file
    perm.touch()
    assert pick("stdio:/x.iso", root=True, which=only_cdrskin) == "cdrskin"
    perm.unlink()
    asked = choose_tool("stdio:/x.iso", prefer="cdrskin", as_root=False, which=both)
    assert asked.name == "cdrskin"
    with pytest.raises(ToolMissing, match="xorriso or cdrskin is not installed"):
        pick("/dev/sr0", root=False, which={}.get)


def test_bad_drive_path() -> None:
    with pytest.raises(ValueError, match="not an optical drive path"):
        OpticalDrive("/tmp/disc.iso", "uid0")


async def test_cancelled_burn_kills_the_tool(iso: Path, tmp_path: Path) -> None:
    drive = OpticalDrive(f"stdio:{tmp_path / 'disc.img'}", "uid0")
    events = drive.write(source(iso))
    first = await asyncio.wait_for(anext(events), timeout=30)
    assert first.phase is Phase.WRITE
    await events.aclose()
    assert await drive.state() is DriveState.IDLE
    # Nothing of ours is still running: a fresh burn to the same pseudo-drive succeeds.
    wrote = await collect(drive.write(source(iso)))
    assert wrote[-1].percent == 100.0


def test_xorriso_argv_checks_for_the_end_often() -> None:
    """Without a short pacifier interval xorriso notices a finished burn only on the next
    wall-clock second, so every disc would take up to a second longer than its data."""
    argv = ToolChoice("xorriso", "/usr/bin/xorriso").burn_argv(
        "stdio:/tmp/d.img", 10 * MIB, fifo_bytes(10 * MIB), real_drive=False
    )
    assert argv[:4] == ["/usr/bin/xorriso", "-pacifier", f"interval={PACIFIER_INTERVAL}", "-as"]
    assert 0.1 <= PACIFIER_INTERVAL <= 0.25  # also >= 4 progress lines a second
    assert argv[argv.index("-as") + 1] == "cdrecord"
    assert "fs=1m" in argv  # a fifo of an eighth of the image, at least 1 MiB
    assert f"tsize={10 * MIB}" in argv
    assert argv[-1] == "-"


def test_fifo_is_an_eighth_of_the_image_within_bounds() -> None:
    assert fifo_bytes(3 * MIB) == MIB
    assert fifo_bytes(64 * MIB) == 8 * MIB
    assert fifo_bytes(4096 * MIB) == 32 * MIB
    assert fifo_bytes(4096 * MIB, 64 * MIB) == 64 * MIB


@pytest.mark.parametrize("where", ["first", "middle", "last"])
async def test_verify_catches_one_flipped_byte_anywhere(
    iso: Path, tmp_path: Path, where: str
) -> None:
    target = tmp_path / "disc.img"
    drive = OpticalDrive(f"stdio:{target}", "uid0", tool="xorriso")
    image = source(iso)
    await collect(drive.write(image))
    offset = {"first": 0, "middle": image.size // 2 + 1, "last": image.size - 1}[where]
    flip(target, offset)
    with pytest.raises(VerifyMismatch, match=f"at byte {offset} "):
        await collect(drive.verify(image))


async def test_verify_of_a_disc_one_byte_short_fails(iso: Path, tmp_path: Path) -> None:
    # An image whose size is no multiple of a sector, on a disc cut one byte before its end:
    # the read-back must count exactly the image's bytes, not whole sectors.
    odd = tmp_path / "odd.img"
    odd.write_bytes(read(iso) + b"tail")
    target = tmp_path / "disc.img"
    target.write_bytes(read(odd)[:-1])
    drive = OpticalDrive(f"stdio:{target}", "uid0")
    with pytest.raises(VerifyMismatch, match=f"holds only {odd.stat().st_size - 1} of"):
        await collect(drive.verify(source(odd)))
    target.write_bytes(read(odd))
    checked = await collect(drive.verify(source(odd)))  # the same, whole, passes
    assert checked[-1].done == odd.stat().st_size


async def test_verify_after_the_image_changed_compares_the_new_content(
    iso: Path, tmp_path: Path
) -> None:
    # The write keeps its map of the image for verify; a file replaced in between must not be
    # judged by the stale map.
    img = tmp_path / "img.iso"
    img.write_bytes(read(iso))
    target = tmp_path / "disc.img"
    drive = OpticalDrive(f"stdio:{target}", "uid0", tool="xorriso")
    await collect(drive.write(source(img)))
    replacement = tmp_path / "new.iso"
    replacement.write_bytes(os.urandom(img.stat().st_size))
    os.replace(replacement, img)
    with pytest.raises(VerifyMismatch, match="at byte 0 "):
        await collect(drive.verify(source(img)))


def test_image_shrinking_during_verify_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """A mapped image that shrinks is SIGBUS; read by position, the shrink is a short read and
    the verify fails with a reason."""
    image, disc = tmp_path / "image.img", tmp_path / "disc.img"
    data = os.urandom(3 * optical.VERIFY_CHUNK)
    image.write_bytes(data)
    disc.write_bytes(data)
    src = ImageFile(image, len(data))
    done = [0]
    try:
        os.truncate(image, optical.VERIFY_CHUNK)  # as if the image was cut mid-verify
        with pytest.raises(ImageChanged, match="shrank"):
            optical_verify.compare(
                src, str(disc), len(data), optical.VERIFY_CHUNK, done, threading.Event()
            )
    finally:
        src.close()
    assert done == [optical.VERIFY_CHUNK]  # the part still there was compared, then it stopped


def _pid_writing(target: Path) -> int | None:
    """The process whose command line names this pseudo-drive, if one runs."""
    wanted = f"dev=stdio:{target}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # exited meanwhile
        if wanted in argv:
            return int(entry.name)
    return None


async def test_tool_crashing_mid_burn_is_a_tool_failure(tmp_path: Path) -> None:
    """The tool dies with our feed half read: a failed job naming the tool, not a crash, and
    the drive is usable again. The tool is frozen first so that it dies with unread input in
    the feed socket, the way a crashing burner leaves it."""
    big = tmp_path / "big.img"
    big.write_bytes(os.urandom(128 * MIB))
    target = tmp_path / "disc.img"
    drive = OpticalDrive(f"stdio:{target}", "uid0", tool="xorriso")
    burn = asyncio.create_task(collect(drive.write(source(big))))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    pid = None
    while pid is None and not burn.done() and loop.time() < deadline:
        pid = await asyncio.to_thread(_pid_writing, target)
    assert pid is not None, "the burn tool never showed up"
    os.kill(pid, signal.SIGSTOP)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ToolFailed, match=r"xorriso exited with status -9"):
        await asyncio.wait_for(burn, timeout=60)
    assert await drive.state() is DriveState.IDLE
    wrote = await collect(drive.write(source(big)))  # the drive works again
    assert wrote[-1].done == 128 * MIB


@pytest.mark.parametrize("tool", ["xorriso", "cdrskin"])
async def test_burn_ends_when_the_tool_does_not_at_the_next_tick(
    iso: Path, shared_dir: Path, tool: optical.ToolName
) -> None:
    """The tool reads to EOF, so the feed's end must close its stdin at once. With a progress
    tick of an hour, a burn that waited for the tick would never come back here."""
    if tool == "cdrskin" and (shutil.which("cdrskin") is None or shutil.which("runuser") is None):
        pytest.skip("cdrskin/runuser not installed (make test installs them)")
    run_as = "nobody" if tool == "cdrskin" else None
    drive = OpticalDrive(
        f"stdio:{shared_dir / 'disc.img'}", "uid0", tool=tool, run_as=run_as, tick=3600
    )
    image = source(iso)
    wrote = await asyncio.wait_for(collect(drive.write(image)), timeout=60)
    assert wrote[-1].done == image.size
    checked = await asyncio.wait_for(collect(drive.verify(image)), timeout=60)
    assert checked[-1].done == image.size


def test_pseudo_drives_are_verified_in_two_halves_real_drives_in_one() -> None:
    from appliance.drives import optical

    big = 256 * MIB + 5
    assert optical._verify_parts(True, big) == [
        (0, 0, 128 * MIB),
        (1, 128 * MIB, big),
    ]
    # Two readers would make an optical drive seek between them.
    assert optical._verify_parts(False, big) == [(0, 0, big)]
    assert optical._verify_parts(True, MIB) == [(0, 0, MIB)]


@pytest.mark.parametrize("where", ["first half", "second half"])
async def test_a_verify_split_in_two_catches_a_flip_in_either_half_and_counts_all(
    iso: Path, tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.drives import optical

    monkeypatch.setattr(optical, "PARALLEL_VERIFY_MIN", 0)  # the test disc is only 12 MiB
    target = tmp_path / "disc.img"
    drive = OpticalDrive(f"stdio:{target}", "uid0", tool="xorriso")
    image = source(iso)
    await collect(drive.write(image))
    assert len(optical._verify_parts(drive.emulated, image.size)) == 2
    checked = await collect(drive.verify(image))
    assert checked[-1].done == image.size  # both halves counted
    offset = {"first half": 3, "second half": image.size - 7}[where]
    flip(target, offset)
    with pytest.raises(VerifyMismatch, match=f"at byte {offset} "):
        await collect(drive.verify(image))


def rewrite_in_place(path: Path) -> None:
    """Same inode, new bytes, as `cp other.iso path` does."""
    with open(path, "r+b") as f:
        f.write(os.urandom(path.stat().st_size))


async def test_image_rewritten_in_place_after_the_write_is_image_changed(
    iso: Path, tmp_path: Path
) -> None:
    """`cp other.iso img.iso` between write and verify rewrites the same file: the disc holds
    the old content, and the job must say the image changed, not that the burn is bad."""
    img = tmp_path / "img.iso"
    img.write_bytes(read(iso))
    target = tmp_path / "disc.img"
    drive = OpticalDrive(f"stdio:{target}", "uid0", tool="xorriso")
    await collect(drive.write(source(img)))
    rewrite_in_place(img)
    with pytest.raises(ImageChanged, match="changed while it was being burned"):
        await collect(drive.verify(source(img)))


def test_image_shrinking_mid_feed_stops_before_the_last_chunk(tmp_path: Path) -> None:
    """The feeder reads the image by position: a file cut while the tool is being fed ends the
    write as image-changed (it was EFAULT from a mapped page, or SIGBUS while hashing)."""
    image = tmp_path / "image.img"
    data = os.urandom(8 * MIB)
    image.write_bytes(data)
    src = ImageFile(image, len(data))
    ours, theirs = socket.socketpair()
    got = bytearray()
    feeder = optical_feed.Feeder(source(image), src, ours.fileno(), MIB)
    thread = threading.Thread(target=feeder.run)
    try:
        thread.start()
        theirs.settimeout(10)
        while len(got) < 2 * MIB:  # the feeder is mid-image: blocked on a full socket
            got += theirs.recv(65536)
        with open(image, "r+b") as f:
            f.truncate(4 * MIB)
        for _ in range(10_000):  # bounded: drain until the feeder stops
            thread.join(0)
            if not thread.is_alive():
                break
            with contextlib.suppress(TimeoutError):
                theirs.settimeout(0.2)
                got += theirs.recv(1 << 20)
        thread.join(10)
    finally:
        ours.close()
        theirs.close()
        src.close()
    assert isinstance(feeder.error, ImageChanged)
    assert feeder.fed < len(data)
    assert bytes(got) == data[: len(got)]  # what went out was the image, up to the cut
