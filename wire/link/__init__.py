"""The token-merge link between a Pi appliance and the coordinator (seed 003), as a sans-I/O core.

An appliance agent keeps one long-lived link to the coordinator over a WebSocket at `/link`; this
package is the whole protocol of that link and nothing else: no sockets, no asyncio, no clock
(every call that needs the time takes a float `now`). A `LinkNode` is one end of a link, in the
client role (the agent) or the server role (the coordinator); `LinkServer` is the coordinator's
registry of server nodes, keyed by merged token, that gives every new socket a temporary node,
hands the socket over to the old node when a client resumes, refuses (close code 1008) a socket
that presents the token of a node whose socket is still open, and forgets nodes whose socket has
been closed for longer than the grace period. Sockets are opaque ids chosen by the shell.
Text frames go in through `receive()`, which returns typed events (frozen dataclasses, a
`ProtocolViolation` for anything malformed or out of place, never an exception); frames to send
come back from `start()`, `send()`, `disconnect()` and `pending_ack()`, and frames that a
received frame provokes (a confirm, resends, a bare ack) wait in one FIFO outbox that
`data_to_send()` drains; every method returning frames drains that same outbox, so order is
kept. Handshake, confirm and formal-disconnect frames hold only a token (32 lowercase hex
chars, or 64 for a merged token, the two tokens sorted and concatenated); application frames
are JSON `{"s": seq, "a": ack, "m": payload}` and a bare ack is `{"a": ack}`. On top of the
seed, every message is numbered and kept until the peer acks it (cumulatively, piggybacked on
data, or as a bare ack after `ack_every` unacked receipts or when `pending_ack()` is asked), and
resent after a resume; the receiver drops duplicates, so across any number of drops within the
grace period each message is delivered exactly once and in order. When the grace period has
passed, the seed makes the resume a new connection: the client's old merged token stands in for
its local token, and the new merged token is the first half of the old one joined with the
server's fresh token (the seed's `AAAABBBB` + `DDDD` → `AAAADDDD`), so it stays 64 chars. The
client's unacked messages carry over, renumbered from 1, because an agent's reports must not be
lost; the old server node and its received state are gone, so those in-flight messages are
delivered at least once (the coordinator may see one again), while the server's own unacked
messages are handed back to the coordinator in the `Disconnected` event of the expiry.

Its parts: `frames` (tokens, states, events, errors and frame parsing), `node` (`LinkNode`) and
`server` (`LinkServer`). Import from the package: `from wire import link as wl`.
"""

from __future__ import annotations

from wire.link.frames import (
    CLOSE_STALE_SOCKET as CLOSE_STALE_SOCKET,
)
from wire.link.frames import (
    DEFAULT_ACK_EVERY as DEFAULT_ACK_EVERY,
)
from wire.link.frames import (
    DEFAULT_GRACE as DEFAULT_GRACE,
)
from wire.link.frames import (
    DEFAULT_MAX_UNACKED as DEFAULT_MAX_UNACKED,
)
from wire.link.frames import (
    FRAMES as FRAMES,
)
from wire.link.frames import (
    MERGED_CHARS as MERGED_CHARS,
)
from wire.link.frames import (
    STATES as STATES,
)
from wire.link.frames import (
    TOKEN_CHARS as TOKEN_CHARS,
)
from wire.link.frames import (
    Connected as Connected,
)
from wire.link.frames import (
    Disconnected as Disconnected,
)
from wire.link.frames import (
    Event as Event,
)
from wire.link.frames import (
    FrameKind as FrameKind,
)
from wire.link.frames import (
    JsonValue as JsonValue,
)
from wire.link.frames import (
    LinkBackpressure as LinkBackpressure,
)
from wire.link.frames import (
    LinkClosed as LinkClosed,
)
from wire.link.frames import (
    LinkError as LinkError,
)
from wire.link.frames import (
    Message as Message,
)
from wire.link.frames import (
    ProtocolViolation as ProtocolViolation,
)
from wire.link.frames import (
    Refused as Refused,
)
from wire.link.frames import (
    Role as Role,
)
from wire.link.frames import (
    State as State,
)
from wire.link.frames import (
    UnackedOverflow as UnackedOverflow,
)
from wire.link.frames import (
    merge_tokens as merge_tokens,
)
from wire.link.frames import (
    new_token as new_token,
)
from wire.link.node import (
    LinkNode as LinkNode,
)
from wire.link.server import (
    LinkServer as LinkServer,
)
from wire.link.server import (
    Outbound as Outbound,
)
from wire.link.server import (
    SocketT as SocketT,
)
