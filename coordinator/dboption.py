"""Which database a coordinator command uses: ``--database``, ``BURNSTAND_DATABASE``, a file.

The default is the SQLite file in ``--data``. A PostgreSQL URL comes from, first to last:
``--database-file FILE`` (the URL, password included, in a file only the service user reads),
``--database URL`` (refused if it holds a password: every local user can read a command line in
/proc), the environment variable ``BURNSTAND_DATABASE``, or the systemd credential ``database``
(``LoadCredential=database:/etc/burnstand/database-url``). Without a password in the URL, libpq's
own ``PGPASSFILE`` / ``~/.pgpass`` is read as usual.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

import psycopg

from coordinator.store.sql import is_postgres

ENV = "BURNSTAND_DATABASE"
CREDENTIAL = "database"


class DatabaseOptionError(ValueError):
    """The database named cannot be used as given (one line for the operator)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        metavar="URL",
        help="keep the state in PostgreSQL (postgresql://USER@HOST:PORT/DB, no password here: "
        f"use --database-file, ${ENV}, the systemd credential {CREDENTIAL!r} or ~/.pgpass); "
        "default: the SQLite file in --data",
    )
    parser.add_argument(
        "--database-file",
        type=Path,
        metavar="FILE",
        help="read the PostgreSQL URL (password included) from FILE",
    )


def add_pool_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-pool",
        type=int,
        default=20,
        metavar="N",
        help="with PostgreSQL: at most N connections from this process (default: 20)",
    )
    parser.add_argument(
        "--database-timeout",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="with PostgreSQL: a request waits this long for a connection before it fails with "
        "503, and health reports the database unreachable (default: 3)",
    )


def pool_bounds(args: argparse.Namespace) -> tuple[int, float]:
    size, timeout = args.database_pool, args.database_timeout
    if not 1 <= size <= 1000:
        raise DatabaseOptionError(f"--database-pool must be 1 to 1000, not {size}")
    if not 0 < timeout <= 600:
        raise DatabaseOptionError(
            f"--database-timeout must be above 0 and at most 600, not {timeout:g}"
        )
    return size, timeout


def _has_password(url: str) -> bool:
    try:
        return bool(psycopg.conninfo.conninfo_to_dict(url).get("password"))
    except psycopg.ProgrammingError as exc:
        raise DatabaseOptionError(f"--database is not a valid PostgreSQL URL: {exc}") from None


def _check(url: str, origin: str) -> str:
    if not is_postgres(url):
        raise DatabaseOptionError(
            f"{origin} must be a postgresql:// URL (the SQLite file is the default: leave it out)"
        )
    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise DatabaseOptionError(f"{origin} is not a valid PostgreSQL URL: {exc}") from None
    return url


def _read(path: Path, origin: str) -> str:
    try:
        url = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatabaseOptionError(f"{origin} {path}: {exc}") from None
    if not url:
        raise DatabaseOptionError(f"{origin} {path} is empty")
    return _check(url, f"{origin} {path}")


def resolve(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> str | None:
    """The PostgreSQL URL to use, or None for the SQLite file in --data."""
    env = os.environ if environ is None else environ
    inline: str | None = getattr(args, "database", None)
    path: Path | None = getattr(args, "database_file", None)
    if inline is not None and path is not None:
        raise DatabaseOptionError("give --database or --database-file, not both")
    if path is not None:
        return _read(path, "--database-file")
    if inline is not None:
        if _has_password(inline):
            raise DatabaseOptionError(
                "--database holds a password, which every local user can read on the command "
                f"line: put the URL in --database-file, ${ENV} or the systemd credential "
                f"{CREDENTIAL!r}"
            )
        return _check(inline, "--database")
    if env.get(ENV):
        return _check(env[ENV].strip(), f"${ENV}")
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / CREDENTIAL).is_file():
        return _read(Path(creds) / CREDENTIAL, "the systemd credential")
    return None
