"""`burnstand-agent burn`: one image (a file or a URL) to one or more targets in parallel, each
verified by read-back; exit 0 only when every target passed."""

from __future__ import annotations

import argparse
import os
import re
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.cli.common import (
    DEFAULT_CACHE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CliError,
    journal_path,
    open_journal,
)
from appliance.cli.progress import JsonView, TextView, View
from appliance.drives.base import BurnError, Drive, SourceImage

if TYPE_CHECKING:
    from appliance.images.download import Download


# asyncio, the burn engine and the journal are imported when a command needs them, after the
# arguments were read: `burn --json` prints its first event before any of that is loaded.

_BLOCK_PATTERNS = (r"/dev/sd[a-z]+", r"/dev/mmcblk\d+", r"/dev/loop\d+", r"/dev/nvme\d+n\d+")


def _image(args: argparse.Namespace) -> SourceImage:
    # The journal outlives the shell's working directory: it keeps an absolute path.
    path: Path = Path(os.path.abspath(args.image))
    try:
        st = path.stat()
    except OSError as exc:
        raise CliError(f"cannot read image {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise CliError(f"image {path} is not a regular file")
    if st.st_size == 0:
        raise CliError(f"image {path} is empty")
    if not os.access(path, os.R_OK):
        raise CliError(f"cannot read image {path}: permission denied")
    return _source(args, path, st.st_size, path.name)


def _source(args: argparse.Namespace, path: Path, size: int, name: str) -> SourceImage:
    if args.extracted_size is not None and args.extracted_size <= 0:
        raise CliError("--extracted-size must be a positive number of bytes")
    return SourceImage(
        path=path,
        size=size,
        sha256=args.sha256,
        md5=args.md5,
        name=name,
        encoding="raw" if args.raw else "auto",
        extracted_size=args.extracted_size,
        extracted_sha256=args.extracted_sha256,
        bmap=args.bmap,
    )


def _url_image(args: argparse.Namespace) -> tuple[SourceImage, Download | None]:
    """A URL's image: from the cache when `--sha256` names a file it holds, else downloading
    (the burn reads it as it arrives). A refused URL (404, no server) is one CLI error."""
    from appliance.images.download import DownloadError, start_download, wait_until_readable

    url: str = args.image
    name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "download"
    cache = args.cache or Path(os.environ.get("BURNSTAND_CACHE", str(DEFAULT_CACHE)))
    if args.sha256 and (cache / args.sha256).is_file():
        kept = cache / args.sha256
        return _source(args, kept, kept.stat().st_size, name), None
    try:
        dl = start_download(url, cache, timeout=args.download_timeout)
        wait_until_readable(dl)
    except DownloadError as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"cannot download into {cache}: {exc.strerror}") from exc
    return _source(args, dl.path, dl.size, name), dl


def _keep_download(dl: Download, args: argparse.Namespace) -> None:
    """A complete download stays in the cache under its SHA-256, unless it is not the image
    `--sha256` asked for; a broken one stays as a partial file the next run resumes."""
    from appliance.images.download import finish_download

    kept = finish_download(dl)
    if kept is not None and args.sha256 and kept.name != args.sha256:
        kept.unlink(missing_ok=True)


def _uid(path: str) -> str:
    from appliance.drives.uid import drive_uid

    return drive_uid(path)


def make_drive(target: str, *, partition_ok: bool = False) -> Drive:
    """The backend for a --target: optical for /dev/srN and stdio:, block for the rest. A block
    target on the system disk is refused, and a partition unless `partition_ok`."""
    if target.startswith("stdio:") or re.fullmatch(r"/dev/sr\d+", target):
        try:
            from appliance.drives.optical import OpticalDrive
        except ImportError as exc:
            raise CliError(f"optical targets are not available here ({exc})") from exc
        return OpticalDrive(target, _uid(target))
    real = os.path.realpath(target)
    if not any(re.fullmatch(p, real) for p in _BLOCK_PATTERNS):
        try:
            is_block = stat.S_ISBLK(os.stat(real).st_mode)
        except OSError as exc:
            raise CliError(f"no such target {target}: {exc.strerror}") from exc
        if not is_block:
            raise CliError(f"{target} is not a block device, optical drive or stdio:PATH")
    from appliance.drives.block import BlockDrive
    from appliance.drives.systemdisk import refuse_system_target

    try:
        refuse_system_target(target, partition_ok=partition_ok)
    except BurnError as exc:
        raise CliError(f"{exc.code}: {exc}") from exc

    return BlockDrive(target, _uid(target))


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def burn_command(args: argparse.Namespace) -> int:
    targets: list[str] = args.target
    if len(set(targets)) != len(targets):
        raise CliError("the same --target was given twice")
    url = is_url(args.image)
    image = None if url else _image(args)
    if args.json:
        view = JsonView(sys.stdout)
        for target in targets:
            view.emit({"event": "start", "target": target, "image": str(args.image)})
    download: Download | None = None
    if image is None:
        image, download = _url_image(args)
    import asyncio

    try:
        return asyncio.run(_burn(args, image))
    finally:
        if download is not None:
            _keep_download(download, args)


async def _burn(args: argparse.Namespace, image: SourceImage) -> int:
    import asyncio
    import signal

    from appliance.burn.job import burn_many

    targets: list[str] = args.target
    drives = [make_drive(t, partition_ok=args.partition_ok) for t in targets]
    journal = await open_journal(journal_path(args))
    view: View = JsonView(sys.stdout) if args.json else TextView(sys.stdout, targets)
    for job_id in journal.recovered:
        view.note(f"job {job_id} was interrupted (power loss or crash) and is recorded as failed")
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        results = await burn_many(
            drives,
            image,
            journal=journal,
            verify=not args.no_verify,
            eject=not args.no_eject,
            listener=view.event,
        )
    except asyncio.CancelledError:
        view.close()
        print("burnstand-agent: cancelled; targets are left blank at their start", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        await journal.close()
    view.close()
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"burnstand-agent: {r.target}: {r.reason}: {r.message}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK
