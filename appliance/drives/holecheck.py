"""Read-back of a bmap burn's holes while the mapped ranges are still being written.

A hole the device zeroed (BLKZEROOUT) is read back right after the ioctl returned, on a thread
of its own, and compared with zeros: the device did what the kernel said, and the verify that
follows only has to read the mapped ranges. On a loop device reading a hole is the slow part of
the whole read-back (the kernel fills and copies zero pages); done beside the writer it overlaps
the writes instead of following them. No one writes a hole again once zeroed (the target is
held O_EXCL), so what this reads is what a read after the write would read.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable

from appliance.drives.blockio import AlignedBuffer, read_full, round_up, zero_out

# The most one BLKZEROOUT is asked to zero: a device without a zeroing offload has the kernel
# write the zeros itself, and a stop request waits for the ioctl (64 MiB is a few seconds on a
# slow card).
RUN_LIMIT = 64 << 20


class HoleChecker(threading.Thread):
    """Reads each zeroed span handed to `check` back from the target and compares it with
    zeros. `finish()` waits for the last one and says which spans read back as zeros, or the
    first that did not (as text for the caller's error)."""

    def __init__(self, fd: int, chunk: int, sector: int) -> None:
        super().__init__(name="hole-readback", daemon=True)
        self._fd, self._sector = fd, sector
        self._buf = AlignedBuffer(chunk)
        self._zeros = bytearray(chunk)  # bytearray: it compares with a view at memcmp speed
        self._todo: queue.Queue[tuple[int, int] | None] = queue.Queue()
        self._halt = threading.Event()
        self.zeros: set[int] = set()  # offsets of spans that read back as zeros
        self.bad: str | None = None  # the first span that did not, why

    def check(self, offset: int, length: int) -> None:
        self._todo.put((offset, length))

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                item = self._todo.get()
                if item is None:
                    return
                off, n = item
                got = read_full(self._fd, self._buf, off, round_up(n, self._sector))
                if got < n:
                    self.bad = f"ended early: read {off + got} of the bytes up to {off + n}"
                    return
                with self._buf.view(n) as view:
                    if self._zeros[:n] != view:
                        self.bad = (
                            f"bytes {off}..{off + n - 1} do not read back as zeros after the "
                            "device zeroed them"
                        )
                        return
                self.zeros.add(off)
        except OSError as exc:
            self.bad = f"cannot be read back: {os.strerror(exc.errno or 0)}"

    def finish(self) -> None:
        """Wait for every span handed over so far (the caller's stop checks come first)."""
        self._todo.put(None)
        self.join()
        self._buf.close()

    def abandon(self) -> None:
        """Stop after the current span (a failed or cancelled write) and free the buffer."""
        self._halt.set()
        self._todo.put(None)
        self.join()
        self._buf.close()


class HoleRun:
    """Consecutive holes gathered into one BLKZEROOUT. Under a loop device each ioctl is one
    change of the backing file's extents, and a run of chunk-sized ones costs many times one
    for the whole run (the 8 MiB ioctls of a 70 %-holes image took 1.2 s of a 2 s burn). A run
    goes down when a data chunk comes, when it reaches `RUN_LIMIT`, or at `flush`; each of its
    chunks is then handed to the `HoleChecker`. A device that refuses the ioctl gets the zeros
    written by `write_zeros(offset, length)`, chunk by chunk."""

    def __init__(
        self, fd: int, checker: HoleChecker, write_zeros: Callable[[int, int], None]
    ) -> None:
        self._fd, self._checker, self._write_zeros = fd, checker, write_zeros
        self._spans: list[tuple[int, int]] = []
        self._end = 0
        self.zeroed = 0  # bytes the device zeroed itself

    def add(self, offset: int, length: int) -> None:
        if self._spans and (offset != self._end or self._end - self._spans[0][0] >= RUN_LIMIT):
            self.flush()
        self._spans.append((offset, length))
        self._end = offset + length

    def flush(self) -> None:
        spans, self._spans = self._spans, []
        if not spans:
            return
        start = spans[0][0]
        if zero_out(self._fd, start, self._end - start):
            self.zeroed += self._end - start
            for off, n in spans:
                self._checker.check(off, n)
        else:
            for off, n in spans:
                self._write_zeros(off, n)
