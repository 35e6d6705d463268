"""The burn tools of the optical backend: which one runs (cdrskin or `xorriso -as cdrecord`), with
which arguments and fifo, and what its exit and last lines say went wrong."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from appliance.drives.base import (
    BurnError,
    MediaTooSmall,
    NoMedia,
    ToolFailed,
    ToolMissing,
    WriteProtected,
)

STDIO_PREFIX = "stdio:"
MIB = 1 << 20
SECTOR = 2048
PACIFIER_INTERVAL = 0.1  # seconds between xorriso progress lines (its -pacifier interval=)
DEFAULT_FIFO = 32 * MIB
CDRSKIN_PERMISSION_FILE = Path("/root/cdrskin_permissions/allow_emulated_drives")

ToolName = Literal["cdrskin", "xorriso"]

_NO_MEDIA_RE = re.compile(r"no media|no disc|media not present|medium not present", re.I)
_TOO_SMALL_RE = re.compile(
    r"not enough (?:free )?space|too large for|exceeds (?:the )?(?:free|media)|"
    r"media capacity|capacity exceeded",
    re.I,
)
_WRITE_PROTECT_RE = re.compile(r"write[- ]protect", re.I)


@dataclass(frozen=True, slots=True)
class ToolChoice:
    name: ToolName
    exe: str

    def burn_argv(self, dev: str, size: int, fifo: int, real_drive: bool) -> list[str]:
        fs = f"fs={max(1, fifo // MIB)}m"
        if self.name == "cdrskin":
            argv = [self.exe, "-v"]
            if not real_drive:
                argv.append("--allow_emulated_drives")
            # Padding keeps the read-ahead of old CD drives from failing on the last sectors.
            argv += [f"dev={dev}", fs, "-pad", f"tsize={size}", "-"]
            return argv
        # xorriso notices the end of a burn only in its progress loop, which by default wakes
        # once per wall-clock second: every burn would then end on the next second boundary
        # (up to ~1 s lost per disc, and a wall time that comes in 0.9 s steps). A short
        # interval ends it within 0.1 s and gives ten progress lines a second.
        return [
            self.exe,
            "-pacifier",
            f"interval={PACIFIER_INTERVAL}",
            "-as",
            "cdrecord",
            "-v",
            f"dev={dev}",
            fs,
            f"tsize={size}",
            "-",
        ]


def fifo_bytes(size: int, limit: int = DEFAULT_FIFO) -> int:
    """The tool's fifo (`fs=`) for an image of `size` bytes.

    libburn waits for a full fifo before it starts writing, so a fifo much larger than the image
    would hide all progress until the very end; an eighth of the image, at most `limit`.
    """
    return min(limit, max(MIB, size // 8 // MIB * MIB))


def choose_tool(
    path: str,
    *,
    prefer: ToolName | None = None,
    as_root: bool | None = None,
    which: Callable[[str], str | None] = shutil.which,
    permission_file: Path = CDRSKIN_PERMISSION_FILE,
) -> ToolChoice:
    """Pick `xorriso -as cdrecord` or cdrskin for this target; ToolMissing when neither fits.

    Both drive the drive through libburn with the same options. xorriso comes first: on the
    same burn it used a quarter of cdrskin's CPU here (0.3 vs 1.2 CPU-s per 256 MiB; cdrskin
    reads its input 2 KiB at a time), which matters on a Pi burning while it serves its screen.
    """
    emulated = path.startswith(STDIO_PREFIX)
    root = os.geteuid() == 0 if as_root is None else as_root
    cdrskin, xorriso = which("cdrskin"), which("xorriso")
    cdrskin_fits = cdrskin is not None and (not emulated or not root or permission_file.exists())
    order: list[ToolName] = [prefer] if prefer else ["xorriso", "cdrskin"]
    for name in order:
        if name == "cdrskin" and cdrskin is not None and cdrskin_fits:
            return ToolChoice("cdrskin", cdrskin)
        if name == "xorriso" and xorriso is not None:
            return ToolChoice("xorriso", xorriso)
    if cdrskin is not None and emulated and root:
        raise ToolMissing(
            "cdrskin refuses stdio: pseudo-drives as root and xorriso is not installed "
            f"(install xorriso, or create {permission_file})"
        )
    wanted = prefer or "xorriso or cdrskin"
    raise ToolMissing(f"{wanted} is not installed (apt install cdrskin xorriso)")


def tail_text(tails: dict[str, deque[str]], lines: int = 8) -> str:
    picked = [ln for ln in (*tails["out"], *tails["err"]) if not ln.startswith("Track ")]
    return " | ".join(picked[-lines:]) or "(no output)"


def classify_failure(tool: str, rc: int, tails: dict[str, deque[str]]) -> BurnError:
    text = "\n".join((*tails["out"], *tails["err"]))
    detail = tail_text(tails)
    if _NO_MEDIA_RE.search(text):
        return NoMedia(f"{tool}: no writable disc: {detail}")
    if _TOO_SMALL_RE.search(text):
        return MediaTooSmall(f"{tool}: the image does not fit on the disc: {detail}")
    if _WRITE_PROTECT_RE.search(text):
        return WriteProtected(f"{tool}: the disc is write-protected: {detail}")
    return ToolFailed(f"{tool} exited with status {rc}: {detail}")


def run_as_prefix(run_as: str | None) -> list[str]:
    """What runs the tool as user `run_as` (cdrskin refuses pseudo-drives as root); [] for none."""
    if run_as is None:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ToolMissing("runuser is needed to run the burn tool as another user")
    return [runuser, "-u", run_as, "--"]


async def media_space(prefix: list[str], choice: ToolChoice, path: str) -> int | None:
    """Bytes the disc in drive `path` can take, as `cdrskin --tell_media_space` says; None when
    it cannot tell within a minute."""
    proc = await asyncio.create_subprocess_exec(
        *prefix,
        choice.exe,
        f"dev={path}",
        "--tell_media_space",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None
    m = re.search(rb"^\s*(\d+)\s*$", out, re.M)
    return int(m.group(1)) * SECTOR if proc.returncode == 0 and m else None
