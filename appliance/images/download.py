"""Burn straight from a URL: download into the cache while the burn reads what has arrived.

`start_download` opens a `ByteSource` (an http(s) URL through `sources.HttpSource`; the command
line does not load aiohttp for this) and appends its bytes, in a thread, to a partial file: the
command line's `<cache>/partial-<key>`, where `key` names the URL, or the agent cache's
`partial/<sha256>.part`. A reader from `open_image` (the decoder, the digest checker) blocks
until the bytes it wants have arrived, so writing overlaps downloading. A connection that drops
or stalls is resumed by opening the source again at the next offset, a bounded number of times;
a source that answers a resume with another length or another file fails the burn ("changed
between ranges"), as does a 404. A partial file left by an earlier run is resumed, not fetched
again. The command line keeps a complete download as `<cache>/<sha256>` (`finish_download`); the
agent's cache admits it after proving it (`ImageCache.end_fetch`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from appliance.drives.base import BurnError, CorruptImage, DiskFull
from appliance.images.sources import Body, ByteSource, DownloadError, HttpSource

__all__ = [
    "Download",
    "DownloadError",
    "GrowingReader",
    "active",
    "finish_download",
    "forget",
    "open_image",
    "start_download",
    "start_download_to",
    "wait_until_readable",
]

PIECE = 1024 * 1024
RETRIES = 5  # resumes after a drop or a stall, per download
HEAD_BYTES = 64 * 1024  # what the format check needs before a burn can start


@dataclass(eq=False)
class Download:
    source: ByteSource
    path: Path
    size: int = 0  # the file's length, from the first answer
    have: int = 0  # bytes on disk so far
    done: bool = False
    error: BaseException | None = None
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    cond: threading.Condition = field(default_factory=threading.Condition)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    # ----------------------------------------------------------------- readers

    def wait_for(self, offset: int, abort: threading.Event | None = None) -> int:
        """Block until byte `offset` arrived or the download ended; returns bytes on disk.
        A reader that is being stopped (`abort`) gets what is there at once."""
        with self.cond:
            while self.have <= offset and not self.done and self.error is None:
                if abort is not None and abort.is_set():
                    return self.have
                self.cond.wait(0.1)
            if self.error is not None and self.have <= offset:
                raise self.error
            return self.have

    def wait_done(self, abort: threading.Event | None = None) -> bool:
        """Block until the whole file is on disk (True) or `abort` is set (False); raise the
        download's error if it failed."""
        with self.cond:
            while not self.done and self.error is None:
                if abort is not None and abort.is_set():
                    return False
                self.cond.wait(0.1)
            if self.error is not None:
                raise self.error
            return True

    def cancel(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()

    # ----------------------------------------------------------------- the thread

    def open_first(self, expected: int | None = None) -> Body | None:
        """The first answer, checked (called before the burn starts, so a 404 is refused
        before any target is touched); None when an earlier run left the whole file."""
        have = self.path.stat().st_size if self.path.exists() else 0
        if expected is not None and have > expected:
            have = 0  # longer than the take: cannot be a prefix of it
        body: Body | None = None
        if expected is not None and have == expected:
            self.size = self.have = have
        else:
            opened = self.source.open(have)
            if expected is not None and opened.total != expected:
                opened.body.close()
                raise CorruptImage(
                    f"{self.source.what} is {opened.total} bytes, the take says {expected}"
                )
            self.size, self.have, body = opened.total, opened.start, opened.body
        with contextlib.suppress(FileNotFoundError), open(self.path, "rb") as f:
            left = self.have  # the part an earlier run left goes through the digest first
            while left and (piece := f.read(min(PIECE, left))):
                self.sha256.update(piece)
                left -= len(piece)
        if self.have >= self.size and body is not None:
            body.close()
            body = None
        return body

    def run(self, body: Body) -> None:
        try:
            self._fill(body)
            self._check_whole()
        except BaseException as exc:
            with self.cond:
                self.error = exc if isinstance(exc, BurnError) else DownloadError(str(exc))
                self.cond.notify_all()
            return
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def _check_whole(self) -> None:
        if self.have < self.size:  # `_fill` returns early only when told to stop
            raise DownloadError(
                f"the download of {self.source.what} was stopped at {self.have} of "
                f"{self.size} bytes"
            )

    def _fill(self, body: Body) -> None:
        """Append until the file is whole or `stop` is set, resuming after drops."""
        attempts = 0
        out = open(self.path, "r+b" if self.path.exists() else "wb")  # noqa: SIM115
        try:
            out.truncate(self.have)
            out.seek(self.have)
            while True:
                try:
                    self._copy(body, out)
                except OSError as exc:
                    if self.stop.is_set():
                        return
                    attempts += 1
                    if attempts > RETRIES:
                        what = "stalled" if isinstance(exc, TimeoutError) else "broke off"
                        raise DownloadError(
                            f"the download of {self.source.what} {what} at {self.have} of "
                            f"{self.size} bytes, {RETRIES} resumes did not help"
                        ) from None
                finally:
                    body.close()
                if self.have >= self.size or self.stop.is_set():
                    return
                body = self._resume()
        finally:
            # Every write is flushed at once, so only a failed one leaves bytes buffered:
            # after a full disk, closing must not replace the DiskFull that ended the loop.
            with contextlib.suppress(OSError):
                out.close()

    def _resume(self) -> Body:
        opened = self.source.open(self.have)
        if opened.start != self.have or opened.total != self.size:
            opened.body.close()
            found = "a new file" if opened.start == 0 else opened.total
            raise DownloadError(
                f"{self.source.what} changed between ranges (it was {self.size} bytes, a "
                f"resume at {self.have} found {found})"
            )
        return opened.body

    def _copy(self, body: Body, out: IO[bytes]) -> None:
        while not self.stop.is_set() and self.have < self.size:
            piece = body.read(min(PIECE, self.size - self.have))
            if not piece:
                raise ConnectionError(f"the answer ended {self.size - self.have} bytes early")
            try:
                out.write(piece)
                out.flush()  # readers open the file on their own; they must see what we count
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise DiskFull(f"disk full while downloading {self.source.what}") from exc
                raise DownloadError(f"cannot keep the download in {self.path}: {exc}") from exc
            self.sha256.update(piece)
            with self.cond:
                self.have += len(piece)
                self.cond.notify_all()


_active: dict[Path, Download] = {}
_active_lock = threading.Lock()


def start_download_to(source: ByteSource, path: Path, expected: int | None = None) -> Download:
    """Open `source` and start appending it to `path` (resuming what is there); raises
    DownloadError (404, refused...) or CorruptImage (not the `expected` length)."""
    dl = Download(source, path)
    body = dl.open_first(expected)
    if body is None:
        dl.done = True
        return dl
    with _active_lock:
        _active[dl.path] = dl
    dl.thread = threading.Thread(target=dl.run, args=(body,), name="download", daemon=True)
    dl.thread.start()
    return dl


def start_download(url: str, cache: Path, *, timeout: float = 30.0) -> Download:
    """The command line's download of `url` into `<cache>/partial-<key>`."""
    cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(url.encode()).hexdigest()[:32]
    return start_download_to(HttpSource(url, timeout=timeout), cache / f"partial-{key}")


def forget(dl: Download) -> None:
    """Readers stop treating the file as growing; an unfinished download is told to stop but
    not waited for (it may sit in a read that only its timeout ends)."""
    with _active_lock:
        if _active.get(dl.path) is dl:
            del _active[dl.path]
    if not dl.done:
        dl.stop.set()


def finish_download(dl: Download) -> Path | None:
    """After a command-line burn: a complete download is kept as `<cache>/<sha256>`; returns
    that path. A partial file stays for the next run to resume."""
    forget(dl)
    if not dl.done or dl.error is not None:
        return None
    dl.cancel()
    final = dl.path.with_name(dl.sha256.hexdigest())
    os.replace(dl.path, final)
    return final


def active(path: Path) -> Download | None:
    with _active_lock:
        return _active.get(Path(path))


class GrowingReader:
    """A file that is still being downloaded, read as if it were complete: reads block until
    their bytes arrived, and raise the download's error if it failed before then."""

    def __init__(self, dl: Download, abort: threading.Event | None = None) -> None:
        self.dl = dl
        self.f = open(dl.path, "rb", buffering=0)  # noqa: SIM115 - owned until close()
        self.pos = 0
        self.aborted = abort or threading.Event()

    def abort(self) -> None:
        """Make a blocked read return (with nothing) instead of waiting for the download."""
        self.aborted.set()

    def readinto(self, view: memoryview) -> int:
        if self.pos >= self.dl.size or self.aborted.is_set():
            return 0
        have = self.dl.wait_for(self.pos, self.aborted)
        n = os.preadv(self.f.fileno(), [view[: max(0, have - self.pos)]], self.pos)
        self.pos += n
        return n

    def read(self, n: int) -> bytes:
        buf = bytearray(n)
        with memoryview(buf) as view:
            got = self.readinto(view)
        return bytes(buf[:got])

    def tell(self) -> int:
        return self.pos

    def close(self) -> None:
        self.f.close()


def open_image(path: Path, abort: threading.Event | None = None) -> io.FileIO | GrowingReader:
    """The image file, or a reader that waits for its bytes while it is being downloaded
    (until `abort` is set)."""
    dl = active(path)
    if dl is not None and not dl.done:
        return GrowingReader(dl, abort)
    return io.FileIO(path, "rb")


def wait_until_readable(dl: Download) -> None:
    """Block until a burn can start reading: the first bytes (enough to tell the format and,
    for a zip, the first entry's header) are there."""
    dl.wait_for(min(HEAD_BYTES, dl.size) - 1)
