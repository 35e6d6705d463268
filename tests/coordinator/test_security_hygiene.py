"""Issue 23 cases 5, 7 and 10: file modes under a 022 umask, response headers, the TLS warning."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rv_helpers import Client, MakeClient, World, call

from coordinator.cli import plain_http_warning


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.sqlite_only
async def test_data_dir_and_databases_are_private_under_umask_022(
    umask_022: None, make_client: MakeClient, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)  # made wide by someone else: narrowed on start
    os.chmod(data, 0o755)  # noqa: S103  # the wide mode the coordinator must narrow
    client = await make_client(data_dir=data)
    await call(client, "GET", "/health", expect=200)
    assert _mode(data) == 0o700
    files = [data / n for n in ("coordinator.db", "coordinator.db-wal", "master.db")]
    for path in files:
        assert path.exists(), path
        assert _mode(path) == 0o600, path


def test_cli_admin_create_makes_a_private_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    subprocess.run(  # a process of its own, started with the README's usual 022 umask
        [
            sys.executable,
            "-c",
            "import os, sys; os.umask(0o022); from coordinator.cli import main; "
            "sys.exit(main(sys.argv[1:]))",
            "admin",
            "create",
            "--data",
            str(data),
            "--name",
            "A",
            "--email",
            "a@example.org",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert _mode(data) == 0o700
    assert _mode(data / "coordinator.db") == 0o600


async def test_headers_no_store_nosniff_and_no_versions(client: Client, world: World) -> None:
    resp = await client.post(
        "/api/v1/join",
        json={"user": "cleo@example.org", "show": world.show, "duration": 60, "secret": "x"},
    )
    assert resp.status == 401
    for r in (resp, await client.get("/api/v1/health"), await client.get("/")):
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Server"] == "burnstand"
        assert "Strict-Transport-Security" not in r.headers
    assert resp.headers["Cache-Control"] == "no-store"
    secret = await client.post(
        f"/api/v1/shows/{world.show}/admins",
        json={"name": "N", "email": "n@example.org"},
        headers={"Authorization": f"Bearer {world.admin}"},
    )
    assert secret.status == 201
    assert secret.headers["Cache-Control"] == "no-store"


async def test_hsts_only_behind_tls(make_client: MakeClient) -> None:
    client = await make_client(behind_tls=True)
    resp = await client.get("/api/v1/health")
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.parametrize(
    ("host", "behind_tls", "warns"),
    [
        ("0.0.0.0", False, True),
        ("192.0.2.10", False, True),
        ("burn.example.org", False, True),
        ("0.0.0.0", True, False),
        ("127.0.0.1", False, False),
        ("::1", False, False),
        ("localhost", False, False),
    ],
)
def test_plain_http_beyond_loopback_is_warned_about(
    host: str, behind_tls: bool, warns: bool
) -> None:
    warning = plain_http_warning(host, behind_tls)
    assert (warning is not None) == warns
    if warning:
        assert "unencrypted" in warning
        assert "--behind-tls" in warning
