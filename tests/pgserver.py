"""A real PostgreSQL server for tests: Debian's binaries, a cluster in a temp dir, loopback only.

``initdb`` and the server refuse to run as root, so both run as the ``postgres`` user on a
directory made for it; the superuser has a password (scram-sha-256 on TCP), so a wrong password
is a real refusal. Each test gets its own database, copied from a template migrated once.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def _pg_bin() -> Path:
    """Debian installs each major version side by side; the newest one is used."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else Path("/usr/lib/postgresql/missing/bin")


PG_BIN = _pg_bin()
USER = "postgres"


def loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*argv: str) -> list[str]:
    return ["runuser", "-u", USER, "--", *argv]


@dataclass
class PostgresServer:
    root: Path
    port: int
    password: str
    host: str = "127.0.0.1"
    prefix: tuple[str, ...] = ()  # e.g. ("ip", "netns", "exec", "db"): where it runs
    _serial: int = field(default=0)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str = "postgres", password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql://{USER}:{secret}@{self.host}:{self.port}/{dbname}"

    def start(self) -> None:
        subprocess.run(
            [
                *self.prefix,
                *_as_postgres(
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.root / "log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        subprocess.run(
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        out = subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                USER,
                "-d",
                dbname,
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PGPASSWORD": self.password},
        )
        return out.stdout.strip()

    def new_database(self, template: str | None = None) -> str:
        """A fresh, empty database (or a copy of ``template``); returns its URL."""
        self._serial += 1
        name = f"t{os.getpid()}_{self._serial}"
        copy = f" TEMPLATE {template}" if template else ""
        self.psql(f"CREATE DATABASE {name}{copy}")
        return self.url(name)


class PostgresMissing(RuntimeError):
    """Debian's postgresql package is not installed."""


# A test database is thrown away: durability across a power cut is not the point.
FAST = "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
# What the benchmark compares with SQLite's WAL + synchronous=NORMAL: a commit survives the
# process dying, not necessarily a power cut (the WAL is flushed in the background).
LIKE_SQLITE_NORMAL = "synchronous_commit = off\n"


def start_postgres(
    settings: str = FAST, host: str = "127.0.0.1", prefix: tuple[str, ...] = ()
) -> PostgresServer:
    """A new cluster listening on ``host`` only (run inside ``prefix``, e.g. a netns)."""
    if not (PG_BIN / "initdb").exists():
        raise PostgresMissing(
            "PostgreSQL is not installed (make test installs Debian's postgresql)"
        )
    root = Path(tempfile.mkdtemp(prefix="burnstand-pg-"))
    owner = pwd.getpwnam(USER)
    os.chown(root, owner.pw_uid, owner.pw_gid)
    password = secrets.token_hex(16)
    pwfile = root / "pw"
    pwfile.write_text(password)
    os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    subprocess.run(
        _as_postgres(
            str(PG_BIN / "initdb"),
            "-D",
            str(root / "data"),
            "-U",
            USER,
            "--pwfile",
            str(pwfile),
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    pwfile.unlink()
    server = PostgresServer(root, loopback_port(), password, host, prefix)
    if host != "127.0.0.1":  # initdb only lets loopback in
        with (server.data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {host.rsplit('.', 1)[0]}.0/24 scram-sha-256\n")
    with (server.data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"listen_addresses = '{host}'\nport = {server.port}\n"
            f"unix_socket_directories = '{root}'\nmax_connections = 300\n{settings}"
        )
    server.start()
    return server


def remove_postgres(server: PostgresServer) -> None:
    with contextlib.suppress(subprocess.CalledProcessError):  # already stopped by the test
        server.stop()
    shutil.rmtree(server.root, ignore_errors=True)


def wait_until(predicate: object, seconds: float = 30.0) -> None:
    """Poll ``predicate()`` until true, bounded in time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)  # poll interval between bounded checks
    raise AssertionError("condition not met in time")
