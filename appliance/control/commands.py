"""The requests the control socket accepts: `ControlHandler` (what the agent implements), the
commands with their typed arguments checked at the edge, and the error reply (`ControlError`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from appliance.control.shapes import (
    MAX_NAME,
    AgentStatus,
    BurnAccepted,
    DriveView,
    EventListener,
    ImageView,
    QueueEntry,
)

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


def check_args(cmd: str, msg: Mapping[str, Any]) -> dict[str, Any]:
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


def streaming_id(line: bytes) -> tuple[object] | None:
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
