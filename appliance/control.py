"""The agent's control API: a JSON-lines Unix socket for the kiosk and `burnstand-agent status`.

The agent owns the drives; the kiosk is a separate process so a UI crash never stops a burn, and
this socket is the only thing between them. Each request is one JSON object on one line,
`{"id": n, "cmd": "...", ...args}`, answered by `{"id": n, "ok": true, "result": ...}` or
`{"id": n, "ok": false, "error": {"code": "...", "message": "..."}}`; a client that sent
`subscribe` also receives pushed `{"event": "...", ...}` lines. The server validates every
request at the edge and hands typed arguments to a `ControlHandler` (the agent implements it);
no malformed request, handler bug or vanished client takes the server down. `ControlClient` is
the matching asyncio client with request/reply matching, an event stream and a reconnect helper.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import itertools
import json
import logging
import os
import stat
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NotRequired, Protocol, TypedDict

from appliance.drives.base import BurnError

# The drive vocabulary the control API speaks, re-exported so the kiosk side (and its demo agent)
# names it through this module only: the kiosk never imports the drives package.
from appliance.drives.base import DriveKind as DriveKind
from appliance.drives.base import DriveState as DriveState
from appliance.drives.base import NoMedia as NoMedia
from appliance.drives.base import Phase as Phase

log = logging.getLogger(__name__)

DEFAULT_SOCKET: Final = Path("/run/burnstand/agent.sock")
SOCKET_GROUP: Final = "burnstand"
SOCKET_MODE: Final = 0o660
MAX_LINE: Final = 64 * 1024
# Events a subscriber may have waiting before it counts as stuck. A stuck subscriber is
# disconnected rather than fed a stream with holes: on reconnect it reloads a full snapshot,
# whereas a silently dropped `finished` event would leave a visitor staring at a stale bar.
EVENT_QUEUE_LIMIT: Final = 256
MAX_NAME: Final = 40

# Media a catalog entry can go on, by the largest image each holds (bytes).
MEDIA_CAPACITY: Final[dict[str, int]] = {
    "CDR": 700 * 1024 * 1024,
    "DVDR": 4_700_000_000,
    "BDR": 25_000_000_000,
}


# --- the wire shapes -----------------------------------------------------------------------


class JobView(TypedDict):
    job_id: str
    image: str  # sha256
    image_name: str
    phase: str  # "write" | "verify"
    done: int
    total: int
    percent: float
    speed: float  # bytes per second
    eta: float | None  # seconds left in this phase


class ResultView(TypedDict):
    job_id: str
    image: str
    image_name: str
    ok: bool
    reason: str | None  # a BurnError code, None on a pass
    message: str


class DriveView(TypedDict):
    uid: str
    name: str  # friendly name set by an operator, else a default from the path
    path: str
    kind: str  # DriveKind value
    capabilities: list[str]  # "CDR", "DVDR", "BDR", "BLOCK"
    capacity: int | None
    state: str  # DriveState value
    job: JobView | None
    last_result: ResultView | None


class ImageView(TypedDict):
    sha256: str
    md5: str
    name: str
    size: int  # the file as delivered
    notes: str
    media: list[str]  # media kinds the image fits on
    # A compressed image: the size it unpacks to (what has to fit on the medium).
    extracted_size: NotRequired[int | None]
    # What the image store found inside: "disk", "iso", "hybrid" or "unknown" (wire.imageformat).
    content: NotRequired[str | None]


class QueueEntry(TypedDict):
    job_id: str
    drive: str
    image: str
    state: str  # JobState value


class AgentStatus(TypedDict):
    version: str
    link: str  # "online" | "connecting" | "offline" | "pending"
    coordinator: str
    cache_used: int
    cache_max: int
    drives: int
    language: NotRequired[str]  # the kiosk's default language (config [kiosk] language)


class BurnAccepted(TypedDict):
    job_id: str
    drive: str


Event = dict[str, Any]
EventListener = Callable[[Event], None]

EVENTS: Final = ("drive", "progress", "finished", "status")


class Listeners:
    """The event listeners of a `ControlHandler`: `add` returns the function that removes one,
    `emit` calls each in turn, and a listener that raises is logged and does not stop the rest."""

    def __init__(self) -> None:
        self._items: list[EventListener] = []

    def add(self, listener: EventListener) -> Callable[[], None]:
        self._items.append(listener)

        def remove() -> None:
            if listener in self._items:
                self._items.remove(listener)

        return remove

    def emit(self, event: Event) -> None:
        for listener in list(self._items):
            try:
                listener(event)
            except Exception:
                log.exception("control event listener failed")


def media_for_size(size: int, content: str | None = None) -> list[str]:
    """Media kinds an image of `size` (unpacked) bytes goes on. Media sense: a disk image
    (partition table, no ISO 9660) boots from USB sticks and SD cards only, a plain ISO from
    discs only; a hybrid ISO, or an image nobody looked inside yet, from either."""
    discs = [kind for kind, cap in MEDIA_CAPACITY.items() if size <= cap]
    if content == "disk":
        return ["BLOCK"]
    if content == "iso":
        return discs
    return [*discs, "BLOCK"]


def unpacked_size(image: ImageView) -> int:
    """What has to fit on the medium: the unpacked image, not the compressed file."""
    return image.get("extracted_size") or image["size"]


def fits(drive: DriveView, image: ImageView) -> bool:
    """Whether `drive` could ever take `image`: a medium kind in common and, when the loaded
    medium's size is known, room for it. Says nothing about whether the drive is free now."""
    if not set(drive["capabilities"]) & set(image["media"]):
        return False
    return drive["capacity"] is None or drive["capacity"] >= unpacked_size(image)


