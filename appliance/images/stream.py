"""Unpack a compressed image into a byte stream that a writer pulls chunk by chunk.

`open_decoder` picks, per format, the fastest well-kept decoder this machine has: the `xz -T0`,
`zstd`, `gzip`/`pigz` and `bzip2`/`lbzip2` programs as subprocesses (they decode on another core
while the writer thread waits on the device, and `xz -T0` unpacks multi-block files in
parallel), else the stdlib `lzma`/`gzip`/`bz2` modules, and always `zipfile` for a zip's one
entry. A decoder only ever hands out bytes it produced; whether the whole stream was sound (the
format's own CRC, no early end) is known when `finish` returns without raising `CorruptImage`,
which is why a writer keeps the image's first chunk back until then.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Protocol, cast

from appliance.drives.base import BurnError, Cancelled, CorruptImage, SourceImage, ToolMissing
from appliance.images.download import GrowingReader, open_image
from appliance.images.formats import Encoding, UnsupportedImage
from appliance.images.zipstream import NotStreamable, ZipDamaged, ZipEntryReader, ZipRefused
from plumbing.unpack import STDLIB_ERRORS, NotOneImage, decoder_argv, open_stdlib

_F_SETPIPE_SZ = 1031
_PIPE_SIZE = 8 * 1024 * 1024


class Decoder(Protocol):
    def readinto(self, view: memoryview) -> int:
        """Fill `view` with unpacked bytes; fewer than its length only at the end, 0 after."""
        ...

    def consumed(self) -> int:
        """Compressed bytes read so far (progress when the unpacked size is not known)."""
        ...

    def finish(self) -> None:
        """At the end of the stream: raise CorruptImage if the decoder found damage."""
        ...

    def stop(self) -> None:
        """Make a blocked `readinto` return soon (callable from another thread)."""
        ...

    def close(self) -> None: ...


def _damaged(image: SourceImage, detail: str) -> CorruptImage:
    return CorruptImage(
        f"{Path(image.path).name} is not a sound {image.encoding} file ({detail}); "
        "the target was left blank at its start"
    )


class ProcessDecoder:
    """A decoding program reading the file on its stdin and writing the image to a pipe."""

    def __init__(self, argv: list[str], image: SourceImage) -> None:
        self._image = image
        self._src = open_image(Path(image.path))
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - a pipe could fill and block it
        # A file still downloading is fed through a pipe, since the program would take the
        # end of what has arrived for the end of the file.
        try:
            self._proc = subprocess.Popen(  # noqa: S603 - an argument list, nothing interpreted
                argv,
                stdin=subprocess.PIPE if isinstance(self._src, GrowingReader) else self._src,
                stdout=subprocess.PIPE,
                stderr=self._err,
            )
        except OSError:
            self._src.close()
            self._err.close()
            raise
        self._feeder: threading.Thread | None = None
        self._feed_error: BurnError | None = None
        if isinstance(self._src, GrowingReader):
            self._feeder = threading.Thread(target=self._feed, name="feed-decoder", daemon=True)
            self._feeder.start()
        if self._proc.stdout is None:  # pragma: no cover - stdout=PIPE always sets it
            raise RuntimeError("decoder started without a stdout pipe")
        self._out = self._proc.stdout
        self._fd = self._out.fileno()
        # A bigger pipe means fewer hand-offs between decoder and reader (each one a context
        # switch on a busy 2-core Pi); root may exceed pipe-max-size, others get 1 MiB.
        for size in (_PIPE_SIZE, 1024 * 1024):
            try:
                fcntl.fcntl(self._fd, _F_SETPIPE_SZ, size)
                break
            except OSError:
                continue

    def readinto(self, view: memoryview) -> int:
        got = 0
        while got < len(view):
            n = os.readv(self._fd, [view[got:]])
            if n == 0:
                break
            got += n
        return got

    def _feed(self) -> None:
        stdin = self._proc.stdin
        if stdin is None:  # pragma: no cover - stdin=PIPE always sets it
            return
        buf = bytearray(1024 * 1024)
        try:
            with memoryview(buf) as view:
                while (n := self._src.readinto(view)) > 0:
                    stdin.write(view[:n])
        except BurnError as exc:
            self._feed_error = exc  # the download failed: that, not the short stream, is news
        except OSError:
            pass  # the decoder stopped reading (killed, or it failed and says why)
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def consumed(self) -> int:
        # Without a feeder the child reads through our file description: our offset is its.
        if isinstance(self._src, GrowingReader):
            return self._src.tell()
        try:
            return os.lseek(self._src.fileno(), 0, os.SEEK_CUR)
        except (OSError, ValueError):
            return 0

    def finish(self) -> None:
        rc = self._proc.wait()
        if self._feeder is not None:
            self._feeder.join()
        if self._feed_error is not None:
            raise self._feed_error
        if rc != 0:
            self._err.seek(0)
            text = self._err.read(4096).decode("utf-8", "replace")
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            raise _damaged(self._image, lines[0] if lines else f"decoder exit status {rc}")

    def stop(self) -> None:
        if isinstance(self._src, GrowingReader):
            self._src.abort()
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    def close(self) -> None:
        self.stop()
        self._proc.wait()
        if self._feeder is not None:
            self._feeder.join()
        self._out.close()
        self._src.close()
        self._err.close()


class FileDecoder:
    """A stdlib decompressing file object (lzma, gzip, bz2, a zip entry: `plumbing.unpack`)."""

    def __init__(self, image: SourceImage) -> None:
        self._image = image
        # zipfile and the stdlib openers want a file; a GrowingReader reads like one.
        self._raw = cast(IO[bytes], open_image(Path(image.path)))
        try:
            self._f = open_stdlib(image.encoding, self._raw, image.member)
        except NotImplementedError as exc:
            self._raw.close()
            raise UnsupportedImage(
                f"{Path(image.path).name}: the zip entry uses a compression method "
                f"that cannot be unpacked here ({exc})"
            ) from exc
        except NotOneImage as exc:
            self._raw.close()
            raise UnsupportedImage(f"{Path(image.path).name} is {exc}") from exc
        except STDLIB_ERRORS as exc:
            self._raw.close()
            raise _damaged(image, str(exc)) from exc

    def readinto(self, view: memoryview) -> int:
        got = 0
        try:
            while got < len(view):
                with view[got:] as rest:  # released on an error too (see RawReader)
                    n = self._f.readinto(rest)
                if not n:
                    break
                got += n
        except STDLIB_ERRORS as exc:
            raise _damaged(self._image, str(exc) or type(exc).__name__) from exc
        return got

    def consumed(self) -> int:
        try:
            return int(self._raw.tell())
        except (OSError, ValueError):
            return 0

    def finish(self) -> None:
        return None  # the stdlib raises from readinto on damage

    def stop(self) -> None:
        if isinstance(self._raw, GrowingReader):
            self._raw.abort()

    def close(self) -> None:
        with contextlib.suppress(*STDLIB_ERRORS):
            self._f.close()
        self._raw.close()


class ZipStreamDecoder:
    """A zip that is still downloading, unpacked in order from its local headers (`zipstream`)
    instead of waiting for the central directory at its end."""

    def __init__(self, image: SourceImage, src: GrowingReader) -> None:
        self._image, self._src = image, src
        self._zip = ZipEntryReader()
        self._buf = bytearray(1024 * 1024)
        # Up to the image's header, so NotStreamable comes before any byte was handed out.
        while True:
            with self._errors():
                if self._zip.find_image():
                    break
            if not self._feed_once():
                break

    def _feed_once(self) -> bool:
        with memoryview(self._buf) as view:
            n = self._src.readinto(view)
            if n == 0:
                with self._errors():
                    self._zip.end_of_input()
                return False
            self._zip.feed(view[:n])
        return True

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        name = Path(self._image.path).name
        try:
            yield
        except ZipRefused as exc:
            raise UnsupportedImage(
                f"{name} is a zip that does not hold exactly one image ({exc}); "
                "unpack it and pick one"
            ) from exc
        except ZipDamaged as exc:
            raise _damaged(self._image, str(exc)) from exc

    def readinto(self, view: memoryview) -> int:
        got = 0
        while got < len(view):
            with self._errors():
                out = self._zip.read(len(view) - got)
            if out:
                view[got : got + len(out)] = out
                got += len(out)
            elif self._zip.done or not self._feed_once():
                break
        return got

    def consumed(self) -> int:
        return self._src.tell()

    def finish(self) -> None:
        with self._errors():
            self._zip.end_of_input()

    def stop(self) -> None:
        self._src.abort()

    def close(self) -> None:
        self._src.close()


def _open_zip(image: SourceImage, abort: threading.Event | None) -> Decoder:
    """A zip still downloading is unpacked as it arrives when its entry allows; otherwise (an
    unusual method, encryption) the whole file is awaited and read through its directory."""
    src = open_image(Path(image.path), abort)
    if not isinstance(src, GrowingReader):
        src.close()
        return FileDecoder(image)
    try:
        return ZipStreamDecoder(image, src)
    except NotStreamable:
        src.close()
    if not src.dl.wait_done(abort):
        raise Cancelled(f"stopped while waiting for {Path(image.path).name} to download")
    from appliance.images.formats import describe

    return FileDecoder(replace(image, member=describe(Path(image.path)).member))


class RawReader:
    """A raw image read as it is (an image burned with a bmap goes through the stream path)."""

    def __init__(self, image: SourceImage) -> None:
        self._f = open_image(Path(image.path))

    def readinto(self, view: memoryview) -> int:
        got = 0
        while got < len(view):
            # Released even when the read raises (a download that failed): a slice kept alive
            # by the error's traceback would keep the writer's buffer from being unmapped.
            with view[got:] as rest:
                n = self._f.readinto(rest)
            if not n:
                break
            got += n
        return got

    def consumed(self) -> int:
        return self._f.tell()

    def skip_hole(self, n: int) -> bool:
        """Step over the next `n` bytes without reading them when the file has no data there
        (a hole of a sparse file, which reads as zeros): a bmap burn then never reads the empty
        part of the image, as bmaptool does not. False, and nothing skipped, when the bytes may
        hold data, lie past the end of the file, or the file is still downloading."""
        if isinstance(self._f, GrowingReader):
            return False
        fd = self._f.fileno()
        pos = self._f.tell()
        if pos + n > os.fstat(fd).st_size:
            return False
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            # ENXIO: no data from here to the end of the file.
            data = pos + n if exc.errno == errno.ENXIO else pos
        self._f.seek(pos + n if data >= pos + n else pos)
        return data >= pos + n

    def finish(self) -> None:
        return None

    def stop(self) -> None:
        if isinstance(self._f, GrowingReader):
            self._f.abort()

    def close(self) -> None:
        self._f.close()


def open_decoder(image: SourceImage, abort: threading.Event | None = None) -> Decoder:
    """A decoder for an image whose `encoding` was resolved (raw only for a bmap burn);
    `abort` ends a wait for a download."""
    enc = Encoding(image.encoding)
    if enc is Encoding.RAW:
        return RawReader(image)
    if enc is Encoding.ZIP:
        return _open_zip(image, abort)
    argv = decoder_argv(enc)
    if argv is not None:
        return ProcessDecoder(argv, image)
    if enc is Encoding.ZSTD:
        raise ToolMissing("zstd images need the zstd program (Debian package zstd)")
    return FileDecoder(image)
