"""The control socket against a real Unix socket in tmp_path, served over the in-memory demo agent.

Each bad request must get a typed error reply on a connection that keeps working; a line over
64 KiB is answered and closed; a subscriber that vanishes or stops reading is cleaned up while
the others keep receiving events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from appliance.control import (
    MAX_LINE,
    AgentUnavailable,
    ControlClient,
    ControlError,
    ControlServer,
    RequestFailed,
)
from appliance.kiosk.demo import DemoHandler

LEFT = "a1" * 16
TIMEOUT = 5.0


@pytest.fixture
def handler() -> DemoHandler:
    return DemoHandler()


@pytest.fixture
async def server(tmp_path: Path, handler: DemoHandler) -> AsyncIterator[ControlServer]:
    srv = ControlServer(handler, tmp_path / "run" / "agent.sock")
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture
async def client(server: ControlServer) -> AsyncIterator[ControlClient]:
    async with ControlClient(server.path, timeout=TIMEOUT) as c:
        yield c


class Raw:
    """A bare socket client, for sending what ControlClient never would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), TIMEOUT)
        assert line, "the server closed the connection"
        return json.loads(line)  # type: ignore[no-any-return]

    async def ask(self, obj: object) -> dict[str, Any]:
        await self.send(json.dumps(obj).encode() + b"\n")
        return await self.recv()


@pytest.fixture
async def raw(server: ControlServer) -> AsyncIterator[Raw]:
    reader, writer = await asyncio.open_unix_connection(str(server.path), limit=4 * MAX_LINE)
    try:
        yield Raw(reader, writer)
    finally:
        writer.close()


async def wait_until(predicate: Any, what: str) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_socket_is_group_writable_and_answers(
    server: ControlServer, client: ControlClient
) -> None:
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o660
    drives = await client.request("drives")
    assert [d["name"] for d in drives] == ["Left burner", "Right burner", "USB slot"]
    images = await client.request("images")
    server_img = next(i for i in images if "Server" in i["name"])
    assert server_img["media"] == ["DVDR", "BDR", "BLOCK"]
    assert len(server_img["sha256"]) == 64
    assert len(server_img["md5"]) == 32
    status = await client.request("status")
    assert status["link"] == "online"
    assert status["cache_max"] == 32_000_000_000


async def test_burn_queue_cancel_eject_and_name(
    client: ControlClient, handler: DemoHandler
) -> None:
    image = handler.catalog[1]["sha256"]
    accepted = await client.request("burn", image=image, drive=LEFT)
    assert accepted["drive"] == LEFT
    queue = await client.request("queue")
    assert queue == [
        {"job_id": accepted["job_id"], "drive": LEFT, "image": image, "state": "writing"}
    ]
    with pytest.raises(RequestFailed) as busy:
        await client.request("burn", image=image, drive=LEFT)
    assert busy.value.code == "busy"
    await client.request("cancel", drive=LEFT)
    drives = {d["uid"]: d for d in await client.request("drives")}
    assert drives[LEFT]["last_result"]["reason"] == "cancelled"
    assert drives[LEFT]["state"] == "trayopen"
    renamed = await client.request("name", drive=LEFT, name="  Front burner ")
    assert renamed["name"] == "Front burner"
    ejected = await client.request("eject_all")
    assert sorted(ejected["ejected"]) == sorted(d.uid for d in handler.drive_list)


async def test_malformed_json_gets_an_error_and_the_connection_keeps_working(raw: Raw) -> None:
    await raw.send(b'{"id": 1, "cmd": "drives"\n')
    reply = await raw.recv()
    assert reply["ok"] is False
    assert reply["error"]["code"] == "bad-json"
    await raw.send(b"\xff\xfe not utf-8\n")
    assert (await raw.recv())["error"]["code"] == "bad-json"
    ok = await raw.ask({"id": 2, "cmd": "status"})
    assert ok["id"] == 2
    assert ok["ok"] is True


