"""CPU and memory accounting of other processes read straight from /proc, plus the file-descriptor
limit the idle-connection benchmark needs. CPU is `utime + stime` from /proc/<pid>/stat (all
threads of the process, in clock ticks); memory is VmRSS from /proc/<pid>/status. Linux only."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

from .errors import ProcessGoneError

CLOCK_TICKS_PER_SECOND: int = os.sysconf("SC_CLK_TCK")

# Field numbers are 1-based in proc(5); we split what follows the command name, which starts at
# field 3 (state), so field n sits at index n - 3.
_UTIME_FIELD = 14
_STIME_FIELD = 15
_FIRST_FIELD_AFTER_COMM = 3


@dataclass(frozen=True)
class CpuTimes:
    """User and system CPU time of one process (or a sum over several), in seconds."""

    user_s: float
    system_s: float

    @property
    def total_s(self) -> float:
        return self.user_s + self.system_s

    def __add__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user_s + other.user_s, self.system_s + other.system_s)


def parse_stat(text: str) -> CpuTimes:
    """CPU times from the text of /proc/<pid>/stat.

    The command name is in parentheses and may itself hold spaces and ')', so the fields are
    split after the *last* ')'.
    """
    end_of_comm = text.rfind(")")
    if end_of_comm < 0:
        raise ValueError(f"not a /proc/<pid>/stat line: {text[:80]!r}")
    fields = text[end_of_comm + 1 :].split()
    try:
        utime = int(fields[_UTIME_FIELD - _FIRST_FIELD_AFTER_COMM])
        stime = int(fields[_STIME_FIELD - _FIRST_FIELD_AFTER_COMM])
    except (IndexError, ValueError) as exc:
        raise ValueError(f"not a /proc/<pid>/stat line: {text[:80]!r}") from exc
    return CpuTimes(utime / CLOCK_TICKS_PER_SECOND, stime / CLOCK_TICKS_PER_SECOND)


def read_cpu(pid: int) -> CpuTimes:
    """CPU time used so far by process `pid` (every thread of it)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise ProcessGoneError(f"process {pid} is gone; cannot read its CPU time") from exc
    return parse_stat(text)


def parse_vmrss_kib(text: str) -> int:
    """Resident set size in KiB from the text of /proc/<pid>/status."""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1])
            raise ValueError(f"malformed VmRSS line: {line!r}")
    # Zombies and kernel threads have no VmRSS line: there is no memory left to measure.
    raise ProcessGoneError("no VmRSS in /proc/<pid>/status (process exited or is a zombie)")


def read_rss_kib(pid: int) -> int:
    """Resident memory of process `pid` in KiB."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise ProcessGoneError(f"process {pid} is gone; cannot read its memory") from exc
    return parse_vmrss_kib(text)


def raise_nofile_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE so this process (and children started later) may hold `wanted` files.

    Returns the soft limit now in force, which is below `wanted` when the hard limit could not
    be raised (raising it needs root / CAP_SYS_RESOURCE); the caller decides whether that is fatal.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft >= wanted:
        return soft
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
        except (ValueError, OSError):
            pass
        else:
            return wanted
    new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
    return new_soft
