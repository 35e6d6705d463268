"""`ControlServer`: one `ControlHandler` on a JSON-lines Unix socket. Every request is checked at
the edge; no malformed request, handler bug or vanished client takes the server down, and a
subscriber that falls behind is disconnected rather than fed a stream with holes."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import itertools
import json
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.control.commands import (
    COMMANDS,
    STREAM_CANCEL_WAIT,
    ControlError,
    ControlHandler,
    FileBurner,
    check_args,
    encode,
    error_reply,
    streaming_id,
)
from appliance.control.shapes import (
    DEFAULT_SOCKET,
    EVENT_QUEUE_LIMIT,
    EVENTS,
    MAX_LINE,
    SOCKET_GROUP,
    SOCKET_MODE,
    Event,
)
from appliance.drives.base import BurnError

log = logging.getLogger("appliance.control")

# --- server --------------------------------------------------------------------------------


@dataclass(eq=False)
class _Conn:
    peer: int
    writer: asyncio.StreamWriter
    out: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    subscribed: bool = False
    closing: bool = False
    streams: set[asyncio.Task[None]] = field(default_factory=set)


class ControlServer:
    """Serves one `ControlHandler` on a Unix socket. `start()`/`close()`, or `async with`."""

    def __init__(
        self,
        handler: ControlHandler,
        path: Path = DEFAULT_SOCKET,
        *,
        group: str = SOCKET_GROUP,
        event_queue_limit: int = EVENT_QUEUE_LIMIT,
        file_burner: FileBurner | None = None,
    ) -> None:
        self.handler = handler
        self.file_burner = file_burner
        self.path = Path(path)
        self.group = group
        self.event_queue_limit = event_queue_limit
        self._server: asyncio.Server | None = None
        self._conns: set[_Conn] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unlisten: Callable[[], None] | None = None
        self._ids = itertools.count(1)

    @property
    def subscribers(self) -> int:
        return sum(1 for c in self._conns if c.subscribed and not c.closing)

    @property
    def connections(self) -> int:
        return len(self._conns)

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_socket()
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.path), limit=MAX_LINE
        )
        os.chmod(self.path, SOCKET_MODE)
        self._set_group()
        self._unlisten = self.handler.add_listener(self.publish)
        log.info("control socket listening", extra={"path": str(self.path)})

    def _remove_stale_socket(self) -> None:
        try:
            st = self.path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise FileExistsError(f"{self.path} exists and is not a socket; not replacing it")
        # A socket left by a crashed agent; a live agent would hold a lock in systemd's
        # world, and two agents on one socket is a deployment error we cannot fix here.
        self.path.unlink()

    def _set_group(self) -> None:
        try:
            gid = grp.getgrnam(self.group).gr_gid
        except KeyError:
            log.info(
                "control socket group missing; leaving the socket's group as is",
                extra={"group": self.group, "path": str(self.path)},
            )
            return
        os.chown(self.path, -1, gid)

    async def close(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._server is not None:
            self._server.close()
            for conn in list(self._conns):
                self._drop(conn)
            # Aborted transports end each client's read loop by itself; cancelling those
            # tasks instead makes asyncio's stream callback log a spurious error.
            tasks = list(self._tasks)
            if tasks:
                _, stuck = await asyncio.wait(tasks, timeout=5.0)
                for task in stuck:
                    task.cancel()
                await asyncio.gather(*stuck, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def publish(self, event: Event) -> None:
        """Fan one event out to every subscriber; a subscriber too far behind is dropped."""
        data = encode(event)
        for conn in list(self._conns):
            if not conn.subscribed or conn.closing:
                continue
            if conn.out.qsize() >= self.event_queue_limit:
                log.warning(
                    "control subscriber too slow; disconnecting it",
                    extra={"peer": conn.peer, "queued": conn.out.qsize()},
                )
                self._drop(conn)
                continue
            conn.out.put_nowait(data)

    def _drop(self, conn: _Conn) -> None:
        if conn.closing:
            return
        conn.closing = True
        conn.out.put_nowait(None)
        conn.writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(next(self._ids), writer)
        self._conns.add(conn)
        task = asyncio.current_task()
        sender = asyncio.create_task(self._send_loop(conn))
        if task is not None:
            self._tasks.add(task)
        try:
            await self._read_loop(conn, reader)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        finally:
            await self._end_streams(conn)
            self._conns.discard(conn)
            if not conn.closing:
                conn.closing = True
                conn.out.put_nowait(None)
            with contextlib.suppress(Exception):
                await sender
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)
            log.debug("control client gone", extra={"peer": conn.peer})

    async def _send_loop(self, conn: _Conn) -> None:
        try:
            while (data := await conn.out.get()) is not None:
                conn.writer.write(data)
                await conn.writer.drain()
        except ConnectionError:
            self._drop(conn)

    async def _read_loop(self, conn: _Conn, reader: asyncio.StreamReader) -> None:
        while not conn.closing:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                if exc.partial.strip():
                    await self._answer(conn, exc.partial)
                return
            except asyncio.LimitOverrunError:
                log.warning("control request over the line limit", extra={"peer": conn.peer})
                conn.out.put_nowait(
                    encode(
                        error_reply(
                            None, "line-too-long", f"a request line is at most {MAX_LINE} bytes"
                        )
                    )
                )
                conn.closing = True
                conn.out.put_nowait(None)
                return
            if not line.strip():
                continue
            streaming = streaming_id(line)
            if streaming is None:
                await self._answer(conn, line)
            else:
                task = asyncio.create_task(self._answer_stream(conn, line, streaming[0]))
                conn.streams.add(task)
                task.add_done_callback(conn.streams.discard)

    async def _answer_stream(self, conn: _Conn, line: bytes, req_id: object) -> None:
        try:
            await self._answer(conn, line)
        except asyncio.CancelledError:
            if not conn.closing:
                conn.out.put_nowait(
                    encode(error_reply(req_id, "cancelled", "cancelled: the client stopped"))
                )

    async def _end_streams(self, conn: _Conn) -> None:
        """The client closed its side or went away: cancel what it was running, and give it
        time to wind down (a cancelled burn still journals its end)."""
        tasks = list(conn.streams)
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=STREAM_CANCEL_WAIT)
            if stuck:
                log.warning(
                    "cancelled control commands did not end",
                    extra={"peer": conn.peer, "commands": len(stuck)},
                )

    async def _answer(self, conn: _Conn, line: bytes) -> None:
        reply = await self._dispatch(conn, line)
        if not conn.closing:
            conn.out.put_nowait(encode(reply))

    async def _dispatch(self, conn: _Conn, line: bytes) -> dict[str, Any]:
        try:
            msg = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return error_reply(None, "bad-json", f"not a JSON line: {exc}")
        if not isinstance(msg, dict):
            return error_reply(
                None, "bad-request", f"a request is a JSON object, not {type(msg).__name__}"
            )
        req_id = msg.get("id")
        if req_id is not None and (not isinstance(req_id, int | str) or isinstance(req_id, bool)):
            return error_reply(None, "bad-request", "'id' must be an integer or a string")
        cmd = msg.get("cmd")
        if not isinstance(cmd, str):
            return error_reply(req_id, "bad-request", "a request needs 'cmd' (a string)")
        if cmd not in COMMANDS:
            known = ", ".join(COMMANDS)
            return error_reply(
                req_id, "unknown-command", f"unknown command {cmd!r}; known: {known}"
            )
        try:
            args = check_args(cmd, msg)
            result = await self._run(conn, cmd, args, req_id)
        except ControlError as exc:
            return error_reply(req_id, exc.code, exc.message)
        except BurnError as exc:
            return error_reply(req_id, exc.code, str(exc))
        except Exception:
            log.exception("control handler failed", extra={"cmd": cmd, "peer": conn.peer})
            return error_reply(req_id, "internal", f"the agent failed to run {cmd}; see its log")
        return {"id": req_id, "ok": True, "result": result}

    async def _run(self, conn: _Conn, cmd: str, args: dict[str, Any], req_id: object) -> Any:
        h = self.handler
        match cmd:
            case "drives":
                return await h.drives()
            case "images":
                return await h.images()
            case "queue":
                return await h.queue()
            case "jobs":
                return await h.jobs()
            case "burn":
                return await h.burn(args["image"], args["drive"])
            case "cancel":
                await h.cancel(args["drive"])
                return {"drive": args["drive"]}
            case "eject":
                await h.eject(args["drive"])
                return {"drive": args["drive"]}
            case "eject_all":
                return {"ejected": await h.eject_all()}
            case "name":
                return await h.name(args["drive"], args["name"].strip())
            case "status":
                return await h.status()
            case "subscribe":
                conn.subscribed = True
                return {"events": list(EVENTS)}
            case "burn_file":
                if self.file_burner is None:
                    raise ControlError("unknown-command", "this agent does not run file burns")

                def emit(event: Event) -> None:
                    if not conn.closing:
                        conn.out.put_nowait(encode({**event, "id": req_id}))

                return await self.file_burner.burn_file(
                    args["image"], args["targets"], args["options"], emit
                )
        raise AssertionError(f"command table and dispatch disagree on {cmd}")  # pragma: no cover