@pytest.mark.parametrize(
    "request_obj",
    [[1, 2], "drives", 42, None, {"id": 3}, {"id": [1], "cmd": "drives"}, {"id": 3, "cmd": 7}],
)
async def test_a_request_that_is_not_a_command_object_is_refused(
    raw: Raw, request_obj: object
) -> None:
    reply = await raw.ask(request_obj)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "bad-request"
    assert (await raw.ask({"id": 9, "cmd": "drives"}))["ok"] is True


async def test_unknown_command_names_the_known_ones(raw: Raw) -> None:
    reply = await raw.ask({"id": "x1", "cmd": "format_disk"})
    assert reply == {
        "id": "x1",
        "ok": False,
        "error": {"code": "unknown-command", "message": reply["error"]["message"]},
    }
    assert "'format_disk'" in reply["error"]["message"]
    assert "burn" in reply["error"]["message"]


@pytest.mark.parametrize(
    ("request_obj", "mentions"),
    [
        ({"cmd": "burn", "drive": "auto"}, "'image'"),
        ({"cmd": "burn", "image": 5, "drive": "auto"}, "not int"),
        ({"cmd": "burn", "image": "abc", "drive": True}, "not bool"),
        ({"cmd": "eject", "drive": ""}, "empty"),
        ({"cmd": "drives", "verbose": True}, "'verbose'"),
        ({"cmd": "name", "drive": LEFT, "name": "x" * 41}, "at most 40"),
        ({"cmd": "cancel"}, "'drive'"),
    ],
)
async def test_missing_or_ill_typed_arguments_are_bad_args(
    raw: Raw, handler: DemoHandler, request_obj: dict[str, Any], mentions: str
) -> None:
    before = await handler.drives()
    reply = await raw.ask({"id": 1, **request_obj})
    assert reply["ok"] is False
    assert reply["error"]["code"] == "bad-args"
    assert mentions in reply["error"]["message"]
    assert await handler.drives() == before  # nothing happened


async def test_handler_refusals_and_bugs_become_error_replies(
    client: ControlClient, handler: DemoHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RequestFailed) as nf:
        await client.request("eject", drive="no-such-drive")
    assert nf.value.code == "not-found"
    await client.request("eject", drive=LEFT)
    with pytest.raises(RequestFailed) as nm:
        await client.request("burn", image=handler.catalog[2]["sha256"], drive=LEFT)
    assert nm.value.code == "no-media"  # a BurnError from the agent keeps its code

    async def broken() -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(handler, "queue", broken)
    with pytest.raises(RequestFailed) as internal:
        await client.request("queue")
    assert internal.value.code == "internal"
    assert (await client.request("status"))["version"]  # still serving


