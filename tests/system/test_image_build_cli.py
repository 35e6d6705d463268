"""The image-build scripts refuse bad input with one clear line and leave the target untouched.

The full build and boot is `make image-test` (tests/system/image_check.py); these checks are the
quick ones a user hits first: a wrong path, an unknown option, a checkout that is not burnstand,
an output that already exists, an architecture the host cannot build.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from appliance.config import parse_config

REPO = Path(__file__).resolve().parents[2]
CUSTOMIZE = REPO / "image-build/customize.sh"
BUILD_ROOTFS = REPO / "image-build/build-rootfs.sh"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the scripts only run as root")


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def test_customize_refuses_a_missing_root(tmp_path: Path) -> None:
    done = _run(CUSTOMIZE, tmp_path / "nowhere")
    assert done.returncode == 1
    assert "is not a directory" in done.stderr


def test_customize_refuses_a_directory_that_is_not_a_root_filesystem(tmp_path: Path) -> None:
    done = _run(CUSTOMIZE, tmp_path)
    assert done.returncode == 1
    assert "not a root filesystem" in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing copied into it


def test_customize_refuses_an_unknown_option(tmp_path: Path) -> None:
    done = _run(CUSTOMIZE, tmp_path, "--frobnicate")
    assert done.returncode == 1
    assert "unknown option: --frobnicate" in done.stderr


def test_customize_refuses_a_source_that_is_not_burnstand(tmp_path: Path) -> None:
    (tmp_path / "root/bin").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    done = _run(CUSTOMIZE, tmp_path / "root", "--source", tmp_path / "other")
    assert done.returncode == 1
    assert "is not a burnstand checkout" in done.stderr


def test_customize_without_arguments_prints_usage() -> None:
    done = _run(CUSTOMIZE)
    assert done.returncode == 2
    assert "customize.sh ROOT" in done.stderr


def test_build_rootfs_refuses_an_existing_output(tmp_path: Path) -> None:
    done = _run(BUILD_ROOTFS, tmp_path)
    assert done.returncode == 1
    assert "already exists" in done.stderr


def test_build_rootfs_refuses_an_unknown_architecture(tmp_path: Path) -> None:
    done = _run(BUILD_ROOTFS, tmp_path / "out", "--arch", "sparc")
    assert done.returncode == 1
    assert "unsupported --arch sparc" in done.stderr
    assert not (tmp_path / "out").exists()


TEMPLATE = REPO / "image-build/agent.toml.in"


def test_image_agent_config_is_accepted_by_the_agent() -> None:
    text = TEMPLATE.read_text().replace("@COORDINATOR_URL@", "https://coordinator.example.org")
    config = parse_config(text)
    # Not enrolled yet: offline, on the socket the units and the kiosk service agree on.
    assert config.coordinator_url is None
    assert str(config.socket) == "/run/burnstand/agent.sock"
    assert str(config.state_dir) == "/var/lib/burnstand"
    assert config.discover is True


def test_image_agent_config_after_enrollment_links_to_the_coordinator(tmp_path: Path) -> None:
    credential = tmp_path / "credential"
    credential.write_text("appliance-credential\n")
    text = TEMPLATE.read_text().replace("@COORDINATOR_URL@", "https://coordinator.example.org")
    # What burnstand-enrollment-code does once a credential arrives, plus wired LEDs.
    text = text.replace("#url = ", "url = ").replace("#credential_file = ", "credential_file = ")
    text = text.replace("/var/lib/burnstand/credential", str(credential))
    text = "\n".join(
        line[1:] if line.startswith(("#[leds]", "#link", "#drives", "#eject")) else line
        for line in text.splitlines()
    )
    config = parse_config(text)
    assert config.link_url == "wss://coordinator.example.org/link"
    assert config.credential == "appliance-credential"
    assert config.leds.link == 5
    assert config.leds.drives["/dev/sr0"] == (17, 27)
    assert config.leds.eject_buttons["/dev/sr1"] == 25
