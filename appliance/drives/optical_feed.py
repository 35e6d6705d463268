"""Feeding an image to the burn tool: a worker thread pushes it into the tool's stdin through a
socket, digesting it on the way and holding back the last chunk until the digest matched, and
a pseudo-drive gets its first bytes last of all."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import xxhash

from appliance.drives.base import (
    BurnError,
    CorruptImage,
    ImageChanged,
    SourceImage,
)
from appliance.drives.imagefile import ImageFile

# Send buffer asked for the feed socket; the kernel caps it at net.core.wmem_max (and doubles
# it), so a default Pi gets ~416 KiB. Any size works: see feed_channel for why a socket.
FEED_BUFFER = 4 << 20


@dataclass
class Feeder:
    """Pushes the image into the tool's stdin from a worker thread, digesting it on the way."""

    image: SourceImage
    source: ImageFile
    fd: int
    chunk: int
    # A pseudo-drive is a plain file: its first chunk is fed as zeros and patched in once the
    # whole image is there, so a burn killed mid-way never leaves a file that reads as a
    # complete disc with the image's label (a real disc is written once, in order).
    blank_head: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    fed: int = 0
    error: BurnError | None = None

    def _hasher(self) -> tuple[Callable[[memoryview], None], Callable[[], str], str] | None:
        img = self.image
        if img.proven and img.xxh3_128:
            x = xxhash.xxh3_128()
            return x.update, x.hexdigest, img.xxh3_128.lower()
        if img.sha256 and not img.proven:
            h = hashlib.sha256()
            return h.update, h.hexdigest, img.sha256.lower()
        return None

    def run(self) -> None:
        size = self.image.size
        if size == 0:
            return
        view = memoryview(bytearray(min(self.chunk, size)))
        try:
            self._pump(view, size, self._hasher())
        except ImageChanged as exc:
            self.error = exc  # nothing of the last chunk was sent
        finally:
            view.release()

    def _pump(
        self,
        view: memoryview,
        size: int,
        hasher: tuple[Callable[[memoryview], None], Callable[[], str], str] | None,
    ) -> None:
        off = 0
        while off < size and not self.stop.is_set():
            n = min(self.chunk, size - off)
            with view[:n] as piece:
                self.source.read_into(piece, off)
                if off + n == size:
                    self.source.check()  # a rewritten file never gets its last chunk out
                if hasher is not None:
                    hasher[0](piece)
                    # The last chunk is withheld until the digest matched: the disc (or
                    # pseudo-drive) then never holds a complete copy of a rotten image.
                    if off + n == size and hasher[1]() != hasher[2]:
                        self.error = CorruptImage(
                            f"{self.image.path} does not match its digest (read {hasher[1]()}, "
                            f"expected {hasher[2]}); burn stopped before the last block"
                        )
                        return
                out = memoryview(bytes(n)) if self.blank_head and off == 0 else piece
                sent = 0
                while sent < n:
                    try:
                        sent += os.write(self.fd, out[sent:])
                    except (BrokenPipeError, ConnectionResetError):
                        # The tool died; its exit status tells why. Some kernels report a
                        # socket peer that closed with unread input as a reset.
                        return
            off += n
            self.fed = off


def write_head(target: str, source: ImageFile, length: int) -> None:
    """Put the image's first `length` bytes at the start of a pseudo-drive file, last of all
    (worker thread); a source changed since it was hashed is refused first."""
    head = bytearray(length)
    with memoryview(head) as view:
        source.read_into(view, 0)
    source.check()
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
        try:
            if os.pwrite(fd, head, 0) != length:
                raise OSError(errno.EIO, "short write")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise BurnError(
            f"{target}: could not write the image's first bytes: {exc.strerror}"
        ) from exc


def feed_channel() -> tuple[int, int, int]:
    """The tool's stdin and our end of it: (its read fd, our write fd, bytes it can buffer).

    A Unix stream socket rather than a pipe. cdrskin reads its input 2 KiB at a time, and a full
    pipe wakes its writer as soon as one 4 KiB page is free: one wake-up of the feeder per page,
    ~43000 sleeps of the feeder per 256 MiB, costing ~0.5 CPU-s on top of the ~1.3 the burn itself
    takes, and making an unprivileged cdrskin 1.4-1.7x slower than with the image file on its
    stdin. A socket wakes a blocked sender only once the receiver has drained three quarters of
    its send buffer: 40 sleeps per 256 MiB with a 4 MiB buffer, ~700 with a Pi's default
    wmem_max. The tool reads it like a pipe (EOF when we close our end). A bigger pipe does not
    help (the wake-up is per freed page whatever the size), nor does splice.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with contextlib.suppress(OSError):
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, FEED_BUFFER)
        # One-way: the tool cannot write back into the feed, nor we read from it.
        ours.shutdown(socket.SHUT_RD)
        theirs.shutdown(socket.SHUT_WR)
        buffered = ours.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    except OSError:
        ours.close()
        theirs.close()
        raise
    return theirs.detach(), ours.detach(), buffered
