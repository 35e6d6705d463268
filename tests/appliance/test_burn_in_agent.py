"""`burnstand-agent burn` on a kiosk hands its burn to the running agent (issue 21).

Everything runs in real processes: the agent (`burnstand-agent run`) and the CLI each in their
own, talking over the control socket, burning real loop devices. A burn that must still be
running while the test looks at it is slowed by a blkio cgroup write limit on its target, put
on the agent (the process that writes); nothing sleeps.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from gpiozero.pins.mock import MockFactory

from appliance.agent import serve
from appliance.config import AgentConfig, SimulatedDriveConfig
from appliance.control import ControlClient, RequestFailed

if TYPE_CHECKING:
    from tests.appliance.conftest import ImageMaker, LoopFactory, Throttle

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def agent_process(
    tmp_path: Path, preexec: Callable[[], None] | None = None
) -> AsyncIterator[Path]:
    """A real agent (`burnstand-agent run`) on its own state directory; yields its socket."""
    config = tmp_path / "agent.toml"
    config.write_text(
        f"""
[agent]
state_dir = "{tmp_path / "agent-state"}"
[cache]
dir = "{tmp_path / "agent-cache"}"
size = "10M"
[[drives.simulated]]
name = "Solo"
path = "sim:solo"
"""
    )
    sock = tmp_path / "agent.sock"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appliance.cli",
        "run",
        "--config",
        str(config),
        "--socket",
        str(sock),
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NOTIFY_SOCKET": ""},
        preexec_fn=preexec,  # only writes our pid into a cgroup file
    )
    try:
        client = ControlClient(sock)
        await client.reconnect(attempts=60, max_delay=0.5)
        await client.close()
        yield sock
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()


def cli_env(tmp_path: Path) -> dict[str, str]:
    """The CLI as an operator runs it: no journal named, its own state directory."""
    env = {k: v for k, v in os.environ.items() if k not in ("BURNSTAND_JOURNAL",)}
    env["XDG_STATE_HOME"] = str(tmp_path / "cli-state")
    return env


async def cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appliance.cli",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(tmp_path),
    )
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


async def agent_jobs(tmp_path: Path, sock: Path) -> dict[str, dict[str, Any]]:
    code, out, err = await cli(tmp_path, "jobs", "--json", "--socket", str(sock))
    assert code == 0, err
    return {j["id"]: j for j in events(out)}


def without_speed(line: str) -> str:
    """A progress line with its speed and time left cut off (they differ run to run)."""
    return re.sub(r"% .*", "%", line)


async def test_burn_on_a_kiosk_runs_in_the_agent_and_prints_what_a_local_burn_prints(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker
) -> None:
    img = make_test_image(8 * MiB)
    kiosk_dev = loop_devices(8 * MiB)
    local_dev = loop_devices(8 * MiB)
    async with agent_process(tmp_path) as sock:
        code, out, err = await cli(
            tmp_path, "burn", "--image", str(img), "--target", kiosk_dev.path, "--socket", str(sock)
        )
        assert code == 0, err
        jobs = await agent_jobs(tmp_path, sock)
        code, json_out, err = await cli(
            tmp_path,
            "burn",
            "--image",
            str(img),
            "--target",
            kiosk_dev.path,
            "--socket",
            str(sock),
            "--json",
        )
        assert code == 0, err
        jobs_after = await agent_jobs(tmp_path, sock)
    assert kiosk_dev.read(0, 8 * MiB) == img.read_bytes()
    # Both burns are the agent's jobs, in its journal; the CLI kept no journal of its own.
    [first] = jobs.values()
    assert (first["state"], first["target"], first["image"]) == ("passed", kiosk_dev.path, str(img))
    [result] = [e for e in events(json_out) if e["event"] == "result"]
    assert jobs_after[result["job"]]["state"] == "passed"
    assert not (tmp_path / "cli-state").exists()
    # The --json events are the ones a local burn prints: start, states, progress, result.
    kinds = [e["event"] for e in events(json_out)]
    assert kinds[0] == "start"
    assert kinds[-1] == "result"
    assert {"state", "progress"} <= set(kinds)
    assert (result["ok"], result["verified"], result["target"]) == (True, True, kiosk_dev.path)

    code, local_out, err = await cli(
        tmp_path,
        "burn",
        "--image",
        str(img),
        "--target",
        local_dev.path,
        "--journal",
        str(tmp_path / "own.db"),
    )
    assert code == 0, err
    as_agent = [without_speed(line) for line in out.replace(kiosk_dev.path, "T").splitlines()]
    as_local = [without_speed(line) for line in local_out.replace(local_dev.path, "T").splitlines()]
    assert as_agent == as_local
    assert as_agent[-1].startswith("T: PASS: ")


async def test_a_failed_or_refused_burn_in_the_agent_exits_as_a_local_one_does(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker
) -> None:
    img = make_test_image(8 * MiB)
    small = loop_devices(4 * MiB)
    not_a_device = tmp_path / "notes.txt"
    not_a_device.write_text("not a disk")
    async with agent_process(tmp_path) as sock:
        too_small = await cli(
            tmp_path, "burn", "--image", str(img), "--target", small.path, "--socket", str(sock)
        )
        refused = await cli(
            tmp_path,
            "burn",
            "--image",
            str(img),
            "--target",
            str(not_a_device),
            "--socket",
            str(sock),
        )
        jobs = await agent_jobs(tmp_path, sock)
    code, out, err = too_small
    assert code == 1
    [line] = err.splitlines()
    assert line.startswith(f"burnstand-agent: {small.path}: media-too-small: ")
    assert out.splitlines()[-1] == f"{small.path}: FAIL (media-too-small)"
    [job] = jobs.values()
    assert (job["state"], job["reason"]) == ("failed", "media-too-small")

    code, out, err = refused
    assert (code, out) == (1, "")
    assert err == (
        f"burnstand-agent: {not_a_device} is not a block device, optical drive or stdio:PATH\n"
    )


async def test_sigterm_to_the_cli_cancels_the_burn_in_the_agent(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker, throttle: Throttle
) -> None:
    img = make_test_image(32 * MiB)
    dev = loop_devices(32 * MiB)
    async with agent_process(tmp_path, throttle(dev.path, 4 * MiB)) as sock:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "appliance.cli",
            "burn",
            "--image",
            str(img),
            "--target",
            dev.path,
            "--socket",
            str(sock),
            "--json",
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=cli_env(tmp_path),
        )
        assert proc.stdout is not None
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(60):
            while not any(
                e["event"] == "progress" and e["phase"] == "write" and e["done"] < e["total"]
                for e in seen
            ):
                line = await proc.stdout.readline()
                assert line, f"the burn ended before it was mid-write: {seen}"
                seen.append(json.loads(line))
        job_id = next(e["job"] for e in seen if e["event"] == "state")
        # Mid-write, the job is the agent's, and the CLI has no journal open at all.
        assert (await agent_jobs(tmp_path, sock))[job_id]["state"] == "writing"
        open_files = [
            os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{proc.pid}/fd")
        ]
        assert not [f for f in open_files if "journal" in f or f.endswith(".sqlite3")]

        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(90):
            _, err = await proc.communicate()
        assert proc.returncode == 130, err.decode()
        assert err.decode() == "burnstand-agent: cancelled; targets are left blank at their start\n"
        job = (await agent_jobs(tmp_path, sock))[job_id]
        assert job["state"] == "cancelled"
        # The agent lives on, and the target is free for the next burn.
        small = make_test_image(1 * MiB, seed=3)
        code, _, err2 = await cli(
            tmp_path, "burn", "--image", str(small), "--target", dev.path, "--socket", str(sock)
        )
        assert code == 0, err2
    assert dev.read(0, MiB) == small.read_bytes()


async def test_without_an_agent_the_cli_burns_by_itself(
    tmp_path: Path, loop_devices: LoopFactory, make_test_image: ImageMaker
) -> None:
    img = make_test_image(4 * MiB)
    dev = loop_devices(4 * MiB)
    code, out, err = await cli(
        tmp_path,
        "burn",
        "--image",
        str(img),
        "--target",
        dev.path,
        "--socket",
        str(tmp_path / "no-agent.sock"),
        "--json",
    )
    assert code == 0, err
    [result] = [e for e in events(out) if e["event"] == "result"]
    assert result["ok"]
    assert dev.read(0, 4 * MiB) == img.read_bytes()
    # Its own journal, in the operator's state directory.
    journal = tmp_path / "cli-state" / "burnstand" / "journal.sqlite3"
    code, out, err = await cli(tmp_path, "jobs", "--json", "--journal", str(journal))
    assert code == 0, err
    assert [j["id"] for j in events(out)] == [result["job"]]


# --------------------------------------------------------------------------- bad requests


async def test_a_file_burn_the_agent_cannot_run_is_refused_with_a_reason(tmp_path: Path) -> None:
    slow = SimulatedDriveConfig(
        "Slow", "sim:slow", "optical", 1e5, 4_700_000_000, frozenset({"CDR"})
    )
    img = tmp_path / "live.img"
    img.write_bytes(os.urandom(MiB))
    good = {"image": str(img), "targets": ["sim:slow"], "options": {}}
    bad: list[tuple[dict[str, Any], str, str]] = [
        ({"image": "live.img"}, "bad-args", "burn_file: 'image' must be an absolute path"),
        ({"image": str(tmp_path / "gone.img")}, "bad-image", "cannot read image"),
        ({"image": str(tmp_path)}, "bad-image", "is not a regular file"),
        ({"targets": []}, "bad-args", "'targets' must be a non-empty list of device paths"),
        ({"targets": "sim:slow"}, "bad-args", "'targets' must be a list, not str"),
        ({"targets": ["sim:slow", "sim:slow"]}, "bad-args", "the same target was given twice"),
        ({"options": {"speed": 4}}, "bad-args", "unknown option 'speed'"),
        ({"options": {"sha256": "abc"}}, "bad-args", "'sha256' must be 64 lowercase hex digits"),
        ({"options": {"verify": "yes"}}, "bad-args", "'verify' must be true or false"),
        ({"options": {"extracted_size": -1}}, "bad-args", "'extracted_size' must be a positive"),
        ({"targets": [str(img)]}, "bad-target", "is not a block device, optical drive"),
    ]
    config = AgentConfig(
        state_dir=tmp_path / "state",
        cache_dir=tmp_path / "cache",
        cache_size=64 * MiB,
        simulated=(slow,),
        socket=tmp_path / "agent.sock",
    )
    running = await serve(config, pin_factory=MockFactory())
    try:
        async with ControlClient(running.server.path) as client:
            for change, code, text in bad:
                with pytest.raises(RequestFailed) as refused:
                    await client.request("burn_file", **{**good, **change})
                assert refused.value.code == code, change
                assert text in refused.value.message, change
            # A drive the kiosk is burning on is not handed to the CLI as well.
            [drive] = await client.request("drives")
            sha = hashlib.sha256(img.read_bytes()).hexdigest()
            take = {"sha256": sha, "md5": "", "size": MiB, "name": img.name, "notes": "", "url": ""}
            assert running.agent.cache is not None
            await running.agent.cache.add_file(img, sha, img.name)
            await running.agent.set_catalog([take])
            await client.request("burn", image=sha, drive=drive["uid"])
            with pytest.raises(RequestFailed) as busy:
                await client.request("burn_file", **good)
            assert (busy.value.code, busy.value.message) == (
                "busy",
                "Slow is busy with another burn",
            )
            await client.request("cancel", drive=drive["uid"])
    finally:
        await running.stop()


async def test_the_kiosk_sees_a_cli_burn_on_its_own_drive(tmp_path: Path) -> None:
    """A file burn the CLI hands over onto one of the agent's drives shows on the kiosk like a
    kiosk burn: busy, progress under the file's name, and how it ended."""
    fast = SimulatedDriveConfig(
        "Fast", "sim:fast", "optical", 4e6, 4_700_000_000, frozenset({"CDR"})
    )
    img = tmp_path / "live.img"
    img.write_bytes(os.urandom(MiB))
    config = AgentConfig(
        state_dir=tmp_path / "state",
        cache_dir=tmp_path / "cache",
        cache_size=64 * MiB,
        simulated=(fast,),
        socket=tmp_path / "agent.sock",
    )
    running = await serve(config, pin_factory=MockFactory())
    try:
        async with (
            ControlClient(running.server.path) as kiosk,
            ControlClient(running.server.path) as cli,
        ):
            await kiosk.subscribe()
            streamed: list[dict[str, Any]] = []
            async with asyncio.timeout(60):
                results = await cli.stream(
                    "burn_file",
                    streamed.append,
                    image=str(img),
                    targets=["sim:fast"],
                    options={},
                )
                seen: list[dict[str, Any]] = []
                async for event in kiosk.events():
                    seen.append(event)
                    if event["event"] == "finished":
                        break
            [drive] = await kiosk.request("drives")
            jobs = await kiosk.request("jobs")
    finally:
        await running.stop()
    [result] = results
    assert (result["state"], result["verified"]) == ("passed", True)
    assert {e["job"]["kind"] for e in streamed} >= {"state", "progress", "result"}
    busy = [e for e in seen if e["event"] == "drive" and e["drive"]["state"] == "busy"]
    assert busy, seen
    progress = [e["job"] for e in seen if e["event"] == "progress"]
    assert progress
    assert {p["image_name"] for p in progress} == {"live.img"}
    assert progress[-1]["percent"] == 100
    finished = seen[-1]["result"]
    assert (finished["ok"], finished["image_name"], finished["job_id"]) == (
        True,
        "live.img",
        result["job_id"],
    )
    assert drive["state"] != "busy"
    assert drive["last_result"] == finished
    assert [(j["id"], j["state"]) for j in jobs] == [(result["job_id"], "passed")]
