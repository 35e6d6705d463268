"""`burnstand-agent burn`: one image (a file or a URL) to one or more targets in parallel, each
verified by read-back; exit 0 only when every target passed."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from appliance.cli.common import (
    DEFAULT_CACHE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    TYPE_CHECKING,
    CliError,
    journal_path,
    open_journal,
    socket_path,
)
from appliance.cli.progress import JsonView, TextView, View
from appliance.imagefile import ImageUnreadable, checked_image

if TYPE_CHECKING:
    from appliance.burn.job import JobResult
    from appliance.drives.base import Drive, SourceImage
    from appliance.fileburn import FileBurn
    from appliance.images.download import Download


# asyncio, the burn engine (appliance.drives.base and its dataclasses included) and the journal
# are imported when a command needs them, after the arguments were read and the image file was
# checked: `burn --json` prints its first event before any of that is loaded.


def _checked_file(args: argparse.Namespace) -> tuple[Path, int]:
    """The image file's (path, size), or a CLI error: checked before the first event, so a
    missing or empty image fails with no event printed."""
    try:
        return checked_image(args.image)
    except ImageUnreadable as exc:
        raise CliError(str(exc)) from exc


def _check_options(args: argparse.Namespace) -> None:
    if args.extracted_size is not None and args.extracted_size <= 0:
        raise CliError("--extracted-size must be a positive number of bytes")


def _source(args: argparse.Namespace, path: Path, size: int, name: str) -> SourceImage:
    from appliance.drives.base import SourceImage

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


def make_drive(target: str, *, partition_ok: bool = False) -> Drive:
    """The backend for a --target (appliance.drives.targets); a refused one is a CLI error."""
    from appliance.drives.targets import TargetRefused
    from appliance.drives.targets import make_drive as target_drive

    try:
        return target_drive(target, partition_ok=partition_ok)
    except TargetRefused as exc:
        raise CliError(str(exc)) from exc


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def burn_command(args: argparse.Namespace) -> int:
    targets: list[str] = args.target
    if len(set(targets)) != len(targets):
        raise CliError("the same --target was given twice")
    _check_options(args)
    url = is_url(args.image)
    local = None if url else _checked_file(args)
    if args.json:
        view = JsonView(sys.stdout)
        for target in targets:
            view.emit({"event": "start", "target": target, "image": str(args.image)})
    download: Download | None = None
    if local is None:
        image, download = _url_image(args)
    else:
        path, size = local
        image = _source(args, path, size, path.name)
    import asyncio

    try:
        return asyncio.run(_burn(args, image, url=url))
    finally:
        if download is not None:
            _keep_download(download, args)


async def _burn(args: argparse.Namespace, image: SourceImage, *, url: bool) -> int:
    import asyncio
    import signal

    targets: list[str] = args.target
    view: View = JsonView(sys.stdout) if args.json else TextView(sys.stdout, targets)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        results = None
        if not url and args.journal is None and "BURNSTAND_JOURNAL" not in os.environ:
            results = await _burn_in_agent(args, image, view)
        if results is None:
            results = await _burn_here(args, image, view)
    except asyncio.CancelledError:
        view.close()
        print("burnstand-agent: cancelled; targets are left blank at their start", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
    view.close()
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"burnstand-agent: {r.target}: {r.reason}: {r.message}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _file_burn(args: argparse.Namespace, image: SourceImage) -> FileBurn:
    from appliance.fileburn import FileBurn

    return FileBurn(
        image=image,
        targets=tuple(args.target),
        verify=not args.no_verify,
        eject=not args.no_eject,
        partition_ok=args.partition_ok,
    )


async def _burn_in_agent(
    args: argparse.Namespace, image: SourceImage, view: View
) -> list[JobResult] | None:
    """On a kiosk the agent owns the drives and the journal: it runs the burn and streams its
    events here. None when no agent listens (the CLI then burns by itself)."""
    from appliance.fileburn import AgentRefused, burn_through_agent

    try:
        return await burn_through_agent(
            socket_path(args.socket), _file_burn(args, image), view.event
        )
    except AgentRefused as exc:
        raise CliError(exc.message) from exc


async def _burn_here(args: argparse.Namespace, image: SourceImage, view: View) -> list[JobResult]:
    from appliance.burn.job import burn_many

    drives = [make_drive(t, partition_ok=args.partition_ok) for t in args.target]
    journal = await open_journal(journal_path(args))
    for job_id in journal.recovered:
        view.note(f"job {job_id} was interrupted (power loss or crash) and is recorded as failed")
    try:
        return await burn_many(
            drives,
            image,
            journal=journal,
            verify=not args.no_verify,
            eject=not args.no_eject,
            listener=view.event,
        )
    finally:
        await journal.close()
