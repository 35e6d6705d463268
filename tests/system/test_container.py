"""The coordinator's container image, built and run for real: `buildah bud` builds the repository's
Containerfile on a Debian base (imported from mmdebstrap, since no registry is reachable; cached
as localhost/debian:bookworm), `podman run` starts it with its data in a named volume and its
port on the host's loopback, its HEALTHCHECK passes, the first admin is created inside it, and
the operator walkthrough of docs/operator.md (the README's) runs against it as written.

Skipped, with the reason, only where podman cannot run; `make test` installs podman, buildah,
runc and mmdebstrap, so CI runs it. The runtime is runc with a containers.conf that sets no
ulimits (this kind of sandbox may not raise rlimits, and crun refuses its hybrid cgroups).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE = "localhost/debian:bookworm"
IMAGE = "localhost/burnstand-coordinator:test"
REDIS_IMAGE = "localhost/burnstand-redis:test"
BUILD_TIMEOUT = 1800
CA = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
READY_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def podman_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    missing = [t for t in ("podman", "buildah", "runc", "mmdebstrap") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (make test installs them)")
    conf = tmp_path_factory.mktemp("containers") / "containers.conf"
    # runc as the engine's runtime too, for the podman commands podman-compose runs.
    conf.write_text(
        '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n', encoding="utf-8"
    )
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    probe = subprocess.run(
        ["podman", "--runtime", "runc", "info"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"podman cannot run here: {probe.stderr.strip()[:300]}")
    return env


def _run(env: dict[str, str], *argv: str, timeout: float = 120) -> str:
    done = subprocess.run(
        list(argv), env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{argv}: {done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def image(podman_env: dict[str, str]) -> str:
    env = podman_env
    exists = subprocess.run(["podman", "image", "exists", BASE], env=env, check=False)
    if exists.returncode != 0:
        # The Debian base, once per machine: minbase bookworm straight into podman's store.
        strap = subprocess.Popen(
            ["mmdebstrap", "--variant=minbase", "bookworm", "-"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert strap.stdout is not None
        imported = subprocess.run(
            ["podman", "import", "-", BASE],
            stdin=strap.stdout,
            env=env,
            capture_output=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
        strap.stdout.close()
        assert strap.wait(timeout=BUILD_TIMEOUT) == 0
        assert imported.returncode == 0, imported.stderr
    # The machine's CA bundle as a build secret: PyPI is reached through this machine's proxy.
    ca = [f"--secret=id=pip-ca,src={CA}"] if Path(CA).is_file() else []
    _run(
        env,
        "buildah",
        "bud",
        "--isolation",
        "chroot",
        "--format",
        "docker",  # HEALTHCHECK is a Docker-format field; OCI images drop it
        *ca,
        "--build-arg",
        f"BASE={BASE}",
        "-f",
        str(ROOT / "Containerfile"),
        "-t",
        IMAGE,
        str(ROOT),
        timeout=BUILD_TIMEOUT,
    )
    return IMAGE


@pytest.fixture
def coordinator(podman_env: dict[str, str], image: str) -> Iterator[tuple[str, int]]:
    env = podman_env
    name = f"burnstand-test-{uuid.uuid4().hex[:8]}"
    volume = f"{name}-data"
    port = _free_port()
    _run(
        env,
        "podman",
        "--runtime",
        "runc",
        "run",
        "-d",
        "--name",
        name,
        "-p",
        f"127.0.0.1:{port}:8080",
        "-v",
        f"{volume}:/var/lib/burnstand-coordinator",
        image,
    )
    try:
        _wait_healthy(env, name, port)
        yield name, port
    finally:
        subprocess.run(["podman", "rm", "-f", name], env=env, capture_output=True, check=False)
        subprocess.run(
            ["podman", "volume", "rm", "-f", volume], env=env, capture_output=True, check=False
        )


@pytest.fixture(scope="module")
def redis_image(podman_env: dict[str, str]) -> str:
    """Redis for compose.yaml, from Debian's package on the same base (Containerfile.redis)."""
    _run(
        podman_env,
        "buildah",
        "bud",
        "--isolation",
        "chroot",
        "--format",
        "docker",
        "--build-arg",
        f"BASE={BASE}",
        "-f",
        str(ROOT / "Containerfile.redis"),
        "-t",
        REDIS_IMAGE,
        str(ROOT),
        timeout=BUILD_TIMEOUT,
    )
    return REDIS_IMAGE


