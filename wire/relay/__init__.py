"""The balancer ⇄ session-master relay (seed 002) and the client WebSocket handshake, sans-I/O.

Browsers open `/ws/<session>` on a balancer and must first send `{"action":"auth","token":…}`;
`ClientHandshake` is the per-connection state machine that turns each received frame into a
typed decision (authenticated, forward this envelope, or close with a code from `CloseCode`) and
synthesizes the join/leave requests the master expects. Between balancer and master every frame
is an envelope — client→master `{token, room, id, message}`, master→client `{room, id, message}`,
broadcast `{room, message}` — or a JSON array of envelopes (a batch, one WebSocket frame). The
`encode_*_json` functions splice already-serialized message text into an envelope so neither side
pays a serialization round trip on the hot path; the `parse_*` functions validate every field and
raise `RelayError` naming the bad one. Room ids are case-insensitive: `normalize_room` is the one
place that folds them. No sockets, no asyncio: the coordinator's balancer and master shells, the
embedded in-memory channel and the tests all drive these functions directly. docs/protocol.md
("Client WebSocket") is the user-facing reference.

Its parts: `envelopes` (actions, codes, errors, envelopes, requests) and `handshake` (auth, init,
`ClientHandshake`). Import from the package: `from wire import relay`.
"""

from __future__ import annotations

from wire.relay.envelopes import (
    ACTIONS,
    AUTH_TIMEOUT,
    CLOSE_CODES,
    MAX_BATCH,
    MAX_ID_LENGTH,
    MAX_ROOM_LENGTH,
    MAX_TOKEN_LENGTH,
    REQUEST_TYPES,
    Action,
    Broadcast,
    ClientEnvelope,
    CloseCode,
    Envelope,
    MasterEnvelope,
    RelayError,
    RequestType,
    ToBalancer,
    check_client_frame,
    encode,
    encode_batch,
    encode_broadcast_json,
    encode_from_client_json,
    encode_join,
    encode_leave,
    encode_to_client_json,
    normalize_room,
    parse_from_client,
    parse_from_master,
    request_message,
    room_request,
)
from wire.relay.handshake import (
    Authenticated,
    ClientHandshake,
    Close,
    Event,
    Forward,
    HandshakeState,
    Init,
    encode_auth,
    encode_init,
    parse_auth,
    parse_init,
)

__all__ = [
    "ACTIONS",
    "AUTH_TIMEOUT",
    "CLOSE_CODES",
    "MAX_BATCH",
    "MAX_ID_LENGTH",
    "MAX_ROOM_LENGTH",
    "MAX_TOKEN_LENGTH",
    "REQUEST_TYPES",
    "Action",
    "Authenticated",
    "Broadcast",
    "ClientEnvelope",
    "ClientHandshake",
    "Close",
    "CloseCode",
    "Envelope",
    "Event",
    "Forward",
    "HandshakeState",
    "Init",
    "MasterEnvelope",
    "RelayError",
    "RequestType",
    "ToBalancer",
    "check_client_frame",
    "encode",
    "encode_auth",
    "encode_batch",
    "encode_broadcast_json",
    "encode_from_client_json",
    "encode_init",
    "encode_join",
    "encode_leave",
    "encode_to_client_json",
    "normalize_room",
    "parse_auth",
    "parse_from_client",
    "parse_from_master",
    "parse_init",
    "request_message",
    "room_request",
]
