"""Whether an image file can be burned at all: there, a regular file, not empty, readable.

Its own module, with nothing but `os` and `stat` behind it, because `burnstand-agent burn` checks
the image before it prints its first event and must not load the burn engine to do so; the agent
checks a `burn_file` request's image with the same function (appliance.fileburn).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class ImageUnreadable(Exception):
    """The image file is missing, not a regular file, empty or not readable."""


def checked_image(path_text: str | Path) -> tuple[Path, int]:
    """(absolute path, size) of an image file that can be burned. The journal outlives the
    shell's working directory, so the path is made absolute here."""
    path = Path(os.path.abspath(path_text))
    try:
        st = path.stat()
    except OSError as exc:
        raise ImageUnreadable(f"cannot read image {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise ImageUnreadable(f"image {path} is not a regular file")
    if st.st_size == 0:
        raise ImageUnreadable(f"image {path} is empty")
    if not os.access(path, os.R_OK):
        raise ImageUnreadable(f"cannot read image {path}: permission denied")
    return path, st.st_size
