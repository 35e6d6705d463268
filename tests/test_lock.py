"""The lock files in requirements/ keep up with pyproject.toml.

Every install (make demo, make test, the kiosk image, the coordinator's venv) comes from these
files, so a dependency added to pyproject.toml and not locked would be missing on every fresh
install, and a pin outside pyproject's range would install something the package says it cannot
run on. Both are checked here offline, for each interpreter and machine we ship to.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_LOCK = ROOT / "requirements" / "runtime.txt"
DEV_LOCK = ROOT / "requirements" / "dev.txt"
BUILD_IN = ROOT / "requirements" / "build.in"

# Debian 12 and 13's Pythons, on a PC (CI, the coordinator) and on a Raspberry Pi (the kiosk).
TARGETS = [
    (python, machine) for python in ("3.11.2", "3.13.5") for machine in ("x86_64", "aarch64")
]


@dataclass(frozen=True)
class Pin:
    requirement: Requirement
    hashes: tuple[str, ...]

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)

    @property
    def version(self) -> Version:
        (spec,) = self.requirement.specifier
        return Version(spec.version)


def read_lock(path: Path) -> list[Pin]:
    """The pins of a pip requirements file as `uv pip compile --generate-hashes` writes it."""
    logical: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if raw.startswith((" ", "\t")) and logical:
            logical[-1] += " " + line.strip()
        else:
            logical.append(line)
    pins = []
    for entry in logical:
        entry = entry.replace("\\", " ")
        parts = entry.split(" --hash=")
        requirement = Requirement(parts[0].strip())
        hashes = tuple(part.strip() for part in parts[1:])
        pins.append(Pin(requirement, hashes))
    return pins


def environment(python: str, machine: str) -> dict[str, str]:
    env = dict(default_environment())
    env.update(
        python_version=".".join(python.split(".")[:2]),
        python_full_version=python,
        implementation_name="cpython",
        platform_python_implementation="CPython",
        platform_machine=machine,
        sys_platform="linux",
        platform_system="Linux",
        os_name="posix",
    )
    return env


def pins_for(pins: list[Pin], env: dict[str, str]) -> dict[str, Pin]:
    chosen: dict[str, Pin] = {}
    for pin in pins:
        marker = pin.requirement.marker
        if marker is not None and not marker.evaluate(env):
            continue
        where = env["python_full_version"]
        assert pin.name not in chosen, f"{pin.name} is pinned twice for Python {where}"
        chosen[pin.name] = pin
    return chosen


def project() -> dict[str, list[Requirement]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = data["project"]["optional-dependencies"]
    build = [
        Requirement(line)
        for line in (raw.split("#", 1)[0].strip() for raw in BUILD_IN.read_text().splitlines())
        if line
    ]
    runtime = [Requirement(r) for r in data["project"]["dependencies"]]
    return {
        "runtime": runtime + build,
        "dev": runtime + build + [Requirement(r) for extra in extras.values() for r in extra],
    }


def unmet(wanted: list[Requirement], pins: list[Pin], python: str, machine: str) -> list[str]:
    env = environment(python, machine)
    chosen = pins_for(pins, env)
    problems = []
    for requirement in wanted:
        if requirement.marker is not None and not requirement.marker.evaluate(env):
            continue
        pin = chosen.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{requirement} is locked at {pin.version}, outside its range")
    return problems


@pytest.mark.parametrize(("python", "machine"), TARGETS)
@pytest.mark.parametrize(("lock", "kind"), [(RUNTIME_LOCK, "runtime"), (DEV_LOCK, "dev")])
def test_every_dependency_of_pyproject_is_locked_in_range(
    lock: Path, kind: str, python: str, machine: str
) -> None:
    problems = unmet(project()[kind], read_lock(lock), python, machine)
    assert not problems, (
        f"{lock.relative_to(ROOT)} is out of date with pyproject.toml ({', '.join(problems)}); "
        "run `make lock`"
    )


def test_a_dependency_added_to_pyproject_only_is_caught() -> None:
    """The check above would see a new dependency that nobody locked."""
    wanted = [*project()["runtime"], Requirement("left-pad>=1.0")]
    assert unmet(wanted, read_lock(RUNTIME_LOCK), "3.11.2", "x86_64") == [
        "left-pad>=1.0 is not in the lock"
    ]


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK])
def test_every_pin_is_exact_and_hashed(lock: Path) -> None:
    pins = read_lock(lock)
    assert pins
    for pin in pins:
        (spec,) = pin.requirement.specifier
        assert spec.operator == "==", f"{pin.requirement} is not an exact pin"
        assert pin.hashes, f"{pin.requirement} has no hash"
        assert all(h.startswith("sha256:") for h in pin.hashes)


@pytest.mark.parametrize(("python", "machine"), TARGETS)
def test_the_kiosk_runs_the_versions_the_tests_ran(python: str, machine: str) -> None:
    env = environment(python, machine)
    dev = pins_for(read_lock(DEV_LOCK), env)
    for name, pin in pins_for(read_lock(RUNTIME_LOCK), env).items():
        assert name in dev, f"{name} is in the runtime lock only"
        assert dev[name].version == pin.version, (
            f"{name}: runtime lock {pin.version}, dev lock {dev[name].version}"
        )
        assert set(pin.hashes) <= set(dev[name].hashes)


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK])
def test_locks_are_made_by_make_lock(lock: Path) -> None:
    """A hand-edited or differently made lock would drift from what `make deps-upgrade` makes."""
    head = lock.read_text().splitlines()[:2]
    assert head == [
        "# This file was autogenerated by uv via the following command:",
        "#    make lock",
    ]
