"""`burnstand-coordinator appliance create`, run as a real subprocess: the credential it prints
works against the app on the same data folder, `--create-show` creates (and audits) the show, and an
unknown show or a duplicate name is one clear line on stderr with nothing created."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from rv_helpers import MakeClient, bearer, open_db

from coordinator.config import CoordinatorConfig

VENV_BIN = Path(sys.executable).parent
CLI = shutil.which("burnstand-coordinator", path=str(VENV_BIN)) or "burnstand-coordinator"
TIMEOUT = 60


def run(*argv: str, database: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("BURNSTAND_DATABASE", None)
    if database is not None:
        env["BURNSTAND_DATABASE"] = database
    return subprocess.run(
        [CLI, *argv], env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def create(data: Path, show: str, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run("appliance", "create", "--data", str(data), "--show", show, "--name", name, *extra)


def appliances(data: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(data / "coordinator.db") as db:
        return db.execute("SELECT name, show_id FROM appliances ORDER BY id").fetchall()


async def test_create_show_then_the_credential_authenticates(
    tmp_path: Path, make_client: MakeClient, config: CoordinatorConfig
) -> None:
    data = config.data_dir
    made = run(
        "appliance", "create", "--data", str(data), "--show", "LinuxFest 2026",
        "--name", "kiosk-1", "--create-show", database=config.database,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,}\n", made.stdout)
    assert "created show 'LinuxFest 2026'" in made.stderr
    with open_db(config) as db:
        actors = [tuple(r) for r in db.execute("SELECT actor, action FROM audit ORDER BY id")]
    assert actors == [("cli", "show.add"), ("cli", "appliance.create")]

    client = await make_client(data_dir=data)
    resp = await client.get("/api/v1/credentials/me", headers=bearer(made.stdout.strip()))
    assert resp.status == 200
    me = await resp.json()
    assert (me["role"], me["name"], me["expires_at"]) == ("appliance", "kiosk-1", None)
    shows = await (await client.get("/api/v1/shows", headers=bearer(made.stdout.strip()))).json()
    assert [s["name"] for s in shows["items"]] == ["LinuxFest 2026"]
    assert shows["items"][0]["id"] == me["show_id"]


def test_existing_show_by_id_or_name(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert create(data, "Launch", "first", "--create-show").returncode == 0
    (show_id,) = {s for _, s in appliances(data)}
    by_id = create(data, str(show_id), "by-id")
    by_name = create(data, "launch", "by-name", "--create-show")  # names match case-insensitively
    assert (by_id.returncode, by_name.returncode) == (0, 0), (by_id.stderr, by_name.stderr)
    assert by_name.stderr == ""
    assert len({by_id.stdout, by_name.stdout}) == 2
    assert appliances(data) == [("first", show_id), ("by-id", show_id), ("by-name", show_id)]


@pytest.mark.parametrize(
    ("show", "name", "message"),
    [
        ("No Such Show", "k", "no show with id or name 'No Such Show' (add --create-show"),
        ("42", "k", "no show with id or name '42'"),
        ("Launch", "first", "already exists"),
        ("Launch", "  ", "--name must be"),
        (" ", "k", "--show must not be empty"),
    ],
)
def test_refusals_are_one_line_and_create_nothing(
    tmp_path: Path, show: str, name: str, message: str
) -> None:
    data = tmp_path / "data"
    assert create(data, "Launch", "first", "--create-show").returncode == 0
    refused = create(data, show, name)
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.count("\n") == 1
    assert refused.stderr.startswith("burnstand-coordinator: error: ")
    assert message in refused.stderr
    assert appliances(data) == [("first", 1)]
    with sqlite3.connect(data / "coordinator.db") as db:
        assert db.execute("SELECT count(*) FROM shows").fetchone() == (1,)


def test_help_names_the_flags() -> None:
    shown = run("appliance", "create", "--help")
    assert shown.returncode == 0
    for flag in ("--data", "--show", "--name", "--create-show"):
        assert flag in shown.stdout
