"""A kiosk with only an enrollment code, against a real coordinator on loopback.

The agent shows `pending` on its control socket until a show admin accepts it, then links to the
coordinator without a restart, keeps the credential (mode 0600) and needs no enrollment on its
next start. A rejection shows `rejected`. The config refuses codes it cannot use, naming the key.
"""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from gpiozero.pins.mock import MockFactory

from appliance.agent import Running, serve
from appliance.config import AgentConfig, ConfigError, parse_config
from appliance.control import ControlClient
from appliance.enroll import Enrollment, EnrollmentRefused
from coordinator.app import make_app
from coordinator.config import CoordinatorConfig
from coordinator.keys import STORE
from coordinator.store.people import create_admin
from tests.conftest import free_port

WAIT = 20.0
CODE_SHOWN = "ABCD-2345"


@dataclass
class Coordinator:
    base: str
    admin: str
    show: int
    store: Any

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.admin}"}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.base + "/api/v1" + path, json=body, headers=headers) as r,
        ):
            out = await r.json(content_type=None)
            assert r.status < 300, (path, r.status, out)
            return out

    async def pending(self) -> list[dict[str, Any]]:
        return list((await self.call("GET", f"/shows/{self.show}/enrollments"))["items"])


@pytest.fixture
async def coordinator(tmp_path: Path) -> AsyncIterator[Coordinator]:
    port = free_port()
    config = CoordinatorConfig(
        data_dir=tmp_path / "coord", host="127.0.0.1", port=port, expiry_check_interval=3600
    )
    runner = web.AppRunner(make_app(config))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    store = runner.app[STORE]
    admin = await store.write(
        lambda c: create_admin(c, time.time(), "test", "Ada", "ada@example.org")
    )
    coord = Coordinator(f"http://127.0.0.1:{port}", admin, 0, store)
    coord.show = (await coord.call("POST", "/shows", {"name": "Launch", "asset_root": "/s"}))["id"]
    try:
        yield coord
    finally:
        await runner.cleanup()


def kiosk_config(tmp_path: Path, coord: Coordinator) -> AgentConfig:
    # As on the image: first boot wrote the code file; the agent reads it.
    code_file = tmp_path / "enrollment-code"
    code_file.write_text("ABCD2345\n")
    return parse_config(
        f"""
        [agent]
        name = "booth kiosk"
        state_dir = "{tmp_path / "state"}"
        socket = "{tmp_path / "agent.sock"}"
        [coordinator]
        url = "{coord.base}"
        enrollment_code_file = "{code_file}"
        show = {coord.show}
        [cache]
        dir = "{tmp_path / "cache"}"
        """
    )


async def start_kiosk(config: AgentConfig) -> Running:
    return await serve(config, pin_factory=MockFactory(), enroll_interval=(0.02, 0.1))


async def link_becomes(client: ControlClient, wanted: str) -> None:
    """Bounded polling of the agent's status until its link shows `wanted`."""
    seen = None
    async with asyncio.timeout(WAIT):
        for _ in range(100_000):
            seen = (await client.request("status"))["link"]
            if seen == wanted:
                return
            await asyncio.sleep(0.02)  # let the agent's tasks run between looks
    raise AssertionError(f"link never became {wanted}; last {seen}")  # pragma: no cover


async def until_pending(coord: Coordinator) -> list[dict[str, Any]]:
    async with asyncio.timeout(WAIT):
        for _ in range(100_000):
            if items := await coord.pending():
                return items
            await asyncio.sleep(0.02)
    raise AssertionError("the kiosk never showed up as pending")  # pragma: no cover


async def test_pending_kiosk_links_once_accepted_without_restart(
    tmp_path: Path, coordinator: Coordinator
) -> None:
    config = kiosk_config(tmp_path, coordinator)
    assert config.credential is None
    running = await start_kiosk(config)
    try:
        async with ControlClient(running.server.path) as client:
            await link_becomes(client, "pending")
            [request] = await until_pending(coordinator)
            assert (request["code"], request["name"]) == (CODE_SHOWN, "booth kiosk")

            show = coordinator.show
            await coordinator.call("POST", f"/shows/{show}/enrollments/{request['id']}/accept")
            await link_becomes(client, "online")
    finally:
        await running.stop()

    saved = tmp_path / "state" / "credential"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    credential = saved.read_text().strip()
    rows = await coordinator.store.read(
        lambda c: c.execute("SELECT state, credential FROM enrollments").fetchall()
    )
    assert [tuple(r) for r in rows] == [("accepted", None)]

    # The next start uses the kept credential: online at once, no new enrollment.
    again = kiosk_config(tmp_path, coordinator)
    assert again.credential == credential
    running = await start_kiosk(again)
    try:
        async with ControlClient(running.server.path) as client:
            await link_becomes(client, "online")
    finally:
        await running.stop()
    actions = await coordinator.store.read(
        lambda c: [r[0] for r in c.execute("SELECT action FROM audit WHERE action LIKE 'enr%'")]
    )
    assert actions == ["enrollment.request", "enrollment.accept", "enrollment.pickup"]


