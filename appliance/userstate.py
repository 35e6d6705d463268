"""Where a command-line burn keeps its job journal when nobody names one.

The agent's journal lives in `/var/lib/burnstand` and belongs to the service user; a burn run
by anyone else (an operator at a laptop, root on a kiosk with no agent) keeps its own journal in
the user's state directory, as the XDG Base Directory spec says: `$XDG_STATE_HOME/burnstand`,
or `~/.local/state/burnstand` when that is unset (a relative `$XDG_STATE_HOME` is ignored, as
the spec asks). So `burn` on a laptop never creates `/var/lib/burnstand`.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from pathlib import Path

# `typing` only for the type checker (which treats this name as true): the CLI reads the
# journal's default path before `burn --json` prints its first event, and typing costs ~4 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

SERVICE_USER: Final = "burnstand"
SERVICE_JOURNAL: Final = Path("/var/lib/burnstand/journal.sqlite3")
JOURNAL_NAME: Final = "journal.sqlite3"


def _user() -> tuple[str, Path]:
    try:
        entry = pwd.getpwuid(os.geteuid())
    except KeyError:  # a uid with no passwd entry (some containers)
        return "", Path.home()
    return entry.pw_name, Path(entry.pw_dir)


def default_journal(environ: Mapping[str, str] | None = None) -> Path:
    """The journal `burn` and `jobs` use without `--journal` or `$BURNSTAND_JOURNAL`."""
    env = os.environ if environ is None else environ
    name, home = _user()
    if name == SERVICE_USER:
        return SERVICE_JOURNAL
    state = env.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):
        state = str(Path(env.get("HOME") or home) / ".local" / "state")
    return Path(state) / "burnstand" / JOURNAL_NAME
