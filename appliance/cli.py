"""`burnstand-agent`: the appliance's command line.

`burn` writes one image to one or more targets in parallel (block devices, optical drives or
cdrskin `stdio:` pseudo-drives), verifies each by read-back and exits 0 only when every target
passed; it shows a progress bar per target on a terminal, plain lines otherwise, or JSON-lines
events with `--json`. `drives` lists what discovery sees; `jobs` shows the local job journal,
including jobs a crash or power cut interrupted. `run` is the agent service itself (see
appliance.agent) and `status` asks a running agent over its control socket. Errors are one
line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from appliance import __version__
from appliance.drives.base import Drive, SourceImage
from plumbing import logs

if TYPE_CHECKING:
    from appliance.burn.job import JobEvent, JobResult
    from appliance.fileburn import FileBurn
    from appliance.images.download import Download
    from appliance.journal import Journal

# asyncio, the burn engine and the journal are imported when a command needs them, after the
# arguments were read: `burn --json` prints its first event before any of that is loaded.

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_CACHE = Path("/var/cache/burnstand/downloads")
JOURNAL_HELP = (
    "$BURNSTAND_JOURNAL, else $XDG_STATE_HOME/burnstand/journal.sqlite3 "
    "(~/.local/state/burnstand/…; /var/lib/burnstand/… for the service user)"
)


class CliError(Exception):
    """A problem with what the user asked for; printed as one line, exit 1."""


def _sha256(text: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise argparse.ArgumentTypeError(f"not a SHA-256 (64 hex digits): {text!r}")
    return text.lower()


def _md5(text: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{32}", text):
        raise argparse.ArgumentTypeError(f"not an MD5 (32 hex digits): {text!r}")
    return text.lower()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="burnstand-agent", description="Burn and verify images on this kiosk's drives."
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    burn = sub.add_parser(
        "burn",
        help="write an image to one or more targets in parallel, then verify each",
        description="Write IMAGE to every --target at once, read each back and compare. "
        "Exit status 0 only when every target passed.",
    )
    burn.add_argument(
        "--image",
        required=True,
        help="image file or http(s) URL to write: raw (.img, .iso) or compressed (xz, gzip, "
        "bzip2, zstd, or a zip holding one image), told apart by content; compressed images "
        "are unpacked as they are written, a URL is burned while it downloads",
    )
    burn.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help=f"where a URL's image is downloaded and kept, named by its SHA-256 "
        f"(default $BURNSTAND_CACHE or {DEFAULT_CACHE})",
    )
    burn.add_argument(
        "--download-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="a download that sends nothing for this long is resumed, then given up (30)",
    )
    burn.add_argument(
        "--sha256",
        type=_sha256,
        help="expected SHA-256 of the image file as delivered (of the .xz for an .img.xz); "
        "checked while writing, and no target gets the image's first block unless it matches",
    )
    burn.add_argument(
        "--extracted-size",
        type=int,
        metavar="BYTES",
        help="size the compressed image unpacks to; the burn stops as soon as it grows past it",
    )
    burn.add_argument(
        "--extracted-sha256",
        type=_sha256,
        metavar="SHA256",
        help="SHA-256 of the unpacked image; no target gets its first block unless it matches",
    )
    burn.add_argument(
        "--bmap",
        type=Path,
        metavar="FILE",
        help="block map of the image (bmaptool create): only mapped ranges are written, the "
        "rest is zeroed by the device; the whole target is still verified",
    )
    burn.add_argument(
        "--raw",
        action="store_true",
        help="write the file's bytes as they are, even when it is a compressed image",
    )
    burn.add_argument(
        "--md5",
        type=_md5,
        help="the image's MD5 as a take names it (the burn protocol's image id); recorded with "
        "the job so the coordinator can match it, not checked (use --sha256 for that)",
    )
    burn.add_argument(
        "--target",
        action="append",
        required=True,
        metavar="DEV",
        help="/dev/sdX, /dev/mmcblkN, /dev/loopN, /dev/srN or stdio:PATH (repeatable)",
    )
    burn.add_argument(
        "--no-verify",
        action="store_true",
        help="skip the read-back (exit 0 then means written, not verified)",
    )
    burn.add_argument("--no-eject", action="store_true", help="leave trays closed")
    burn.add_argument(
        "--partition-ok",
        action="store_true",
        help="allow a partition (e.g. /dev/sdb1) as a target; never one of the system disk",
    )
    burn.add_argument("--json", action="store_true", help="JSON-lines events on stdout")
    burn.add_argument(
        "--journal",
        type=Path,
        help="burn in this process with this job journal, even where an agent runs "
        f"(without an agent the default is {JOURNAL_HELP})",
    )
    burn.add_argument(
        "--socket",
        type=Path,
        help="the agent's control socket: an image file is burned by the agent listening "
        "there, with its journal (default $BURNSTAND_SOCKET or the agent's)",
    )
    drives = sub.add_parser("drives", help="list the burners and targets discovery offers")
    drives.add_argument("--json", action="store_true", help="the drives as one JSON array")
    jobs = sub.add_parser(
        "jobs",
        help="show the job journal as a table: id, started, image, target, result, duration "
        "(read only; interrupted jobs read as failed)",
    )
    jobs.add_argument("--journal", type=Path, help=f"job journal (default {JOURNAL_HELP})")
    jobs.add_argument("--json", action="store_true", help="one JSON object per line")
    jobs.add_argument(
        "--socket", type=Path, help="ask the agent on this control socket (default: the agent's)"
    )
    run = sub.add_parser("run", help="run the agent: drives, burns, cache, link, control socket")
    run.add_argument("--config", required=True, type=Path, help="agent.toml (see docs/agent.md)")
    run.add_argument("--socket", type=Path, help="control socket (default: the config's)")
    logs.add_arguments(run)
    status = sub.add_parser("status", help="show what a running agent is doing")
    status.add_argument("--socket", type=Path, help="control socket of the agent")
    status.add_argument("--json", action="store_true", help="status and drives as one JSON object")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "burn":
            return _burn_main(args)
        if args.command == "drives":
            return _drives(args)
        if args.command == "run":
            return _run(args)
        import asyncio

        if args.command == "status":
            return asyncio.run(_status(args))
        return asyncio.run(_jobs(args))
    except CliError as exc:
        print(f"burnstand-agent: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("burnstand-agent: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _journal_path(args: argparse.Namespace) -> Path:
    if args.journal is not None:
        return Path(args.journal)
    from appliance.userstate import default_journal

    named = os.environ.get("BURNSTAND_JOURNAL")
    return Path(named) if named else default_journal()


async def _open_journal(path: Path, *, read_only: bool = False) -> Journal:
    from appliance.journal import Journal, JournalError

    try:
        return await Journal.open(path, read_only=read_only)
    except JournalError as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"cannot open the job journal {path}: {exc.strerror or exc}") from exc


# --------------------------------------------------------------------------- burn


def _image(args: argparse.Namespace) -> SourceImage:
    from appliance.fileburn import ImageUnreadable, checked_image

    try:
        path, size = checked_image(args.image)
    except ImageUnreadable as exc:
        raise CliError(str(exc)) from exc
    return _source(args, path, size, path.name)


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
    from appliance.images.download import DownloadError, start_download, wait_for_head
    from wire.imageformat import HEAD, Encoding, sniff

    url: str = args.image
    name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "download"
    cache = args.cache or Path(os.environ.get("BURNSTAND_CACHE", str(DEFAULT_CACHE)))
    if args.sha256 and (cache / args.sha256).is_file():
        kept = cache / args.sha256
        return _source(args, kept, kept.stat().st_size, name), None
    try:
        dl = start_download(url, cache, timeout=args.download_timeout)
        wait_for_head(dl)
        with open(dl.path, "rb") as f:
            head = f.read(HEAD)
        if sniff(head) is Encoding.ZIP:
            dl.wait_for(dl.size - 1)  # a zip names its entries at its end
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


def _burn_main(args: argparse.Namespace) -> int:
    targets: list[str] = args.target
    if len(set(targets)) != len(targets):
        raise CliError("the same --target was given twice")
    url = is_url(args.image)
    image = None if url else _image(args)
    if args.json:
        view = _JsonView(sys.stdout)
        for target in targets:
            view.emit({"event": "start", "target": target, "image": str(args.image)})
    download: Download | None = None
    if image is None:
        image, download = _url_image(args)
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
    view: _View = _JsonView(sys.stdout) if args.json else _TextView(sys.stdout, targets)
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
    args: argparse.Namespace, image: SourceImage, view: _View
) -> list[JobResult] | None:
    """On a kiosk the agent owns the drives and the journal: it runs the burn and streams its
    events here. None when no agent listens (the CLI then burns by itself)."""
    from appliance.fileburn import AgentRefused, burn_through_agent

    try:
        return await burn_through_agent(
            _socket_path(args.socket), _file_burn(args, image), view.event
        )
    except AgentRefused as exc:
        raise CliError(exc.message) from exc


async def _burn_here(args: argparse.Namespace, image: SourceImage, view: _View) -> list[JobResult]:
    from appliance.burn.job import burn_many

    drives = [make_drive(t, partition_ok=args.partition_ok) for t in args.target]
    journal = await _open_journal(_journal_path(args))
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


class _View:
    def event(self, event: JobEvent) -> None:
        raise NotImplementedError

    def note(self, text: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        return None


class _JsonView(_View):
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def event(self, event: JobEvent) -> None:
        from appliance.burn.eventjson import event_json

        self.emit(event_json(event))

    def note(self, text: str) -> None:
        self.emit({"event": "note", "message": text})

    def emit(self, obj: dict[str, Any]) -> None:
        self.out.write(json.dumps(obj) + "\n")
        self.out.flush()


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


@dataclass
class _Line:
    text: str = "queued"
    last_step: int = -1
    last_phase: str = ""


@dataclass
class _TextView(_View):
    """Bars redrawn in place on a terminal; one line per 10 % step when piped to a file."""

    out: TextIO
    targets: list[str]
    lines: dict[str, _Line] = field(default_factory=dict)
    drawn: bool = False
    last_draw: float = 0.0

    def __post_init__(self) -> None:
        self.tty = self.out.isatty()
        self.width = max(len(t) for t in self.targets)
        self.lines = {t: _Line() for t in self.targets}

    def event(self, event: JobEvent) -> None:
        from appliance.burn.job import JobProgress, JobResult, JobStateChanged

        line = self.lines.setdefault(event.target, _Line())
        if isinstance(event, JobProgress):
            eta = "--" if event.eta is None else f"{event.eta:.0f}s"
            bar = "#" * int(event.percent / 5)
            line.text = (
                f"{event.phase:<6} [{bar:<20}] {event.percent:5.1f}% "
                f"{_human(event.speed)}/s eta {eta}"
            )
            step = int(event.percent // 10)
            if not self.tty and (step != line.last_step or line.last_phase != event.phase):
                line.last_step, line.last_phase = step, str(event.phase)
                self._plain(event.target, line.text)
        elif isinstance(event, JobStateChanged):
            line.text = str(event.state)
            if not self.tty:
                self._plain(event.target, str(event.state))
        elif isinstance(event, JobResult):
            # A failure's message is printed once, on stderr at the end (with its target and
            # reason); the target's own line only says that it failed and why in one word.
            line.text = f"PASS: {event.message}" if event.ok else f"FAIL ({event.reason})"
            if not self.tty:
                self._plain(event.target, line.text)
        if self.tty:
            # Redraw at most 10 times a second, but never skip a finished phase or a new state.
            finished = isinstance(event, JobProgress) and event.done >= event.total
            self._draw(force=finished or not isinstance(event, JobProgress))

    def note(self, text: str) -> None:
        print(f"note: {text}", file=sys.stderr)

    def _plain(self, target: str, text: str) -> None:
        self.out.write(f"{target}: {text}\n")
        self.out.flush()

    def _draw(self, *, force: bool) -> None:
        import time

        now = time.monotonic()
        if not force and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        if self.drawn:
            self.out.write(f"\x1b[{len(self.lines)}F")
        for target, line in self.lines.items():
            self.out.write(f"\x1b[2K{target:<{self.width}}  {line.text}\n")
        self.drawn = True
        self.out.flush()

    def close(self) -> None:
        if self.tty:
            self._draw(force=True)


# --------------------------------------------------------------------------- drives, jobs


_DRIVE_COLUMNS = ("PATH", "KIND", "CAPABILITIES", "SIZE", "MODEL", "UID")


def _drives(args: argparse.Namespace) -> int:
    try:
        from appliance.drives.discovery import list_drives
    except ImportError as exc:
        raise CliError(f"drive discovery is not available here ({exc})") from exc
    try:
        found = list_drives()
    except Exception as exc:
        raise CliError(f"drive discovery failed: {exc}") from exc
    if args.json:
        # One array, so "nothing found" is `[]` and not an empty output a script cannot tell
        # from a crash.
        rows = [
            {
                "uid": d.uid,
                "path": d.path,
                "kind": str(d.kind),
                "capabilities": sorted(d.capabilities),
                "capacity": d.capacity,
                "model": d.model,
                "block_size": d.block_size,
            }
            for d in found
        ]
        print(json.dumps(rows))
        return EXIT_OK
    table = [
        (
            d.path,
            str(d.kind),
            ",".join(sorted(d.capabilities)),
            "-" if d.capacity is None else _human(d.capacity),
            d.model or "-",
            d.uid,
        )
        for d in found
    ]
    widths = [max(len(row[i]) for row in [_DRIVE_COLUMNS, *table]) for i in range(6)]
    for row in [_DRIVE_COLUMNS, *table]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if not found:
        print("no drives found (burners, USB sticks and SD cards show up here)", file=sys.stderr)
    return EXIT_OK


async def _jobs(args: argparse.Namespace) -> int:
    if args.journal is None and "BURNSTAND_JOURNAL" not in os.environ:
        # On a kiosk the agent owns the journal: ask it, and read the file only without one.
        asked = await _agent_jobs(args.socket)
        if asked is not None:
            _print_jobs(asked, as_json=args.json)
            return EXIT_OK
    path = _journal_path(args)
    if not path.exists():
        print(f"burnstand-agent: no jobs yet (no job journal at {path})", file=sys.stderr)
        return EXIT_OK
    # Read-only: looking must never change a job another process is running.
    journal = await _open_journal(path, read_only=True)
    try:
        records = await journal.jobs()
    finally:
        await journal.close()
    _print_jobs([r.as_json() for r in records], as_json=args.json)
    return EXIT_OK


async def _agent_jobs(socket: Path | None) -> list[dict[str, Any]] | None:
    """The running agent's jobs, or None when no agent answers on its control socket."""
    from appliance.control import AgentUnavailable, ControlClient, RequestFailed

    path = _socket_path(socket)
    if not path.exists():
        return None
    try:
        async with ControlClient(path, timeout=5.0) as client:
            jobs: list[dict[str, Any]] = await client.request("jobs")
    except AgentUnavailable:
        return None
    except RequestFailed as exc:
        raise CliError(f"the agent could not list its jobs: {exc}") from exc
    return jobs


