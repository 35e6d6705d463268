"""Progress of an optical burn: the tools' progress lines parsed, their output split into lines as
it arrives, and coarse reports blended with the bytes fed into smooth, monotonic `Progress`."""

from __future__ import annotations

import re

from appliance.drives.base import (
    Phase,
    Progress,
)
from appliance.drives.optical_tools import MIB

# "Track 01:   12 of   64 MB written (fifo 100%) [buf  99%]   4.0x." (cdrskin, stdout) and
# "xorriso : UPDATE :    7 of   20 MB written (fifo  0%) [buf  50%]" (xorriso, stderr).
_PROGRESS_RE = re.compile(r"(?<![\w.])(\d+)\s+of\s+(\d+)\s+MB\s+written")
_TOTAL_RE = re.compile(r"Total bytes read/written:\s*(\d+)\s*/\s*(\d+)")


def parse_progress(line: str) -> int | None:
    """Bytes written according to one progress line of cdrskin or xorriso, None if not one.

    Both tools count in MiB ("20 MB" for 20971520 bytes); the final summary line gives bytes.
    """
    m = _TOTAL_RE.search(line)
    if m:
        return int(m.group(2))
    m = _PROGRESS_RE.search(line)
    if m:
        return int(m.group(1)) * MIB
    return None


class LineSplitter:
    """Incremental splitter for tool output where progress lines end in \\r and others in \\n."""

    def __init__(self, max_line: int = 4096) -> None:
        self._buf = b""
        self._max = max_line

    def feed(self, data: bytes) -> list[str]:
        self._buf += data
        parts = re.split(rb"[\r\n]", self._buf)
        self._buf = parts.pop()
        if len(self._buf) > self._max:  # a tool that never ends a line must not grow us forever
            parts.append(self._buf)
            self._buf = b""
        return [p.decode("utf-8", "replace").strip() for p in parts if p.strip()]

    def flush(self) -> list[str]:
        rest, self._buf = self._buf, b""
        text = rest.decode("utf-8", "replace").strip()
        return [text] if text else []


class ProgressEstimator:
    """Turns coarse tool reports and the count of bytes fed into smooth, monotonic `Progress`.

    The tool reports whole MiB, about once a second for xorriso; what the feeder pushed, minus the
    tool's fifo and what the feed socket buffers, is a lower bound of what it consumed. The larger
    of the two wins.
    """

    def __init__(self, phase: Phase, total: int, lead: int, start: float) -> None:
        self.phase = phase
        self.total = total
        self.lead = lead
        self.reported = 0
        self._done = 0
        self._speed = 0.0
        self._mark_t = start
        self._mark_done = 0

    def snapshot(self, now: float, fed: int) -> Progress:
        estimate = max(self.reported, fed - self.lead)
        self._done = max(self._done, min(self.total, max(0, estimate)))
        dt = now - self._mark_t
        if dt >= 0.5:
            rate = (self._done - self._mark_done) / dt
            self._speed = rate if self._speed == 0.0 else 0.5 * self._speed + 0.5 * rate
            self._mark_t, self._mark_done = now, self._done
        left = self.total - self._done
        eta = left / self._speed if self._speed > 0 else None
        return Progress(self.phase, self._done, self.total, self._speed, eta)

    def finished(self, now: float, start: float) -> Progress:
        self._done = self.total
        elapsed = now - start
        speed = self.total / elapsed if elapsed > 0 else self._speed
        return Progress(self.phase, self.total, self.total, speed, 0.0)
