"""The agent's end of the appliance link: an aiohttp client shell around `wire.link.LinkNode`.

`AgentLink` keeps one token-merge link to the coordinator's `/link` for the life of the agent:
it connects with the appliance credential as `Authorization: Bearer …`, reconnects with jittered
exponential backoff whenever the socket drops, resumes onto the coordinator's old node (or starts
a new link when the grace period has passed) and lets the core replay whatever the coordinator
has not acknowledged, so every payload given to `send` arrives exactly once and in order. It
acks idle traffic on a timer, hands each received payload to `on_message` in order, and reports
its state (`offline`, `connecting`, `online`, `pending`) to `on_state` for the link LED and the
kiosk. A refused credential (HTTP 401) is logged and retried with backoff like any outage; an
appliance that is known but not admitted yet (HTTP 403) is `pending`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp

from wire import link as wl

log = logging.getLogger(__name__)

# How long close() waits for the formal-disconnect frame to leave before closing anyway.
CLOSE_TIMEOUT = 5.0
CONNECT_TIMEOUT = 10.0
HEARTBEAT = 30.0

_jitter = random.SystemRandom()


class LinkState(enum.StrEnum):
    OFFLINE = "offline"
    CONNECTING = "connecting"
    ONLINE = "online"
    PENDING = "pending"


class _Socket:
    """The current WebSocket and its ordered outgoing frames (one writer task drains them)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: deque[str] = deque()
        self.wake = asyncio.Event()
        self.done = False

    def push(self, frames: Iterable[str]) -> None:
        if self.done:
            return
        self.frames.extend(frames)
        if self.frames:
            self.wake.set()

    async def write_loop(self) -> None:
        try:
            while True:
                while self.frames:
                    await self.ws.send_str(self.frames.popleft())
                if self.done:
                    return
                self.wake.clear()
                await self.wake.wait()
        except (ConnectionError, RuntimeError):
            return  # the socket went away; the core keeps every unacked message

    async def flushed(self) -> None:
        self.done = True
        self.wake.set()


