"""The agent's control API: a JSON-lines Unix socket for the kiosk and `burnstand-agent status`.

The agent owns the drives; the kiosk is a separate process so a UI crash never stops a burn, and
this socket is the only thing between them. Each request is one JSON object on one line,
`{"id": n, "cmd": "...", ...args}`, answered by `{"id": n, "ok": true, "result": ...}` or
`{"id": n, "ok": false, "error": {"code": "...", "message": "..."}}`; a client that sent
`subscribe` also receives pushed `{"event": "...", ...}` lines. The server validates every
request at the edge and hands typed arguments to a `ControlHandler` (the agent implements it);
no malformed request, handler bug or vanished client takes the server down. `ControlClient` is
the matching asyncio client with request/reply matching, an event stream and a reconnect helper.

The package: `shapes` (limits, JSON shapes, events, media sense), `commands` (the handler
interface, argument checks, error replies), `server` and `client`. Everything is imported from
`appliance.control` itself, which is also the only door the kiosk has to the drive vocabulary.
"""

from appliance.control.client import (
    AgentUnavailable,
    ControlClient,
    RequestFailed,
)
from appliance.control.commands import (
    COMMANDS,
    ERROR_CODES,
    STREAM_CANCEL_WAIT,
    STREAMING,
    ControlError,
    ControlHandler,
    FileBurner,
    encode,
    error_reply,
)
from appliance.control.server import (
    ControlServer,
)
from appliance.control.shapes import (
    DEFAULT_SOCKET,
    EVENT_QUEUE_LIMIT,
    EVENTS,
    MAX_LINE,
    MAX_NAME,
    MEDIA_CAPACITY,
    SOCKET_GROUP,
    SOCKET_MODE,
    WHY_NOT_OFFERED,
    AgentStatus,
    BurnAccepted,
    DriveKind,
    DriveState,
    DriveView,
    Event,
    EventListener,
    ImageView,
    JobView,
    Listeners,
    NoMedia,
    Phase,
    QueueEntry,
    ResultView,
    fits,
    media_for_size,
    unpacked_size,
    why_not_offered,
)

__all__ = [
    "COMMANDS",
    "DEFAULT_SOCKET",
    "ERROR_CODES",
    "EVENTS",
    "EVENT_QUEUE_LIMIT",
    "MAX_LINE",
    "MAX_NAME",
    "MEDIA_CAPACITY",
    "SOCKET_GROUP",
    "SOCKET_MODE",
    "STREAMING",
    "STREAM_CANCEL_WAIT",
    "WHY_NOT_OFFERED",
    "AgentStatus",
    "AgentUnavailable",
    "BurnAccepted",
    "ControlClient",
    "ControlError",
    "ControlHandler",
    "ControlServer",
    "DriveKind",
    "DriveState",
    "DriveView",
    "Event",
    "EventListener",
    "FileBurner",
    "ImageView",
    "JobView",
    "Listeners",
    "NoMedia",
    "Phase",
    "QueueEntry",
    "RequestFailed",
    "ResultView",
    "encode",
    "error_reply",
    "fits",
    "media_for_size",
    "unpacked_size",
    "why_not_offered",
]
