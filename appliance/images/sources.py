"""Where a download's bytes come from: the seam between `download.Download` and the network.

A `ByteSource` hands out the bytes of one file from an offset on (`open(start)`), saying how long
the whole file is and where its answer really begins. `Download` decides what to do with that:
append, resume after a drop by opening again at the next offset, or fail when the file changed
between two answers. `HttpSource` is the one source today (stdlib `urllib`, so the command line
does not load aiohttp: a `Range: bytes=N-` request with `If-Range`, so a file that changed comes
back whole and is noticed). Another source (a peer kiosk's chunks) fits the same two calls.

A source raises `DownloadError` for answers that no retry will change (404, no length) and
`OSError` for a connection that broke or stalled, which `Download` resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from appliance.drives.base import BurnError

if TYPE_CHECKING:
    import http.client

# http.client and urllib are imported on the first request: a burn of a local file imports
# this module (through the download registry) and should not pay for them before its first byte.


class DownloadError(BurnError):
    code = "download-failed"


class Body(Protocol):
    def read(self, n: int) -> bytes:
        """Up to `n` bytes; b"" when the answer ended; OSError when the connection broke."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Opened:
    total: int  # the whole file's length, as this answer states it
    start: int  # the offset the body begins at: the one asked for, or 0 for the whole file
    body: Body


class ByteSource(Protocol):
    what: str  # names the source in messages (a URL)

    def open(self, start: int) -> Opened:
        """The file's bytes from `start` on (or from 0, when the source cannot do better)."""
        ...


class _HttpBody:
    def __init__(self, resp: http.client.HTTPResponse) -> None:
        from http.client import HTTPException

        self._resp = resp
        self._broken = HTTPException

    def read(self, n: int) -> bytes:
        try:
            return self._resp.read(n)
        except self._broken as exc:  # IncompleteRead and kin: a broken connection
            raise ConnectionError(str(exc) or type(exc).__name__) from exc

    def close(self) -> None:
        self._resp.close()


class HttpSource:
    """An http(s) URL; `headers` travel on every request (the coordinator's credential)."""

    def __init__(
        self, url: str, *, timeout: float = 30.0, headers: dict[str, str] | None = None
    ) -> None:
        self.what = url
        self.timeout = timeout
        self.headers = {"User-Agent": "burnstand-agent", **(headers or {})}
        self.validator: str | None = None  # ETag or Last-Modified of the first answer

    def open(self, start: int) -> Opened:
        import urllib.error
        import urllib.request

        if not self.what.startswith(("http://", "https://")):
            raise DownloadError(f"cannot download {self.what!r}: not an http(s) URL")
        req = urllib.request.Request(self.what, headers=self.headers)  # noqa: S310 - http(s) only, checked above
        if start:
            req.add_header("Range", f"bytes={start}-")
            if self.validator:
                req.add_header("If-Range", self.validator)
        try:
            resp: http.client.HTTPResponse = urllib.request.urlopen(req, timeout=self.timeout)  # noqa: S310 - see above
        except urllib.error.HTTPError as exc:
            exc.close()
            raise DownloadError(f"{self.what} answered {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DownloadError(f"cannot download {self.what}: {reason}") from None
        try:
            total = _total(resp)
        except DownloadError:
            resp.close()
            raise
        if self.validator is None:
            self.validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
        return Opened(total, start if resp.status == 206 else 0, _HttpBody(resp))


def _total(resp: http.client.HTTPResponse) -> int:
    if resp.status == 206:
        crange = resp.headers.get("Content-Range", "")
        _, _, total = crange.rpartition("/")
        if not total.isdigit():
            raise DownloadError(f"the server sent a range without a total ({crange!r})")
        return int(total)
    length = resp.headers.get("Content-Length")
    if length is None or not length.isdigit():
        raise DownloadError("the server did not say how long the image is (no Content-Length)")
    return int(length)
