"""The command line: --help everywhere, `admin create` output and errors, `serve` failures, and
the operator guide's curl walkthrough run as written against a real `serve`."""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from coordinator.cli import main

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CLI = shutil.which("burnstand-coordinator", path=str(VENV_BIN)) or "burnstand-coordinator"
READY_TIMEOUT = 30.0


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "argv", [[], ["serve"], ["admin"], ["admin", "create"], ["image"], ["image", "add"]]
)
def test_help_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: burnstand-coordinator")
    if argv and argv[-1] == "create":
        assert "--email" in out
    if argv == ["serve"]:
        assert "--port" in out
        assert "--config" in out
        assert "--log-format" in out
    if argv == ["image", "add"]:
        assert "--credential-file" in out
    if argv == []:
        assert "later" not in out  # the live plane is here, not "later"


def test_admin_create_prints_only_a_credential(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            ["admin", "create", "--data", str(tmp_path), "--name", "A", "--email", "a@example.org"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,}\n", out)
    assert (
        main(
            ["admin", "create", "--data", str(tmp_path), "--name", "B", "--email", "A@example.org"]
        )
        == 1
    )
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "already exists" in captured.err


@pytest.mark.parametrize(
    ("name", "email", "message"),
    [
        ("", "a@example.org", "--name"),
        ("A", "not-an-email", "--email"),
    ],
)
def test_admin_create_rejects_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, email: str, message: str
) -> None:
    assert main(["admin", "create", "--data", str(tmp_path), "--name", name, "--email", email]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err
    assert not (tmp_path / "coordinator.db").exists()


def test_admin_create_refuses_a_newer_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "coordinator.db") as db:
        db.execute("PRAGMA user_version = 999")
    assert (
        main(
            ["admin", "create", "--data", str(tmp_path), "--name", "A", "--email", "a@example.org"]
        )
        == 1
    )
    assert "newer than this coordinator" in capsys.readouterr().err


