"""One event a line, as every daemon logs it: key=value text or JSON, with the `extra=` fields
and nothing of the record's own plumbing; and a real `burnstand-coordinator serve` started with
`--log-format json --log-level debug` writes only JSON lines."""

from __future__ import annotations

import io
import json
import logging
import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from plumbing import logs

VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def _emit(fmt: str, level: str = "info") -> list[str]:
    out = io.StringIO()
    logs.setup(level, fmt, out)
    log = logging.getLogger("burnstand.test")
    log.debug("hidden at info")
    log.info("image stored", extra={"size": 3000000, "label": 'a "quoted" name', "ok": True})
    return out.getvalue().splitlines()


@pytest.mark.usefixtures("restore_root")
def test_text_is_one_line_of_key_value_fields() -> None:
    [line] = _emit("text")
    assert " INFO burnstand.test image stored " in line
    assert line.endswith('size=3000000 label="a \\"quoted\\" name" ok=True')
    assert "lineno=" not in line  # the record's own attributes are not fields


@pytest.mark.usefixtures("restore_root")
def test_json_is_one_object_a_line_and_debug_shows_debug() -> None:
    lines = _emit("json", "debug")
    assert len(lines) == 2
    event = json.loads(lines[1])
    assert {k: event[k] for k in ("level", "logger", "message", "size", "label", "ok")} == {
        "level": "info",
        "logger": "burnstand.test",
        "message": "image stored",
        "size": 3000000,
        "label": 'a "quoted" name',
        "ok": True,
    }
    assert event["ts"].endswith("Z")


def test_a_bad_level_or_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log level must be one of"):
        logs.setup("loud", "text")
    with pytest.raises(ValueError, match="log format must be one of"):
        logs.setup("info", "xml")


def test_coordinator_serve_logs_json_lines(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [
        str(VENV_BIN / "burnstand-coordinator"),
        "serve",
        "--data",
        str(tmp_path),
        "--port",
        str(port),
        "--drain-seconds",
        "0",
        "--log-format",
        "json",
        "--log-level",
        "debug",
    ]
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for _ in range(200):  # bounded: a handful of lines come before the listening line
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if "listening on" in line:
            break
    proc.terminate()
    _, rest = proc.communicate(timeout=30)
    assert proc.returncode == 0, shlex.join(argv) + "\n" + "".join(seen) + rest
    events = [json.loads(ln) for ln in [*seen, *rest.splitlines()] if ln.startswith("{")]
    messages = {e["message"] for e in events}
    assert "registered the embedded session master" in messages
    [registered] = [e for e in events if e["message"] == "registered the embedded session master"]
    assert registered["url"].startswith("http://")
    assert "draining" in messages
    # Every line is JSON except the one line the CLI prints for supervisors to wait on.
    others = [ln for ln in [*seen, *rest.splitlines()] if ln.strip() and not ln.startswith("{")]
    assert len(others) == 1
    assert "listening on" in others[0]
