"""Reading an image file under a burn without ever faulting on it.

An image is read by position (pread) from one descriptor, never through a memory map: a file
that shrinks under a mapped read kills the whole process with SIGBUS (and a write from such a
map fails with EFAULT), which in the agent takes every parallel burn down with it. With reads
by position a shrink is a short read, and a rewrite (`cp new.img same.img`) shows in the file's
size or modification time: both end the job as `ImageChanged`, a reason the user can act on.
The block and optical backends share this one reader.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from appliance.drives.base import CorruptImage, ImageChanged


class ImageFile:
    """One image opened for positional reads; `check()` says whether it changed since."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = Path(path)
        self.size = size
        try:
            self.fd: int | None = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise CorruptImage(f"cannot read the image {path}: {exc.strerror}") from exc
        st = os.fstat(self.fd)
        self._ident = (st.st_size, st.st_mtime_ns)
        if st.st_size != size:
            self.close()
            raise ImageChanged(
                f"{path} holds {st.st_size} bytes, but {size} were expected: the file changed"
                " after it was chosen"
            )
        with contextlib.suppress(OSError):
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)

    def same_file(self, path: Path, size: int) -> bool:
        """Whether `path` still names this very file, at the size it was opened with."""
        if self.fd is None or Path(path) != self.path or size != self.size:
            return False
        try:
            a, b = os.stat(path), os.fstat(self.fd)
        except OSError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def read_into(self, buf: memoryview, offset: int) -> None:
        """Fill `buf` with the image's bytes at `offset`; a short read means the file shrank."""
        if self.fd is None:
            raise ImageChanged(f"{self.path} is closed")
        want, got = len(buf), 0
        for _ in range(want + 1):  # bounded: each pass reads at least one byte or ends
            if got >= want:
                return
            n = os.preadv(self.fd, [buf[got:]], offset + got)
            if n <= 0:
                raise ImageChanged(
                    f"{self.path} shrank to {offset + got} bytes during the burn (it was "
                    f"{self.size}); the image file was changed while it was being burned"
                )
            got += n

    def check(self) -> None:
        """Raise `ImageChanged` if the file was resized or rewritten since it was opened."""
        if self.fd is None:
            return
        st = os.fstat(self.fd)
        if (st.st_size, st.st_mtime_ns) != self._ident:
            raise ImageChanged(
                f"{self.path} was changed while it was being burned (now {st.st_size} bytes,"
                f" was {self.size}); burn it again once the file is complete"
            )

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)