class Server:
    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.reader: threading.Thread | None = None

    def wait_ready(self) -> str:
        """Wait for the 'listening on' line (printed after bind), bounded in time."""
        stderr = self.proc.stderr
        assert stderr is not None
        lines: queue.Queue[str] = queue.Queue()
        # A reader thread, because select() cannot see lines already in the pipe's buffer.
        self.reader = threading.Thread(target=lambda: [lines.put(ln) for ln in stderr], daemon=True)
        self.reader.start()
        seen = []
        deadline = time.monotonic() + READY_TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            seen.append(line)
            if "listening on" in line:
                return line
        self.stop()
        raise AssertionError(f"server did not start: {''.join(seen)}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=READY_TIMEOUT)
        finally:
            if self.reader is not None:
                self.reader.join(READY_TIMEOUT)  # ends at EOF, once the process has exited
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


def test_serve_on_a_busy_port_fails_clearly(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [CLI, "serve", "--data", str(tmp_path), "--port", str(port)],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=READY_TIMEOUT,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr.splitlines()[-1]


def _walkthrough_blocks() -> tuple[str, str]:
    text = (ROOT / "docs" / "operator.md").read_text(encoding="utf-8")
    section = text.split("## Walkthrough", 1)[1]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 2, "the walkthrough must have a serve block and a curl block"
    return blocks[0].strip(), blocks[1]


def test_operator_walkthrough_runs_as_written(tmp_path: Path) -> None:
    serve_cmd, script = _walkthrough_blocks()
    port = _free_port()
    # The only change to what the page says: a free port instead of 8080.
    serve_argv = [a if a != "8080" else str(port) for a in shlex.split(serve_cmd)]
    script = script.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    server = Server(serve_argv, tmp_path)
    try:
        assert f"127.0.0.1:{port}" in server.wait_ready()
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    finally:
        assert server.stop() == 0
    objects = [json.loads(chunk) for chunk in re.findall(r"\{.*?\}", result.stdout, flags=re.S)]
    joined, listed = objects[-2], objects[-1]
    assert joined["state"] == "live"
    assert joined["members"] == 2
    assert listed["name"] == "LinuxFest booth"
    assert (listed["state"], listed["members"], listed["member"], listed["master"]) == (
        "live",
        2,
        True,
        "local",
    )
    assert (tmp_path / "burnstand-data" / "coordinator.db").exists()


def test_readme_operator_section_is_the_tested_walkthrough() -> None:
    serve_cmd, script = _walkthrough_blocks()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Operator quick start", 1)[1]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert [b.strip() for b in blocks[:2]] == [serve_cmd, script.strip()]


def test_admin_and_appliance_list_and_revoke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data", str(tmp_path)]
    assert main(["admin", "create", *data, "--name", "Ada", "--email", "ada@example.org"]) == 0
    assert main(["admin", "create", *data, "--name", "Bea", "--email", "bea@example.org"]) == 0
    assert (
        main(["appliance", "create", *data, "--show", "Fest", "--name", "k1", "--create-show"]) == 0
    )
    capsys.readouterr()
    assert main(["admin", "list", *data]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "1\tAda\tada@example.org",
        "2\tBea\tbea@example.org",
    ]
    assert main(["appliance", "list", *data]) == 0
    assert capsys.readouterr().out == "1\t1\tk1\n"
    assert main(["appliance", "revoke", *data, "1"]) == 0
    assert "revoked" in capsys.readouterr().err
    assert main(["appliance", "list", *data]) == 0
    assert capsys.readouterr().out == ""
    assert main(["admin", "revoke", *data, "1"]) == 0
    # Bad input: one line on stderr, a non-zero exit, nothing changed.
    capsys.readouterr()
    assert main(["admin", "revoke", *data, "2"]) == 1
    err = capsys.readouterr().err
    assert "last admin" in err
    assert err.count("\n") == 1
    assert main(["appliance", "revoke", *data, "9"]) == 1
    assert "appliance 9 not found" in capsys.readouterr().err
    assert main(["admin", "list", "--data", str(tmp_path / "nowhere")]) == 1
    assert "no coordinator.db" in capsys.readouterr().err
    assert main(["admin", "list", *data]) == 0
    assert capsys.readouterr().out == "2\tBea\tbea@example.org\n"


def test_weak_or_misplaced_shared_tokens_are_refused_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 23 cases 6 and 8: a guessable --burn-token, two sources, an empty file. Checked
    where `serve` checks them, before anything listens."""
    from coordinator.cli import CliError, _live_config, _parser

    def start(*extra: str) -> dict[str, Any]:
        args = _parser().parse_args(
            ["serve", "--data", str(tmp_path), "--burn-port", "7", "--burn-session", "s", *extra]
        )
        return _live_config(args)

    weak = tmp_path / "weak"
    weak.write_text("fleet-2026-Booth-token\n")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    strong = tmp_path / "strong"
    strong.write_text("9f" * 32 + "\n")
    cases = [
        (["--burn-token-file", str(weak)], "too weak"),
        (["--burn-token", "9f" * 32, "--burn-token-file", str(strong)], "not both"),
        (["--burn-token-file", str(empty)], "is empty"),
        (["--burn-token-file", str(tmp_path / "missing")], "No such file"),
        (["--burn-token", "e2e-fleet-token"], "too weak"),
    ]
    for extra, message in cases:
        with pytest.raises(CliError, match=message):
            start(*extra)
    assert start("--burn-token-file", str(strong))["burn_token"] == "9f" * 32
    # The systemd credential is read when no flag names a token (and refused when weak too).
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    (tmp_path / "burn-token").write_text("short\n")
    with pytest.raises(CliError, match="--burn-token is too weak"):
        start()
    (tmp_path / "burn-token").write_text("ab" * 32)
    (tmp_path / "relay-token").write_text("cd" * 32)
    (tmp_path / "peer-key").write_text("e7" * 32)
    got = start()
    assert (got["burn_token"], got["relay_token"]) == ("ab" * 32, "cd" * 32)
    # The peer key every node signs kiosks' peer tokens with: shared the same way, as strong.
    assert got["peer_key"] == "e7" * 32
    with pytest.raises(CliError, match="--peer-key is too weak"):
        start("--peer-key-file", str(weak))


def test_secret_files_named_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 24: a container is told where its secrets are by environment variables
    (BURNSTAND_BURN_TOKEN_FILE, BURNSTAND_RELAY_TOKEN_FILE); a flag or config key wins, and
    the variable wins over systemd's credential directory."""
    from coordinator.cli import CliError, _live_config, _parser

    def start(*extra: str) -> dict[str, Any]:
        args = _parser().parse_args(
            ["serve", "--data", str(tmp_path), "--burn-port", "7", "--burn-session", "s", *extra]
        )
        return _live_config(args)

    burn, relay, other = tmp_path / "burn", tmp_path / "relay", tmp_path / "other"
    burn.write_text("ab" * 32 + "\n")
    relay.write_text("cd" * 32)
    other.write_text("ef" * 32)
    monkeypatch.setenv("BURNSTAND_BURN_TOKEN_FILE", str(burn))
    monkeypatch.setenv("BURNSTAND_RELAY_TOKEN_FILE", str(relay))
    got = start()
    assert (got["burn_token"], got["relay_token"]) == ("ab" * 32, "cd" * 32)
    assert start("--burn-token-file", str(other))["burn_token"] == "ef" * 32
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "burn-token").write_text("12" * 32)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert start()["burn_token"] == "ab" * 32

    empty = tmp_path / "empty"
    empty.write_text("")
    cases = [
        (str(tmp_path / "missing"), f"BURNSTAND_BURN_TOKEN_FILE {tmp_path / 'missing'}: "),
        (str(empty), f"BURNSTAND_BURN_TOKEN_FILE {empty} is empty"),
        ("", "BURNSTAND_BURN_TOKEN_FILE is set but empty"),
    ]
    for value, message in cases:
        monkeypatch.setenv("BURNSTAND_BURN_TOKEN_FILE", value)
        with pytest.raises(CliError) as refused:
            start()
        assert message in str(refused.value)


def test_token_entropy_estimate() -> None:
    from coordinator.cli import token_bits

    assert token_bits("0123456789abcdef" * 2) == 128  # openssl rand -hex 16
    assert token_bits("fleet-2026-Booth-token") < 128
    assert token_bits("e2e-fleet-token-4f9c2a7be1d03865a0c4") >= 128
    assert token_bits("") == 0


def test_a_failed_walkthrough_step_shows_its_problem_and_stops(tmp_path: Path) -> None:
    """The walkthrough's curl steps print the coordinator's problem and stop the script, instead
    of handing an empty id to the next call (which went to /takes//image)."""
    serve_cmd, script = _walkthrough_blocks()
    port = _free_port()
    serve_argv = [a if a != "8080" else str(port) for a in shlex.split(serve_cmd)]
    script = script.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    # The admin credential is mistyped: the first curl step fails.
    script = re.sub(r"^ADMIN=\$\(.*\)$", "ADMIN=not-a-credential", script, count=1, flags=re.M)
    server = Server(serve_argv, tmp_path)
    try:
        server.wait_ready()
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        assert server.stop() == 0
    assert result.returncode != 0
    assert "unknown credential" in result.stderr
    assert result.stdout == ""  # nothing ran after the failed step
