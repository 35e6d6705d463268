"""What every `burnstand-agent` command shares: exit codes, the one-line `CliError`, the job
journal's path and opening, and sizes as people read them."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from appliance.userstate import SERVICE_JOURNAL, default_journal

# Not `from typing import TYPE_CHECKING`: typing costs ~4 ms before `burn --json` prints its
# first event, and type checkers treat any TYPE_CHECKING name as true (burn and progress use
# this one).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from appliance.journal import Journal


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# The service user's journal (the agent's); anyone else's is in their state directory.
DEFAULT_JOURNAL = SERVICE_JOURNAL
DEFAULT_CACHE = Path("/var/cache/burnstand/downloads")
JOURNAL_HELP = (
    "$BURNSTAND_JOURNAL, else $XDG_STATE_HOME/burnstand/journal.sqlite3 "
    "(~/.local/state/burnstand/…; /var/lib/burnstand/… for the service user)"
)


class CliError(Exception):
    """A problem with what the user asked for; printed as one line, exit 1."""


def journal_path(args: argparse.Namespace) -> Path:
    if args.journal is not None:
        return Path(args.journal)
    named = os.environ.get("BURNSTAND_JOURNAL")
    return Path(named) if named else default_journal()


async def open_journal(path: Path, *, read_only: bool = False) -> Journal:
    from appliance.journal import Journal, JournalError

    try:
        return await Journal.open(path, read_only=read_only)
    except JournalError as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"cannot open the job journal {path}: {exc.strerror or exc}") from exc


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def socket_path(given: Path | None) -> Path:
    from appliance.config import DEFAULT_SOCKET

    return given or Path(os.environ.get("BURNSTAND_SOCKET", str(DEFAULT_SOCKET)))
