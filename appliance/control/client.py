"""`ControlClient`: the asyncio client of the control socket, with request/reply matching, an
event stream and a reconnect helper."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

from appliance.control.commands import encode
from appliance.control.shapes import DEFAULT_SOCKET, MAX_LINE, Event, EventListener

log = logging.getLogger("appliance.control")

# --- client --------------------------------------------------------------------------------


class AgentUnavailable(ConnectionError):
    """The agent's socket is not there, refused us, or the connection dropped."""


class RequestFailed(Exception):
    """The agent answered a request with an error reply."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


_CLOSED: Final[Event] = {"event": "_closed"}


class ControlClient:
    """An asyncio client for the control socket. Requests may run concurrently; replies are
    matched by id. `events()` yields pushed events until the connection drops, then raises
    `AgentUnavailable`. After a drop, `connect()` (or `reconnect()`) starts afresh."""

    def __init__(self, path: Path = DEFAULT_SOCKET, *, timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._ids = itertools.count(1)
        self._read_task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._read_task is not None and not self._read_task.done()

    async def __aenter__(self) -> ControlClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        await self.close()
        try:
            reader, self._writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(self.path), limit=MAX_LINE * 16),
                self.timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise AgentUnavailable(f"cannot reach the agent at {self.path}: {exc}") from exc
        self._events = asyncio.Queue()
        self._read_task = asyncio.create_task(self._read_loop(reader))

    async def reconnect(
        self, *, attempts: int = 20, first_delay: float = 0.05, max_delay: float = 2.0
    ) -> None:
        """Try to connect up to `attempts` times with doubling delays; raise the last failure."""
        delay = first_delay
        for attempt in range(1, attempts + 1):
            try:
                await self.connect()
            except AgentUnavailable:
                if attempt == attempts:
                    raise
                await asyncio.sleep(delay)
                delay = min(max_delay, delay * 2)
            else:
                return

    async def close(self) -> None:
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._read_task
            self._read_task = None
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
            self._writer = None
        self._fail_pending("the connection to the agent was closed")

    def _fail_pending(self, why: str) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(AgentUnavailable(why))
        self._pending.clear()

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    msg = json.loads(line)
                except json.JSONDecodeError:
                    log.warning("agent sent a line that is not JSON; ignoring it")
                    continue
                if not isinstance(msg, dict):
                    continue
                if "event" in msg:
                    self._events.put_nowait(msg)
                    continue
                fut = self._pending.pop(msg.get("id"), None)  # type: ignore[arg-type]
                if fut is None:
                    if msg.get("ok") is False:
                        err = msg.get("error") or {}
                        log.warning("agent reported an error", extra={"error": err})
                    continue
                if not fut.done():
                    if msg.get("ok"):
                        fut.set_result(msg.get("result"))
                    else:
                        err = msg.get("error") or {}
                        fut.set_exception(
                            RequestFailed(str(err.get("code")), str(err.get("message")))
                        )
        except (ConnectionError, ValueError):
            pass  # a reset or an absurd line: the connection is over either way
        finally:
            self._fail_pending("the agent closed the connection")
            self._events.put_nowait(_CLOSED)

    async def request(self, cmd: str, **args: Any) -> Any:
        """Send one command and return its result; raise RequestFailed or AgentUnavailable."""
        req_id, fut = await self._send(cmd, args)
        try:
            return await asyncio.wait_for(fut, self.timeout)
        except TimeoutError as exc:
            raise AgentUnavailable(f"the agent did not answer {cmd} in time") from exc
        finally:
            self._pending.pop(req_id, None)

    async def stream(self, cmd: str, on_event: EventListener, **args: Any) -> Any:
        """Run one streaming command (`STREAMING`) to its end and return its result. Events
        pushed meanwhile go to `on_event` in order; there is no reply timeout (a burn takes
        as long as it takes). `end_input()` from another task asks the agent to cancel it."""
        req_id, fut = await self._send(cmd, args)
        try:
            while not fut.done():
                getter = asyncio.ensure_future(self._events.get())
                try:
                    await asyncio.wait({getter, fut}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    getter.cancel()
                if getter.done() and not getter.cancelled():
                    self._deliver(getter.result(), on_event)
            # Every event the agent sent before its reply is queued by now.
            while not self._events.empty() and self._deliver(self._events.get_nowait(), on_event):
                pass
            return await fut
        finally:
            self._pending.pop(req_id, None)

    def _deliver(self, event: Event, on_event: EventListener) -> bool:
        """Hand one queued event on; False at the end of the connection."""
        if event is _CLOSED:
            self._events.put_nowait(_CLOSED)  # later readers end the same way
            return False
        on_event(event)
        return True

    async def end_input(self) -> None:
        """Close our sending side: the agent cancels the streaming commands we asked for and
        still sends their replies."""
        if self._writer is not None and self._writer.can_write_eof():
            with contextlib.suppress(OSError, RuntimeError):
                self._writer.write_eof()

    async def _send(self, cmd: str, args: dict[str, Any]) -> tuple[int, asyncio.Future[Any]]:
        if self._writer is None or not self.connected:
            raise AgentUnavailable("not connected to the agent")
        req_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        try:
            self._writer.write(encode({"id": req_id, "cmd": cmd, **args}))
            await self._writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            self._pending.pop(req_id, None)
            raise AgentUnavailable(f"lost the agent while sending {cmd}: {exc}") from exc
        return req_id, fut

    async def subscribe(self) -> None:
        await self.request("subscribe")

    async def events(self) -> AsyncIterator[Event]:
        """Pushed events, in order, until the connection drops (then AgentUnavailable)."""
        while True:
            event = await self._events.get()
            if event is _CLOSED:
                self._events.put_nowait(_CLOSED)  # later iterators end the same way
                raise AgentUnavailable("the agent closed the connection")
            yield event