async def test_a_control_error_from_the_handler_keeps_its_code(
    client: ControlClient, handler: DemoHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(image: str, drive: str) -> None:
        raise ControlError("no-drive", "No free burner can take this image right now")

    monkeypatch.setattr(handler, "burn", refuse)
    with pytest.raises(RequestFailed) as exc:
        await client.request("burn", image="a" * 64, drive="auto")
    assert (exc.value.code, exc.value.message) == (
        "no-drive",
        "No free burner can take this image right now",
    )


async def test_an_oversize_line_is_answered_then_closed(server: ControlServer, raw: Raw) -> None:
    await raw.send(b'{"id": 1, "cmd": "drives", "pad": "' + b"x" * (MAX_LINE + 10) + b'"}\n')
    reply = await raw.recv()
    assert reply["error"]["code"] == "line-too-long"
    assert await asyncio.wait_for(raw.reader.read(), TIMEOUT) == b""  # closed by the server
    async with ControlClient(server.path, timeout=TIMEOUT) as fresh:
        assert len(await fresh.request("drives")) == 3


async def test_a_subscriber_vanishing_mid_stream_is_cleaned_up(
    server: ControlServer,
    handler: DemoHandler,
    client: ControlClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="appliance.control")
    await client.subscribe()
    reader, writer = await asyncio.open_unix_connection(str(server.path))
    writer.write(b'{"id": 1, "cmd": "subscribe"}\n')
    await writer.drain()
    await reader.readline()
    await wait_until(lambda: server.subscribers == 2, "two subscribers")
    await handler.burn(handler.catalog[1]["sha256"], LEFT)
    await handler.advance(1.0)
    writer.transport.abort()  # gone without a goodbye, with events in flight
    await wait_until(lambda: server.subscribers == 1, "the vanished subscriber to be dropped")
    await handler.advance(1.0)
    events = client.events()
    seen = [await asyncio.wait_for(anext(events), TIMEOUT) for _ in range(6)]
    assert [e["event"] for e in seen].count("progress") >= 4
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_events_fan_out_to_every_subscriber_in_order(
    server: ControlServer, handler: DemoHandler
) -> None:
    async with (
        ControlClient(server.path, timeout=TIMEOUT) as one,
        ControlClient(server.path, timeout=TIMEOUT) as two,
    ):
        await one.subscribe()
        await two.subscribe()
        image = handler.catalog[2]  # 650 MB: 40 MB/s write, 80 MB/s verify
        await handler.burn(image["sha256"], LEFT)
        await handler.advance(40.0)

        async def until_finished(c: ControlClient) -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = []
            async for event in c.events():
                got.append(event)
                if event["event"] == "finished":
                    return got
            raise AssertionError("stream ended")

        a = await asyncio.wait_for(until_finished(one), TIMEOUT)
        b = await asyncio.wait_for(until_finished(two), TIMEOUT)
    assert a == b
    assert a[-1]["result"]["ok"] is True
    phases = [e["job"]["phase"] for e in a if e["event"] == "progress"]
    assert phases.index("verify") > 0
    assert "write" not in phases[phases.index("verify") :]


async def test_a_subscriber_that_stops_reading_is_disconnected_not_the_others(
    tmp_path: Path, handler: DemoHandler, caplog: pytest.LogCaptureFixture
) -> None:
    async with ControlServer(handler, tmp_path / "agent.sock", event_queue_limit=8) as server:
        reader, writer = await asyncio.open_unix_connection(str(server.path))
        writer.write(b'{"id": 1, "cmd": "subscribe"}\n')
        await writer.drain()
        await reader.readline()
        async with ControlClient(server.path, timeout=TIMEOUT) as healthy:
            await healthy.subscribe()
            events = healthy.events()
            pad = "x" * 60_000
            for n in range(400):
                server.publish({"event": "status", "n": n, "pad": pad})
                got = await asyncio.wait_for(anext(events), TIMEOUT)
                assert got["n"] == n  # the reader keeps up and misses nothing
                if server.subscribers == 1:
                    break
            assert server.subscribers == 1
            assert healthy.connected
        writer.close()
    assert any("too slow" in r.getMessage() for r in caplog.records)


async def test_client_reports_a_missing_agent_and_a_dropped_connection(
    tmp_path: Path, handler: DemoHandler
) -> None:
    client = ControlClient(tmp_path / "nobody.sock", timeout=TIMEOUT)
    with pytest.raises(AgentUnavailable):
        await client.connect()
    with pytest.raises(AgentUnavailable):
        await client.reconnect(attempts=2, first_delay=0.01)
    server = ControlServer(handler, tmp_path / "nobody.sock")
    await server.start()
    await client.reconnect(attempts=3, first_delay=0.01)
    await client.subscribe()
    await server.close()
    with pytest.raises(AgentUnavailable):
        async for _ in client.events():
            pass
    with pytest.raises(AgentUnavailable):
        await client.request("drives")
    await client.close()


async def test_a_stale_socket_file_is_replaced_but_a_regular_file_is_not(
    tmp_path: Path, handler: DemoHandler
) -> None:
    path = tmp_path / "agent.sock"
    first = ControlServer(handler, path)
    await first.start()
    # Simulate a crash: the socket file stays behind, nobody listens.
    assert first._server is not None
    first._server.close()
    await first._server.wait_closed()
    async with ControlServer(handler, path) as second, ControlClient(path) as c:
        assert second.path.exists()
        assert len(await c.request("drives")) == 3
    other = tmp_path / "notes.txt"
    other.write_text("keep me")
    with pytest.raises(FileExistsError):
        await ControlServer(handler, other).start()
    assert other.read_text() == "keep me"