@pytest.fixture
def stack(
    podman_env: dict[str, str], image: str, redis_image: str
) -> Iterator[tuple[str, dict[str, str], int]]:
    """compose.yaml brought up with podman-compose (Debian's), on the images just built; yields
    the project name, the environment it runs in and the coordinator's port."""
    if shutil.which("podman-compose") is None:
        pytest.skip("not installed: podman-compose (make test installs it)")
    project = f"bstest{uuid.uuid4().hex[:8]}"
    port = _free_port()
    env = {
        **podman_env,
        "BURNSTAND_PORT": str(port),
        "BURNSTAND_IMAGE": image,
        "BURNSTAND_REDIS_IMAGE": redis_image,
        "BURNSTAND_BASE": BASE,
    }
    compose = ["podman-compose", "-p", project, "-f", str(ROOT / "compose.yaml")]
    try:
        _run(env, *compose, "up", "-d", "--no-build", timeout=300)
        _wait_healthy(env, f"{project}_coordinator_1", port)
        yield project, env, port
    finally:
        subprocess.run(
            [*compose, "down", "-v"], env=env, capture_output=True, timeout=300, check=False
        )
        subprocess.run(
            ["podman", "network", "rm", "-f", f"{project}_default"],
            env=env,
            capture_output=True,
            check=False,
        )


def _wait_healthy(env: dict[str, str], name: str, port: int) -> dict[str, object]:
    """The coordinator's health once it listens (bounded by READY_TIMEOUT)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:  # bounded: until health answers or the deadline passes
        try:
            url = f"http://127.0.0.1:{port}/api/v1/health"
            with urllib.request.urlopen(url, timeout=5) as resp:
                health: dict[str, object] = json.loads(resp.read())
                if health["status"] == "LISTENING":
                    return health
        except OSError:
            pass
        assert time.monotonic() < deadline, _run(env, "podman", "logs", name)
        time.sleep(0.2)


def test_compose_runs_the_coordinator_with_redis_and_the_operator_walkthrough(
    stack: tuple[str, dict[str, str], int],
) -> None:
    project, env, port = stack
    coordinator, redis = f"{project}_coordinator_1", f"{project}_redis_1"
    # The coordinator found Redis by its service name and subscribed its patterns there.
    health = _wait_healthy(env, coordinator, port)
    assert (health["pubsub"], health["redis_reachable"]) == ("redis", True)
    assert _run(env, "podman", "exec", redis, "redis-cli", "ping").strip() == "PONG"
    assert int(_run(env, "podman", "exec", redis, "redis-cli", "pubsub", "numpat")) > 0
    assert _run(env, "podman", "exec", redis, "id", "-un").strip() == "redis"
    _walk_operator_flow(env, coordinator, port)
    # Redis keeps its data in its volume (append-only file).
    assert "appendonly" in _run(env, "podman", "exec", redis, "ls", "/data")


def test_the_image_runs_the_operator_walkthrough(
    podman_env: dict[str, str], coordinator: tuple[str, int]
) -> None:
    env = podman_env
    name, port = coordinator
    # The image's own HEALTHCHECK passes, as the coordinator user, on its data volume.
    _run(env, "podman", "--runtime", "runc", "healthcheck", "run", name)
    user = _run(env, "podman", "exec", name, "id", "-un").strip()
    assert user == "burnstand-coordinator"
    _walk_operator_flow(env, name, port)
    # The data outlives the container: it is in the volume.
    files = _run(env, "podman", "exec", name, "ls", "/var/lib/burnstand-coordinator").split()
    assert "coordinator.db" in files


def _walk_operator_flow(env: dict[str, str], name: str, port: int) -> None:
    """The first admin, made inside container `name` on its volume (as the deployment guide
    says), then the walkthrough of docs/operator.md as written, against `port`."""
    admin = _run(
        env,
        "podman",
        "exec",
        name,
        "/opt/burnstand/venv/bin/burnstand-coordinator",
        "admin",
        "create",
        "--data",
        "/var/lib/burnstand-coordinator",
        "--name",
        "Ada Admin",
        "--email",
        "ada@example.org",
    ).strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,}", admin)
    text = (ROOT / "docs" / "operator.md").read_text(encoding="utf-8")
    script = re.findall(r"```sh\n(.*?)```", text.split("## Walkthrough", 1)[1], flags=re.S)[1]
    script = script.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    script = re.sub(r"^ADMIN=\$\(.*\)$", f"ADMIN={admin}", script, count=1, flags=re.M)
    walked = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert walked.returncode == 0, walked.stderr
    listed = [json.loads(c) for c in re.findall(r"\{.*?\}", walked.stdout, flags=re.S)][-1]
    assert (listed["name"], listed["state"], listed["members"]) == ("LinuxFest booth", "live", 2)
