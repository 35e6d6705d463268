"""What an uploaded image unpacks to: its packing, the unpacked size and SHA-256, and its media.

A take names the file as delivered (`size`, `sha256`); kiosks need to know the image inside it
too: "fits on" is decided by the unpacked size, the burn checks the unpacked stream against
`extracted_sha256`, and a disk image is offered for USB/SD only while an ISO goes to discs (see
`wire.imageformat`). `inspect` unpacks a stored file once, on a worker thread, with the decoders
the kiosk uses (`plumbing.unpack`: the `xz`/`zstd`/`gzip`/`bzip2` programs, else the stdlib, and
`zipfile` for the one image a zip may hold) and returns all of it; it gives up past `limit`
bytes so no zip bomb keeps a thread busy for ever.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from coordinator.images.bmaps import BmapBuilder
from plumbing.unpack import STDLIB_ERRORS, NotOneImage, decoder_argv, open_stdlib
from wire.imageformat import HEAD, MEDIA_HEAD, Encoding, Media, media_of, sniff

PIECE = 1024 * 1024
MAX_EXTRACTED = 1 << 40  # 1 TiB: larger than any medium a kiosk writes


class NotAnImage(ValueError):
    """The file cannot be unpacked to one image (damaged, a zip of several files, too large)."""


@dataclass(frozen=True)
class Contents:
    encoding: Encoding
    extracted_size: int
    extracted_sha256: str
    media: Media


def _pieces_stdlib(path: Path, encoding: Encoding) -> Iterator[bytes]:
    with open(path, "rb") as raw:
        try:
            unpacked = open_stdlib(encoding, raw)
        except NotOneImage as exc:
            raise NotAnImage(f"it is {exc}") from exc
        except NotImplementedError as exc:
            raise NotAnImage(
                f"its zip entry is packed with a method not supported ({exc})"
            ) from exc
        try:
            yield from iter(lambda: unpacked.read(PIECE), b"")
        finally:
            unpacked.close()


def _pieces_program(path: Path, argv: list[str], encoding: Encoding) -> Iterator[bytes]:
    with open(path, "rb") as src:
        proc = subprocess.Popen(  # noqa: S603 - an argument list, nothing interpreted
            argv, stdin=src, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        if proc.stdout is None or proc.stderr is None:  # pragma: no cover - PIPE sets them
            raise RuntimeError(f"{argv[0]} started without pipes")
        try:
            yield from iter(lambda: proc.stdout.read(PIECE), b"")  # type: ignore[union-attr]
            err = proc.stderr.read(2000).decode("utf-8", "replace").strip()
            if proc.wait() != 0:
                raise NotAnImage(f"not a sound {encoding} file ({err or 'the decoder failed'})")
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()


def _pieces(path: Path, encoding: Encoding) -> Iterator[bytes]:
    """The unpacked image in pieces: the fastest decoding program here, else the stdlib (the
    same choice the kiosk makes, `plumbing.unpack`)."""
    argv = None if encoding is Encoding.ZIP else decoder_argv(encoding)
    if argv is not None:
        return _pieces_program(path, argv, encoding)
    if encoding is Encoding.ZSTD:
        raise NotAnImage("zstd images need the zstd program on the coordinator")
    return _pieces_stdlib(path, encoding)


def inspect(
    path: Path,
    *,
    limit: int = MAX_EXTRACTED,
    bmap: BmapBuilder | None = None,
    on_piece: Callable[[int], None] | None = None,
) -> Contents | None:
    """The unpacked image of a compressed file, or None for a raw file (it is its own image).
    `bmap` is fed the unpacked image on the way; `on_piece` hears the unpacked bytes so far after
    each piece (a CLI's progress)."""
    with open(path, "rb") as f:
        head = f.read(HEAD)
    encoding = sniff(head)
    if encoding is None:
        return None
    pieces = _pieces(path, encoding)
    sha = hashlib.sha256()
    size = 0
    start = bytearray()
    try:
        for piece in pieces:
            size += len(piece)
            _within(size, limit)
            if len(start) < MEDIA_HEAD:
                start += piece[: MEDIA_HEAD - len(start)]
            sha.update(piece)
            if bmap is not None:
                bmap.feed(piece)
            if on_piece is not None:
                on_piece(size)
    except NotAnImage:
        raise
    except STDLIB_ERRORS as exc:
        raise NotAnImage(f"not a sound {encoding} file ({exc})") from exc
    finally:
        with contextlib.suppress(Exception):
            pieces.close()  # type: ignore[attr-defined]
    if size == 0:
        raise NotAnImage("it unpacks to nothing")
    return Contents(encoding, size, sha.hexdigest(), media_of(bytes(start)))


def _within(size: int, limit: int) -> None:
    if size > limit:
        raise NotAnImage(f"it unpacks to more than {limit} bytes")


def media_of_file(path: Path) -> Media:
    with open(path, "rb") as f:
        return media_of(f.read(MEDIA_HEAD))