async def test_rejected_kiosk_says_so_and_stays_offline(
    tmp_path: Path, coordinator: Coordinator
) -> None:
    running = await start_kiosk(kiosk_config(tmp_path, coordinator))
    try:
        async with ControlClient(running.server.path) as client:
            await link_becomes(client, "pending")
            [request] = await until_pending(coordinator)
            show = coordinator.show
            await coordinator.call("POST", f"/shows/{show}/enrollments/{request['id']}/reject")
            await link_becomes(client, "rejected")
    finally:
        await running.stop()
    assert not (tmp_path / "state" / "credential").exists()


async def test_spent_code_is_refused_with_the_coordinators_reason(
    coordinator: Coordinator,
) -> None:
    first = Enrollment(coordinator.base, "WXYZ9999", "k", coordinator.show, interval_min=0.01)
    task = asyncio.create_task(first.run())
    [request] = await until_pending(coordinator)
    await coordinator.call("POST", f"/shows/{coordinator.show}/enrollments/{request['id']}/accept")
    assert await asyncio.wait_for(task, WAIT)
    again = Enrollment(coordinator.base, "WXYZ9999", "k", coordinator.show, interval_min=0.01)
    with pytest.raises(EnrollmentRefused, match=r"HTTP 409.*already used"):
        await asyncio.wait_for(again.run(), WAIT)


async def test_unknown_show_is_refused(coordinator: Coordinator) -> None:
    lost = Enrollment(coordinator.base, "WXYZ9999", "k", "No such show", interval_min=0.01)
    with pytest.raises(EnrollmentRefused, match=r"HTTP 404.*No such show"):
        await asyncio.wait_for(lost.run(), WAIT)


@pytest.mark.parametrize(
    ("coordinator_table", "message"),
    [
        (
            'url = "http://c"\nenrollment_code = "ABCD-0001"\nshow = 1',
            "[coordinator] enrollment_code: must be 8 letters and digits",
        ),
        (
            'url = "http://c"\nenrollment_code = "ABCD-2345"',
            "[coordinator] show: is needed to enroll",
        ),
        (
            'url = "http://c"\nenrollment_code = "ABCD-2345"\n'
            'enrollment_code_file = "/x"\nshow = 1',
            "[coordinator] enrollment_code_file: give enrollment_code or its file, not both",
        ),
        (
            'url = "http://c"\nenrollment_code_file = "/nonexistent/code"\nshow = 1',
            "[coordinator] credential: is needed when url is set",
        ),
    ],
)
def test_config_refuses_unusable_enrollment_settings(
    tmp_path: Path, coordinator_table: str, message: str
) -> None:
    text = f'[agent]\nstate_dir = "{tmp_path}"\n[coordinator]\n{coordinator_table}\n'
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert message in str(err.value)


def test_config_reads_the_code_as_the_image_writes_it(tmp_path: Path) -> None:
    code_file = tmp_path / "enrollment-code"
    code_file.write_text("abcd2345\n")
    config = parse_config(
        f'[agent]\nstate_dir = "{tmp_path}"\n[coordinator]\nurl = "https://c"\n'
        f'enrollment_code_file = "{code_file}"\nshow = 4\n'
    )
    assert (config.enrollment_code, config.credential, config.show) == ("ABCD2345", None, 4)


async def test_a_restarted_kiosk_keeps_its_request_and_shows_its_phrase(
    coordinator: Coordinator, tmp_path: Path
) -> None:
    """Issue 23 case 3: the request belongs to the kiosk's poll token, kept across restarts;
    the phrase on the kiosk's screen is the one the dashboard lists."""
    from appliance.kiosk.enrollment import read_enrollment_code

    state = tmp_path / "kiosk-state"
    state.mkdir()
    (state / "enrollment-code").write_text("WXYZ9999\n")

    def kiosk() -> Enrollment:
        return Enrollment(
            coordinator.base, "WXYZ9999", "k", coordinator.show, state_dir=state, interval_min=0.01
        )

    first = asyncio.create_task(kiosk().run())
    [request] = await until_pending(coordinator)
    async with asyncio.timeout(WAIT):
        for _ in range(100_000):  # until the answer reached the kiosk
            if (state / "enrollment-phrase").exists():
                break
            await asyncio.sleep(0.02)
    first.cancel()  # the agent restarts before anyone decided
    with pytest.raises(asyncio.CancelledError):
        await first
    assert stat.S_IMODE((state / "enrollment-poll").stat().st_mode) == 0o600
    assert read_enrollment_code(state) == f"WXYZ-9999 · confirm: {request['phrase']}"
    # Someone who read the code off the screen (no poll token) is refused...
    stranger = Enrollment(coordinator.base, "WXYZ9999", "x", coordinator.show, interval_min=0.01)
    with pytest.raises(EnrollmentRefused, match=r"HTTP 409.*another client"):
        await asyncio.wait_for(stranger.run(), WAIT)
    # ...the restarted kiosk is not, and gets the credential once accepted.
    second = asyncio.create_task(kiosk().run())
    [again] = await until_pending(coordinator)
    assert (again["id"], again["conflicts"]) == (request["id"], 1)
    await coordinator.call("POST", f"/shows/{coordinator.show}/enrollments/{request['id']}/accept")
    assert await asyncio.wait_for(second, WAIT)
    assert not (state / "enrollment-poll").exists()
