"""The image-build scripts refuse bad input with one clear line and leave the target untouched.

That includes the enrollment settings a build needs (coordinator URL, show id, kiosk name, from
BURNSTAND_* variables or options): a card flashed with a wrong one would wait for an acceptance
nobody can give. The agent.toml the image writes is parsed with the agent's own loader.

The full build and boot is `make rootfs-test` (tests/system/image_check.py); these checks are the
quick ones a user hits first: a wrong path, an unknown option, a checkout that is not burnstand,
an output that already exists, an architecture the host cannot build.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from appliance.config import ConfigError, parse_config

REPO = Path(__file__).resolve().parents[2]
CUSTOMIZE = REPO / "image-build/customize.sh"
BUILD_ROOTFS = REPO / "image-build/build-rootfs.sh"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the scripts only run as root")


# What a build is given (docs/install.md); each test changes one thing.
GOOD_ENV = {
    "BURNSTAND_COORDINATOR_URL": "https://burn.example.org",
    "BURNSTAND_SHOW_ID": "3",
    "BURNSTAND_KIOSK_NAME": "Booth 1",
}


def _run(*args: str | Path, **env: str | None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BURNSTAND_")} | GOOD_ENV
    for key, value in env.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    return subprocess.run(
        ["bash", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environ,
    )


def _root(tmp_path: Path) -> Path:
    """Looks like a root filesystem, so only the enrollment settings can stop the script."""
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    sh = root / "bin/sh"
    sh.write_text("")
    sh.chmod(0o755)
    return root


def _untouched(root: Path) -> bool:
    return sorted(p.name for p in root.iterdir()) == ["bin"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BURNSTAND_COORDINATOR_URL": None}, "no coordinator URL: set BURNSTAND_COORDINATOR_URL"),
        ({"BURNSTAND_COORDINATOR_URL": ""}, "no coordinator URL: set BURNSTAND_COORDINATOR_URL"),
        (
            {"BURNSTAND_COORDINATOR_URL": "burn.example.org"},
            "coordinator URL (BURNSTAND_COORDINATOR_URL) 'burn.example.org' is not an http(s)://",
        ),
        (
            {"BURNSTAND_COORDINATOR_URL": "ftp://burn.example.org"},
            "'ftp://burn.example.org' is not an http(s):// URL",
        ),
        (
            {"BURNSTAND_COORDINATOR_URL": 'https://x.org/"|rm'},
            "is not an http(s):// URL",
        ),
        ({"BURNSTAND_SHOW_ID": None}, "no show id: set BURNSTAND_SHOW_ID"),
        ({"BURNSTAND_SHOW_ID": "launch"}, "show id (BURNSTAND_SHOW_ID) 'launch' is not a show"),
        ({"BURNSTAND_SHOW_ID": "0"}, "'0' is not a show id (a positive whole number"),
        ({"BURNSTAND_SHOW_ID": "-2"}, "'-2' is not a show id"),
        ({"BURNSTAND_KIOSK_NAME": 'Booth "1"'}, "kiosk name (BURNSTAND_KIOSK_NAME)"),
        ({"BURNSTAND_KIOSK_NAME": " leading space"}, "must be 1-64 letters, digits, spaces"),
    ],
    ids=[
        "url missing",
        "url empty",
        "url without scheme",
        "url not http",
        "url with quote and pipe",
        "show missing",
        "show not a number",
        "show zero",
        "show negative",
        "name with quotes",
        "name starting with a space",
    ],
)
def test_customize_refuses_missing_or_malformed_enrollment_settings(
    tmp_path: Path, env: dict[str, str | None], message: str
) -> None:
    root = _root(tmp_path)
    done = _run(CUSTOMIZE, root, **env)
    assert done.returncode == 1
    assert done.stderr.startswith("customize.sh: error: "), done.stderr
    assert message in done.stderr
    assert _untouched(root)  # checked before anything is copied in


def test_customize_options_override_the_environment(tmp_path: Path) -> None:
    root = _root(tmp_path)
    done = _run(CUSTOMIZE, root, "--show", "x7", BURNSTAND_SHOW_ID="3")
    assert done.returncode == 1
    assert "'x7' is not a show id" in done.stderr
    assert _untouched(root)


def test_with_coordinator_needs_no_url_but_still_a_show(tmp_path: Path) -> None:
    root = _root(tmp_path)
    done = _run(
        CUSTOMIZE,
        root,
        "--with-coordinator",
        BURNSTAND_COORDINATOR_URL=None,
        BURNSTAND_SHOW_ID=None,
    )
    assert done.returncode == 1
    assert "no coordinator URL" not in done.stderr
    assert "no show id" in done.stderr


def test_pi_gen_stage_refuses_a_config_without_the_show(tmp_path: Path) -> None:
    done = _run(
        REPO / "image-build/stage-burnstand/00-burnstand/00-run.sh",
        BURNSTAND_SHOW_ID=None,
        ROOTFS_DIR=str(tmp_path / "rootfs"),
    )
    assert done.returncode == 1
    assert "BURNSTAND_SHOW_ID is not set" in done.stderr
    assert "pi-gen config" in done.stderr
    assert not (tmp_path / "rootfs").exists()


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


def _filled(state_dir: Path | None = None) -> str:
    """agent.toml as customize.sh writes it from GOOD_ENV (optionally with another state dir)."""
    text = TEMPLATE.read_text()
    for name, var in (
        ("COORDINATOR_URL", "BURNSTAND_COORDINATOR_URL"),
        ("SHOW_ID", "BURNSTAND_SHOW_ID"),
        ("KIOSK_NAME", "BURNSTAND_KIOSK_NAME"),
    ):
        text = text.replace(f"@{name}@", GOOD_ENV[var])
    if state_dir is not None:
        text = text.replace("/var/lib/burnstand", str(state_dir))
    return text


def test_every_template_placeholder_is_one_customize_fills() -> None:
    placeholders = set(re.findall(r"@([A-Z_]+)@", TEMPLATE.read_text()))
    filled = set(re.findall(r'-e "s\|@([A-Z_]+)@\|', CUSTOMIZE.read_text()))
    assert placeholders == {"COORDINATOR_URL", "SHOW_ID", "KIOSK_NAME"}
    assert placeholders == filled


def test_image_agent_config_enrolls_with_the_first_boot_code(tmp_path: Path) -> None:
    (tmp_path / "enrollment-code").write_text("TY4RHL2Z\n")  # as burnstand-firstboot writes it
    config = parse_config(_filled(tmp_path))
    assert config.coordinator_url == "https://burn.example.org"
    assert config.show == 3
    assert config.name == "Booth 1"
    assert config.enrollment_code == "TY4RHL2Z"
    assert config.credential is None
    # On the socket the units and the kiosk service agree on.
    assert str(config.socket) == "/run/burnstand/agent.sock"
    assert config.discover is True


def test_image_agent_config_ships_no_code_of_its_own(tmp_path: Path) -> None:
    text = _filled(tmp_path)
    assert re.search(r"^enrollment_code\s*=", text, re.MULTILINE) is None
    # Before first boot made the file the agent cannot start: it says what is missing.
    with pytest.raises(ConfigError, match="enrollment_code_file and show, to enroll"):
        parse_config(text)


def test_image_agent_config_after_enrollment_links_with_the_saved_credential(
    tmp_path: Path,
) -> None:
    (tmp_path / "enrollment-code").write_text("TY4RHL2Z\n")
    (tmp_path / "credential").write_text("appliance-credential\n")  # the agent saved it
    text = "\n".join(  # wired LEDs: the commented-out table switched on
        line[1:] if line.startswith(("#[leds]", "#link", "#drives", "#eject")) else line
        for line in _filled(tmp_path).splitlines()
    )
    config = parse_config(text)
    assert config.link_url == "wss://burn.example.org/link"
    assert config.credential == "appliance-credential"
    assert config.leds.link == 5
    assert config.leds.drives["/dev/sr0"] == (17, 27)
    assert config.leds.eject_buttons["/dev/sr1"] == 25