class AgentLink:
    def __init__(
        self,
        url: str,
        credential: str,
        *,
        on_message: Callable[[dict[str, Any]], Awaitable[None]],
        on_state: Callable[[LinkState], None] | None = None,
        session: str | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        ack_interval: float = 1.0,
        heartbeat: float | None = HEARTBEAT,
    ) -> None:
        if backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ValueError("backoff needs 0 < backoff_initial <= backoff_max")
        if ack_interval <= 0:
            raise ValueError("ack_interval must be > 0 seconds")
        self.url = url
        self._credential = credential
        self._on_message = on_message
        self._on_state = on_state
        self._session = session
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._ack_interval = ack_interval
        self._heartbeat = heartbeat
        self._node = wl.LinkNode(wl.Role.CLIENT)
        self._state = LinkState.OFFLINE
        self._socket: _Socket | None = None
        self._http: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._closed = False

    # ---- views

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def token(self) -> str | None:
        """The merged token of the current link (None before the first connection)."""
        return self._node.token

    @property
    def unacked(self) -> int:
        """Messages sent that the coordinator has not acknowledged yet."""
        return len(self._node.unacked)

    # ---- the contract

    async def start(self) -> None:
        """Start the background reconnect loop and return at once."""
        if self._task is not None:
            raise RuntimeError("the link was already started")
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)
        )
        self._task = asyncio.create_task(self._run(), name="agent-link")

    async def send(self, payload: dict[str, Any]) -> None:
        """Queue one payload; delivered exactly once, in order, across drops.

        Raises `wire.link.UnackedOverflow` when the unacked bound is hit (nothing queued),
        `wire.link.LinkClosed` after `close()`, `wire.link.LinkError` for a non-JSON payload.
        """
        if self._closed:
            raise wl.LinkClosed("the agent link was closed")
        frames = self._node.send(payload)
        if self._socket is not None:
            self._socket.push(frames)

    async def close(self, *, formal: bool = True) -> None:
        """Formally disconnect (send the merged token) when `formal`, then stop for good."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        sock = self._socket
        if formal and sock is not None and self._node.state is wl.State.CONNECTED:
            sock.push(self._node.disconnect())
            await sock.flushed()
        if sock is not None:
            await sock.ws.close()
        if self._task is not None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await self._task
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        self._set_state(LinkState.OFFLINE)

    # ---- internals

    def _set_state(self, state: LinkState) -> None:
        if state is self._state:
            return
        self._state = state
        log.info("link state", extra={"state": state.value, "url": self.url})
        if self._on_state is not None:
            try:
                self._on_state(state)
            except Exception:
                log.exception("link state callback failed")

    async def _run(self) -> None:
        backoff = self._backoff_initial
        while not self._stop.is_set():
            self._set_state(LinkState.CONNECTING)
            next_state = LinkState.OFFLINE
            refused: int | None = None
            try:
                if await self._connect_once():
                    backoff = self._backoff_initial
            except aiohttp.WSServerHandshakeError as exc:
                refused = exc.status
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("link connection failed", extra={"error": str(exc), "url": self.url})
            if refused == 401:
                # A revoked or unknown credential stays refused until someone re-provisions
                # the box, so this is an error; retrying costs little and heals a fixed server.
                log.error(
                    "coordinator refused the appliance credential",
                    extra={"status": refused, "url": self.url},
                )
            elif refused == 403:
                next_state = LinkState.PENDING
                log.warning("appliance not admitted yet", extra={"status": refused})
            elif refused is not None:
                log.warning("link upgrade refused", extra={"status": refused, "url": self.url})
            if self._stop.is_set():
                return
            self._set_state(next_state)
            delay = _jitter.uniform(backoff / 2, backoff)
            backoff = min(backoff * 2, self._backoff_max)
            try:
                async with asyncio.timeout(delay):
                    await self._stop.wait()
            except TimeoutError:
                pass

    async def _connect_once(self) -> bool:
        """One socket's life; True when the link got connected on it."""
        assert self._http is not None  # noqa: S101 - set by start()
        params = {"session": self._session} if self._session else None
        online = False
        async with self._http.ws_connect(
            self.url,
            headers={"Authorization": f"Bearer {self._credential}"},
            params=params,
            heartbeat=self._heartbeat,
        ) as ws:
            sock = _Socket(ws)
            self._socket = sock
            writer = asyncio.create_task(sock.write_loop(), name="agent-link-writer")
            acker = asyncio.create_task(self._ack_loop(sock), name="agent-link-acks")
            try:
                sock.push(self._node.start())
                async for msg in ws:
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        continue
                    if await self._frame(sock, msg.data):
                        online = True
            finally:
                self._socket = None
                acker.cancel()
                self._node.connection_lost(asyncio.get_running_loop().time())
                await sock.flushed()
                try:
                    async with asyncio.timeout(CLOSE_TIMEOUT):
                        await writer
                except TimeoutError:
                    writer.cancel()
                await asyncio.gather(acker, return_exceptions=True)
        return online

    async def _frame(self, sock: _Socket, frame: str) -> bool:
        events = self._node.receive(frame)
        sock.push(self._node.data_to_send())
        online = False
        for event in events:
            match event:
                case wl.Connected(resumed=resumed):
                    online = True
                    log.info("link connected", extra={"resumed": resumed})
                    self._set_state(LinkState.ONLINE)
                case wl.Message(payload=payload):
                    if not isinstance(payload, dict):
                        log.warning("link payload is not an object; ignored")
                        continue
                    try:
                        await self._on_message(payload)
                    except Exception:
                        log.exception("link message handler failed")
                case wl.Disconnected(unacked=unacked):
                    # The coordinator ended the link: start a new one on the next socket and
                    # carry over what it never acknowledged, so nothing is lost.
                    log.info("coordinator ended the link", extra={"unacked": len(unacked)})
                    self._node = wl.LinkNode(wl.Role.CLIENT)
                    for payload in unacked:
                        self._node.send(payload)
                    await sock.ws.close()
                case wl.ProtocolViolation(reason=reason):
                    log.warning("link protocol violation", extra={"reason": reason})
                case wl.Refused():  # pragma: no cover - only a server refuses sockets
                    pass
        return online

    async def _ack_loop(self, sock: _Socket) -> None:
        while True:
            await asyncio.sleep(self._ack_interval)
            sock.push(self._node.pending_ack())
