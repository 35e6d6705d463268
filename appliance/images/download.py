"""Burn straight from a URL: download into the cache while the burn reads what has arrived.

`start_download` opens the URL (stdlib `urllib`, in a thread: the command line does not load
aiohttp for this) and appends the body to `<cache>/partial-<key>`, where `key` names the URL. A
reader from `open_image` (the decoder, the digest checker) blocks until the bytes it wants have
arrived, so writing overlaps downloading. A connection that drops or stalls is resumed with
`Range: bytes=N-` and `If-Range`, a bounded number of times; a server that answers a resume with
another length or another file fails the burn ("changed between ranges"), as does a 404. A
complete download is renamed to `<cache>/<sha256>` once its SHA-256 is known, so the next burn of
the same take (`--sha256`) reads it from the cache; a partial file left by an earlier run is
resumed, not fetched again.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import os
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from appliance.drives.base import BurnError

PIECE = 1024 * 1024
RETRIES = 5  # resumes after a drop or a stall, per download
HEAD_BYTES = 64 * 1024  # what the format check needs before a burn can start


class DownloadError(BurnError):
    code = "download-failed"


@dataclass(eq=False)
class Download:
    url: str
    path: Path
    timeout: float
    size: int = 0  # the body's length, from the first response
    have: int = 0  # bytes on disk so far
    done: bool = False
    error: BaseException | None = None
    validator: str | None = None  # ETag or Last-Modified, for If-Range
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

    def cancel(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()

    # ----------------------------------------------------------------- the thread

    def _request(self, start: int) -> http.client.HTTPResponse:
        req = urllib.request.Request(self.url, headers={"User-Agent": "burnstand-agent"})  # noqa: S310 - the CLI passes http(s) URLs only
        if start:
            req.add_header("Range", f"bytes={start}-")
            if self.validator:
                req.add_header("If-Range", self.validator)
        try:
            resp = urllib.request.urlopen(req, timeout=self.timeout)  # noqa: S310 - see above
        except urllib.error.HTTPError as exc:
            exc.close()
            raise DownloadError(f"{self.url} answered {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DownloadError(f"cannot download {self.url}: {reason}") from None
        return resp  # type: ignore[no-any-return]

    def open_first(self) -> http.client.HTTPResponse:
        """The first response, checked (called before the burn starts, so a 404 is refused
        before any target is touched)."""
        have = self.path.stat().st_size if self.path.exists() else 0
        resp = self._request(have)
        total = _total(resp, have)
        if resp.status == 200:
            have = 0  # the server sent the whole file (no ranges, or it changed): start over
        self.size, self.have = total, have
        self.validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
        if have:  # the part an earlier run left goes through the digest first
            with open(self.path, "rb") as f:
                for piece in iter(lambda: f.read(PIECE), b""):
                    self.sha256.update(piece)
        return resp

    def run(self, resp: http.client.HTTPResponse) -> None:
        mode = "ab" if self.have else "wb"
        attempts = 0
        try:
            with open(self.path, mode) as out:
                out.truncate(self.have)
                while True:
                    try:
                        self._copy(resp, out)
                    except (OSError, http.client.HTTPException) as exc:
                        if self.stop.is_set():
                            return
                        attempts += 1
                        if attempts > RETRIES:
                            what = "stalled" if isinstance(exc, TimeoutError) else "broke off"
                            raise DownloadError(
                                f"the download of {self.url} {what} at {self.have} of "
                                f"{self.size} bytes, {RETRIES} resumes did not help"
                            ) from None
                    finally:
                        resp.close()
                    if self.have >= self.size or self.stop.is_set():
                        break
                    resp = self._resume()
            self._check_length()
        except BaseException as exc:
            with self.cond:
                self.error = exc if isinstance(exc, BurnError) else DownloadError(str(exc))
                self.cond.notify_all()
            return
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def _check_length(self) -> None:
        if self.have != self.size and not self.stop.is_set():
            raise DownloadError(f"{self.url} sent {self.have} bytes, it announced {self.size}")

    def _resume(self) -> http.client.HTTPResponse:
        resp = self._request(self.have)
        total = _total(resp, self.have)
        if resp.status != 206 or total != self.size:
            resp.close()
            raise DownloadError(
                f"{self.url} changed between ranges (it was {self.size} bytes, a resume at "
                f"{self.have} found {'a new file' if resp.status == 200 else total})"
            )
        return resp

    def _copy(self, resp: http.client.HTTPResponse, out: IO[bytes]) -> None:
        while not self.stop.is_set() and self.have < self.size:
            piece = resp.read(min(PIECE, self.size - self.have))
            if not piece:
                raise http.client.IncompleteRead(b"", self.size - self.have)
            out.write(piece)
            out.flush()  # readers open the file on their own; they must see what we count
            self.sha256.update(piece)
            with self.cond:
                self.have += len(piece)
                self.cond.notify_all()


def _total(resp: http.client.HTTPResponse, start: int) -> int:
    if resp.status == 206:
        crange = resp.headers.get("Content-Range", "")
        _, _, total = crange.rpartition("/")
        if not total.isdigit():
            resp.close()
            raise DownloadError(f"the server sent a range without a total ({crange!r})")
        return int(total)
    length = resp.headers.get("Content-Length")
    if length is None or not length.isdigit():
        resp.close()
        raise DownloadError("the server did not say how long the image is (no Content-Length)")
    return int(length)


_active: dict[Path, Download] = {}
_active_lock = threading.Lock()


def start_download(url: str, cache: Path, *, timeout: float = 30.0) -> Download:
    """Open `url` and start appending it to the cache; raises DownloadError (404, refused...)."""
    cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(url.encode()).hexdigest()[:32]
    dl = Download(url, cache / f"partial-{key}", timeout)
    resp = dl.open_first()
    if dl.have >= dl.size:
        resp.close()
        dl.done = True
        return dl
    dl.thread = threading.Thread(target=dl.run, args=(resp,), name="download", daemon=True)
    with _active_lock:
        _active[dl.path] = dl
    dl.thread.start()
    return dl


def finish_download(dl: Download) -> Path | None:
    """After the burn: a complete download is kept as `<cache>/<sha256>`; returns that path.
    An unfinished one is told to stop but not waited for (it may sit in a read that only its
    timeout ends); its partial file stays for the next run to resume."""
    with _active_lock:
        _active.pop(dl.path, None)
    if not dl.done or dl.error is not None:
        dl.stop.set()
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


def wait_for_head(dl: Download) -> None:
    """Block until the first bytes (enough to tell the format) arrived."""
    with contextlib.suppress(DownloadError):
        dl.wait_for(min(HEAD_BYTES, dl.size) - 1)
    if dl.error is not None and dl.have < min(HEAD_BYTES, dl.size):
        raise dl.error
