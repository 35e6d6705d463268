"""Unpacking compressed images: what the kiosk (which burns them) and the coordinator's image store
(which looks inside uploads) decode the same way.

- `decoder_argv` names the fastest decoding program this machine has for a packing (`xz -T0`,
  `zstd`, `pigz`/`gzip`, `lbzip2`/`bzip2`), run with the file on stdin and the image on stdout.
- `open_stdlib` is the stdlib fallback (`lzma`, `gzip`, `bz2`) and the one way to read a zip's
  entry (`zipfile`), as a file object with `readinto`; `STDLIB_ERRORS` is what its reads raise
  on a damaged file.
- `image_entry` applies the one rule for zips on both sides: exactly one file, folders and
  `__MACOSX/` entries aside; anything else raises `NotOneImage` naming what the zip holds.

Packings are named by their `wire.imageformat.Encoding` values ("xz", "gzip", ...); this layer
imports nothing else of ours.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import zipfile
import zlib
from typing import IO, Protocol, cast

# Program candidates per packing, fastest first, with the arguments that decode to stdout.
PROGRAMS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "xz": (("xz", ("-dc", "-T0")),),
    "zstd": (("zstd", ("-dcq",)),),
    "gzip": (("pigz", ("-dc",)), ("gzip", ("-dc",))),
    "bzip2": (("lbzip2", ("-dc",)), ("bzip2", ("-dc",))),
}

STDLIB_ERRORS: tuple[type[Exception], ...] = (
    lzma.LZMAError,
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    zipfile.BadZipFile,
    OSError,
    ValueError,
)


class NotOneImage(ValueError):
    """A zip that does not hold exactly one image file; the message names what it holds."""


class Readable(Protocol):
    def readinto(self, buffer: memoryview, /) -> int: ...

    def read(self, n: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


def decoder_argv(encoding: str) -> list[str] | None:
    """The command that decodes `encoding` from stdin to stdout here, or None (use the stdlib)."""
    for name, args in PROGRAMS.get(encoding, ()):
        exe = shutil.which(name)
        if exe is not None:
            return [exe, *args]
    return None


def image_entry(zf: zipfile.ZipFile) -> zipfile.ZipInfo:
    """The zip's one image file; NotOneImage when it holds none or several."""
    infos = zf.infolist()
    files = [i for i in infos if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
    if len(files) == 1:
        return files[0]
    if not files:
        held = ", ".join(i.filename for i in infos) or "nothing"
        raise NotOneImage(
            f"a zip with no image in it (it holds {held}); a zip must hold exactly one image file"
        )
    names = ", ".join(i.filename for i in files[:5]) + (", …" if len(files) > 5 else "")
    raise NotOneImage(
        f"a zip with {len(files)} files ({names}); a zip must hold exactly one image file, "
        "so unpack it and pick one"
    )


def open_stdlib(encoding: str, raw: IO[bytes], member: str | None = None) -> Readable:
    """The unpacked image of `raw` through the stdlib (for a zip: `member`, or its one image).
    Raises NotImplementedError for a zip method the stdlib lacks, and `STDLIB_ERRORS`."""
    if encoding == "zip":
        # A ZipFile on a file object it was handed owns no descriptor: the entry alone is
        # returned (no wrapper frame that a traceback would keep, with the caller's buffer).
        zf = zipfile.ZipFile(raw)
        name = member if member is not None else image_entry(zf).filename
        # ZipExtFile is a BufferedIOBase (it has readinto); typeshed calls it IO[bytes].
        return cast(Readable, zf.open(name))
    if encoding == "xz":
        return lzma.open(raw)
    if encoding == "gzip":
        return gzip.open(raw)
    if encoding == "bzip2":
        return bz2.open(raw)
    raise NotImplementedError(f"no stdlib decoder for {encoding}")