def why_not_offered(drive: DriveView, image: ImageView) -> str | None:
    """Why a drive is not offered for an image because of what the image is (media sense);
    None when it is offered, or when only the size is in the way."""
    if fits(drive, image):
        return None
    content = image.get("content")
    block = "BLOCK" in drive["capabilities"]
    if content == "disk" and not block:
        return WHY_NOT_OFFERED["disk-on-disc"]
    if content == "iso" and block:
        return WHY_NOT_OFFERED["iso-on-block"]
    return None


# Why media sense keeps a burner off an image card, in English; the kiosk shows them translated.
WHY_NOT_OFFERED: Final[dict[str, str]] = {
    "disk-on-disc": "a disk image boots from USB sticks and SD cards, not from discs",
    "iso-on-block": "this ISO has no partition table, so it boots from discs only",
}


# --- errors --------------------------------------------------------------------------------


class ControlError(Exception):
    """A request the agent refuses; becomes an error reply. `code` is stable for programs."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Codes the server itself produces; handlers add their own (not-found, busy, no-drive, ...).
ERROR_CODES: Final = (
    "bad-json",
    "bad-request",
    "unknown-command",
    "bad-args",
    "line-too-long",
    "not-found",
    "busy",
    "no-drive",
    "no-fit",
    "no-media",
    "not-burning",
    "internal",
    "cancelled",  # a streaming command whose client closed its side
    "bad-image",  # burn_file: the agent cannot read the image file
    "bad-target",  # burn_file: a target that cannot be burned (not a device, system disk)
)


class ControlHandler(Protocol):
    """What the agent provides to the control socket. Raise `ControlError` (or a `BurnError`)
    to refuse a request; anything else is logged and answered as `internal`."""

    async def drives(self) -> list[DriveView]: ...

    async def images(self) -> list[ImageView]: ...

    async def queue(self) -> list[QueueEntry]: ...

    async def jobs(self) -> list[dict[str, Any]]:
        """The agent's job journal, oldest first (`burnstand-agent jobs` asks this)."""
        ...

    async def burn(self, image: str, drive: str) -> BurnAccepted:
        """Start burning catalog image `image` (sha256) on `drive` (a uid, or "auto")."""
        ...

    async def cancel(self, drive: str) -> None: ...

    async def eject(self, drive: str) -> None: ...

    async def eject_all(self) -> list[str]:
        """Eject every drive that is not burning; return the uids ejected."""
        ...

    async def name(self, drive: str, name: str) -> DriveView: ...

    async def status(self) -> AgentStatus: ...

    def add_listener(self, listener: EventListener) -> Callable[[], None]:
        """Call `listener` with every event (a dict with an "event" key) until the returned
        function is called. Listeners are called on the event loop and must not block."""
        ...


class FileBurner(Protocol):
    """What runs `burn_file` for the CLI (the agent; see appliance.fileburn). The arguments are
    type-checked here and parsed there; `emit` sends one event to the asking client only."""

    async def burn_file(
        self, image: str, targets: list[Any], options: dict[str, Any], emit: EventListener
    ) -> Any: ...


# --- request validation --------------------------------------------------------------------


@dataclass(frozen=True)
class _Arg:
    kind: type
    describe: str


_STR = _Arg(str, "a string")
_LIST = _Arg(list, "a list")
_OBJECT = _Arg(dict, "an object")
COMMANDS: Final[dict[str, dict[str, _Arg]]] = {
    "drives": {},
    "images": {},
    "queue": {},
    "jobs": {},
    "burn": {"image": _STR, "drive": _STR},
    "cancel": {"drive": _STR},
    "eject": {"drive": _STR},
    "eject_all": {},
    "name": {"drive": _STR, "name": _STR},
    "status": {},
    "subscribe": {},
    "burn_file": {"image": _STR, "targets": _LIST, "options": _OBJECT},
}
# Commands that run until their work is done and push events to the asking client meanwhile.
# Each runs in its own task, so the connection stays readable: a client that closes its side
# (or goes away) cancels what it asked for.
STREAMING: Final = frozenset({"burn_file"})
# How long a cancelled streaming command may take to wind down (a burn blanks its targets).
STREAM_CANCEL_WAIT: Final = 60.0


def _check_args(cmd: str, msg: Mapping[str, Any]) -> dict[str, Any]:
    spec = COMMANDS[cmd]
    extra = sorted(set(msg) - set(spec) - {"id", "cmd"})
    if extra:
        raise ControlError("bad-args", f"{cmd} takes no argument {', '.join(map(repr, extra))}")
    args: dict[str, Any] = {}
    for key, arg in spec.items():
        if key not in msg:
            raise ControlError("bad-args", f"{cmd} needs {key!r} ({arg.describe})")
        value = msg[key]
        if not isinstance(value, arg.kind) or isinstance(value, bool):
            raise ControlError(
                "bad-args", f"{cmd}: {key!r} must be {arg.describe}, not {type(value).__name__}"
            )
        if isinstance(value, str) and not value.strip():
            raise ControlError("bad-args", f"{cmd}: {key!r} must not be empty")
        args[key] = value
    if cmd == "name" and len(args["name"]) > MAX_NAME:
        raise ControlError("bad-args", f"name: a drive name is at most {MAX_NAME} characters")
    return args


def _streaming_id(line: bytes) -> tuple[object] | None:
    """(the request id,) when `line` asks for a streaming command; None for anything else,
    malformed lines included (the ordinary path answers those)."""
    try:
        msg = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(msg, dict) and msg.get("cmd") in STREAMING:
        return (msg.get("id"),)
    return None


def encode(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def error_reply(req_id: object, code: str, message: str) -> dict[str, Any]:
    return {"id": req_id, "ok": False, "error": {"code": code, "message": message}}


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
            streaming = _streaming_id(line)
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
            args = _check_args(cmd, msg)
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
