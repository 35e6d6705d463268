"""What `burnstand-agent burn` loads: nothing but argument parsing and the engine before its first
event, and never the UI, network or udev code a block burn does not need (issue 16, item 6).
Checked on a real burn to a loop device, by the modules the process holds, not by a clock."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.appliance.conftest import ImageMaker, LoopFactory

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]

# Runs the CLI as `python -m appliance.cli` does, and notes which modules were loaded when the
# first byte reached stdout (the first --json event) and when the burn ended.
PROBE = """
import json, runpy, sys
seen = {}
class Tap:
    def __init__(self, inner):
        self.inner = inner
    def write(self, text):
        seen.setdefault("first_event", sorted(sys.modules))
        return self.inner.write(text)
    def flush(self):
        self.inner.flush()
real = sys.stdout
sys.stdout = Tap(real)
sys.argv = ["burnstand-agent", *sys.argv[1:]]
try:
    runpy.run_module("appliance.cli", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    seen["exit"] = exc.code
seen["end"] = sorted(sys.modules)
sys.stdout = real
print(json.dumps(seen), file=sys.stderr)
"""

# None of these belongs in a burn of a local file: the kiosk UI, the link and HTTP client/server
# (the URL download's urllib included), udev discovery and the systemd journal bindings.
NEVER = (
    "textual",
    "aiohttp",
    "pyudev",
    "systemd",
    "yarl",
    "multidict",
    "gi",
    "http.client",
    "urllib.request",
)
# Not before the first event: the event loop, the job engine and its SQLite journal, and
# importlib.metadata (the package version, which only --version needs); the drive backends and
# their dataclasses (`dataclasses` pulls in `inspect`), `typing`, the other commands' module
# with the `logging` it sets up, and `shutil` (argparse's way to the terminal width). The burn
# loads most of these later; none is needed to read the arguments, check the image file and
# say that the burn starts.
NOT_YET = (
    "asyncio",
    "sqlite3",
    "importlib.metadata",
    "appliance.burn",
    "appliance.journal",
    "appliance.drives",
    "appliance.fileburn",
    "appliance.cli.service",
    "dataclasses",
    "inspect",
    "typing",
    "logging",
    "shutil",
)


def _loaded(modules: list[str], roots: tuple[str, ...]) -> list[str]:
    return [m for m in modules if m in roots or m.startswith(tuple(f"{r}." for r in roots))]


def test_a_json_burn_loads_only_parsing_before_its_first_event_and_no_ui_network_or_udev(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker
) -> None:
    img = make_test_image(2 * MiB)
    target = loop_devices(4 * MiB)
    run = subprocess.run(
        [sys.executable, "-c", PROBE, "burn", "--no-eject", "--json", "--image", str(img),
         "--target", target.path, "--journal", str(tmp_path / "j.db")],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    report = json.loads(run.stderr.strip().splitlines()[-1])
    assert report["exit"] == 0, run.stderr
    evs = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    assert evs[0]["event"] == "start"
    [result] = [e for e in evs if e["event"] == "result"]
    assert result["ok"]
    assert result["verified"]
    # The burn really ran through the engine, so the check below covers the whole burn path.
    assert "appliance.drives.block" in report["end"]
    assert _loaded(report["end"], NEVER) == []
    assert _loaded(report["first_event"], NOT_YET) == []
    with open(target.path, "rb") as dev:
        assert dev.read(2 * MiB) == img.read_bytes()
