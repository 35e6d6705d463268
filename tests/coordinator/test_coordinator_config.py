"""`burnstand-coordinator serve --config coordinator.toml`: every flag is a key, checked like
the flag itself; every bad key is one line on stderr and nothing starts; the command line wins
over the file; and a real serve started from a file alone listens where the file says."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from coordinator import configfile
from coordinator.cli import _parser, main

VENV_BIN = Path(sys.executable).parent
CLI = shutil.which("burnstand-coordinator", path=str(VENV_BIN)) or "burnstand-coordinator"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "coordinator.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _args(argv: list[str]) -> object:
    parser = _parser()
    configfile.apply(parser, argv)
    return parser.parse_args(argv)


def test_every_bad_key_is_one_line_and_nothing_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        f'data = "{tmp_path / "data"}"\n'
        "prot = 8080\n"
        'port = "eighty"\n'
        'role = "boss"\n'
        'burn_public_display = "yes"\n'
        "drain_seconds = [1]\n",
    )
    assert main(["serve", "--config", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"burnstand-coordinator: error: {path}: unknown key 'prot' (did you mean 'port'?)",
        f"burnstand-coordinator: error: {path}: port: not a port number: 'eighty'",
        f"burnstand-coordinator: error: {path}: role: must be one of all, balancer, master, "
        "rendezvous, not 'boss'",
        f"burnstand-coordinator: error: {path}: burn_public_display: must be true or false "
        "(the flag --burn-public-display)",
        f"burnstand-coordinator: error: {path}: drain_seconds: must be a string or a number, "
        "not list",
    ]
    assert not (tmp_path / "data").exists()  # nothing started, nothing created


def test_unreadable_and_malformed_files_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--config", str(tmp_path / "missing.toml")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    path = _write(tmp_path, "port = \n")
    assert main(["serve", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "not valid TOML" in err


def test_keys_become_flags_and_the_command_line_wins(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        f'data = "{tmp_path}"\nport = 9001\nmax_credential_hours = 4\n'
        'burn_public_display = true\nburn_session = "abc"\nlog_format = "json"\n',
    )
    args = _args(["serve", "--config", str(path)])
    assert (args.data, args.port, args.max_credential_hours) == (tmp_path, 9001, 4.0)  # type: ignore[attr-defined]
    assert (args.burn_public_display, args.log_format) == (True, "json")  # type: ignore[attr-defined]
    args = _args(["serve", "--config", str(path), "--port", "9002"])
    assert args.port == 9002  # type: ignore[attr-defined]


def test_serve_from_a_config_file_alone(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = _write(
        tmp_path,
        f'data = "{tmp_path / "data"}"\nport = {port}\ndrain_seconds = 0\nlog_level = "warning"\n',
    )
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(
        [CLI, "serve", "--config", str(path)], env=env, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    try:
        line = ""
        for _ in range(50):  # bounded: the ready line comes first at warning level
            line = proc.stderr.readline()
            if not line or "listening on" in line:
                break
        assert f"listening on http://127.0.0.1:{port}" in line, line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=5) as r:
            assert json.loads(r.read())["status"] == "LISTENING"
        assert (tmp_path / "data" / "coordinator.db").exists()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert proc.returncode == 0