def _print_jobs(jobs: list[dict[str, Any]], *, as_json: bool) -> None:
    from appliance.jobtable import job_table

    lines = [json.dumps(job) for job in jobs] if as_json else job_table(jobs)
    for line in lines:
        print(line)


# --------------------------------------------------------------------------- run, status


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from appliance.agent import run
    from appliance.config import ConfigError, load_config
    from appliance.journal import JournalError

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"burnstand-agent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logs.setup(args.log_level, args.log_format)
    try:
        asyncio.run(run(config, socket=args.socket))
    except (OSError, JournalError) as exc:
        raise CliError(f"the agent could not start: {exc}") from exc
    return EXIT_OK


def _socket_path(given: Path | None) -> Path:
    from appliance.config import DEFAULT_SOCKET

    return given or Path(os.environ.get("BURNSTAND_SOCKET", str(DEFAULT_SOCKET)))


async def _status(args: argparse.Namespace) -> int:
    from appliance.control import AgentUnavailable, ControlClient

    path = _socket_path(args.socket)
    try:
        async with ControlClient(path, timeout=5.0) as client:
            status = await client.request("status")
            drives = await client.request("drives")
    except AgentUnavailable as exc:
        raise CliError(f"{exc} (is burnstand-agent running?)") from exc
    if args.json:
        print(json.dumps({"status": status, "drives": drives}))
        return EXIT_OK
    print(f"agent {status['version']}  link {status['link']}  {status['coordinator'] or '-'}")
    print(f"cache {_human(status['cache_used'])} of {_human(status['cache_max'])}")
    for d in drives:
        job = d.get("job")
        doing = f"{job['phase']} {job['percent']:.0f}% {job['image_name']}" if job else d["state"]
        last = d.get("last_result")
        after = f"  last: {'PASS' if last['ok'] else 'FAIL'} {last['image_name']}" if last else ""
        print(f"{d['name']}\t{d['path']}\t{doing}{after}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
