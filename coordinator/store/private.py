"""Files only the coordinator's user may read, whatever the umask it was started with.

The database holds password-equivalent hashes, audit rows and personal data, so the data
directory is made 0700 and each database file 0600 before SQLite opens it; SQLite gives the
-wal and -shm files it creates next to a database the database file's own permissions.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create ``path`` (and parents) if needed and make it 0700; parents keep their modes."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)  # an existing one, or one made wider by an old umask


def private_file(path: Path) -> None:
    """Make ``path`` exist with mode 0600 (an existing file is narrowed, never truncated), in a
    0700 directory; then SQLite creates the file's -wal and -shm with the same mode."""
    private_dir(path.parent)
    # An existing database is never opened here: closing any descriptor of it would drop the
    # POSIX locks SQLite connections of this process hold on it. chmod needs no descriptor.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        pass
    else:
        os.close(fd)  # new and empty: nobody holds a lock on it yet
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path.with_name(name), FILE_MODE)
