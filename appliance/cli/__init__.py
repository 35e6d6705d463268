"""`burnstand-agent`: the appliance's command line.

`burn` writes one image to one or more targets in parallel (block devices, optical drives or
cdrskin `stdio:` pseudo-drives), verifies each by read-back and exits 0 only when every target
passed; it shows a progress bar per target on a terminal, plain lines otherwise, or JSON-lines
events with `--json`. `drives` lists what discovery sees; `jobs` shows the local job journal,
including jobs a crash or power cut interrupted. `run` is the agent service itself (see
appliance.agent) and `status` asks a running agent over its control socket. Errors are one
line on stderr and a non-zero exit.

The commands live in `burn` (with its `progress` views) and `service`; `common` holds what
they share. `python -m appliance.cli` runs `main`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from appliance.cli.burn import burn_command, is_url, make_drive
from appliance.cli.common import (
    DEFAULT_CACHE,
    DEFAULT_JOURNAL,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    JOURNAL_HELP,
    TYPE_CHECKING,
    CliError,
)
from plumbing import logargs

if TYPE_CHECKING:
    from typing import Any

# asyncio, the burn engine, the journal and the other commands (`service`, which sets up
# `logging`) are imported when a command needs them, after the arguments were read: `burn
# --json` prints its first event before any of that is loaded.


class _Version(argparse.Action):
    """--version, looking the version up only when asked: importlib.metadata is the largest
    import a `burn` would otherwise pay for before its first event."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from appliance import __version__

        print(f"{parser.prog} {__version__}")
        parser.exit()


def _sha256(text: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise argparse.ArgumentTypeError(f"not a SHA-256 (64 hex digits): {text!r}")
    return text.lower()


def _md5(text: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{32}", text):
        raise argparse.ArgumentTypeError(f"not an MD5 (32 hex digits): {text!r}")
    return text.lower()


def _columns() -> int:
    """The terminal's width as `shutil.get_terminal_size` finds it ($COLUMNS, else stdout's
    terminal, else 80)."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    out = sys.__stdout__
    try:
        return 80 if out is None else os.get_terminal_size(out.fileno()).columns or 80
    except (ValueError, OSError):
        return 80


class _Help(argparse.HelpFormatter):
    """argparse makes a formatter for every option it adds (to check its metavar), and without
    a width the formatter asks `shutil`, whose import (with zlib, bz2 and lzma) was ~4 ms of
    CPU before `burn --json` printed its first event."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_columns() - 2)  # the margin argparse leaves


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose subcommands' parsers (made as this class) format with `_Help`."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(**kwargs)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="burnstand-agent", description="Burn and verify images on this kiosk's drives."
    )
    p.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
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
    logargs.add_arguments(run)
    status = sub.add_parser("status", help="show what a running agent is doing")
    status.add_argument("--socket", type=Path, help="control socket of the agent")
    status.add_argument("--json", action="store_true", help="status and drives as one JSON object")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "burn":
            return burn_command(args)
        from appliance.cli.service import (
            drives_command,
            jobs_command,
            run_command,
            status_command,
        )

        if args.command == "drives":
            return drives_command(args)
        if args.command == "run":
            return run_command(args)
        import asyncio

        if args.command == "status":
            return asyncio.run(status_command(args))
        return asyncio.run(jobs_command(args))
    except CliError as exc:
        print(f"burnstand-agent: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("burnstand-agent: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


__all__ = [
    "DEFAULT_CACHE",
    "DEFAULT_JOURNAL",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "is_url",
    "main",
    "make_drive",
]
