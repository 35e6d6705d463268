"""Schemathesis, all checks, against the real coordinator and its served OpenAPI document.

The coordinator runs on a loopback port (the module's `live` server, with a world of shows,
people and a kiosk in it); the schemathesis command line then reads /api/v1/openapi.json and
runs every phase (examples, coverage, fuzzing, stateful) with every check, once each with the
credential of an admin, a contributor and a kiosk, so operations are reached past their role
checks too. A fixed seed and a bounded number of examples keep it reproducible and short enough
for CI; any finding (a 5xx, an undocumented status, a schema-valid request refused, a 405
without `Allow`) fails the test with schemathesis' own report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_rendezvous_openapi import LiveServer, live  # noqa: F401 - `live` is a fixture

from coordinator.rendezvous.endpoint import PREFIX

SEED = 21
EXAMPLES = 5
# Uploads are the one place where a schema-valid request is refused by design: any bytes fit
# the declared body, but only the take's own image (its size, SHA-256 and MD5) is kept, and the
# rest is a 422 naming the mismatch (docs/api.md). Everything else keeps the default.
CONFIG = """
[[operations]]
include-method = "PUT"
include-tag = "images"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "3xx", 401, 403, 404, 409, 422, 429,
]
"""


@pytest.mark.parametrize("role", ["admin", "contributor", "appliance"])
def test_schemathesis_finds_nothing(
    live: tuple[LiveServer, dict[str, Any]],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    role: str,
) -> None:
    server, world = live
    token = world["tokens"][role]
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "run",
            f"http://127.0.0.1:{server.port}{PREFIX}/openapi.json",
            "--checks",
            "all",
            "--seed",
            str(SEED),
            "--max-examples",
            str(EXAMPLES),
            "--generation-database",
            "none",
            "--header",
            f"Authorization: Bearer {token}",
            "--no-color",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "unique failures" not in run.stdout
