"""The messages an appliance agent and the coordinator exchange over their link, as typed
values. The token-merge link (`wire.link`) carries opaque JSON payloads; this module says what
those payloads are. Every payload is a JSON object with a `"type"`: the agent sends `hello` (its
whole state, after every (re)connect), `status`, `result`, `drive_gone` and `extracted`; the
coordinator sends `welcome`, `burn`, `open`, `name`, `catalog`, `error` and `cancel`. Kiosks
sharing images add `have`, `want` and `bad_peer`, answered by `peers` and `peer_token`.
`parse_from_agent` and `parse_from_coordinator` turn a received payload into one frozen
dataclass or raise an `AgentMessageError` subclass whose `field` names the offending field (a
dotted path such as `drives[1].status`) and whose `code` travels back in an `error` message;
`encode` turns a value back into the JSON object. Values are checked where they cross the link
(parsing), so the receiving side refuses what a buggy sender built; senders build from values
they already validated (drive uids, catalog hashes). No I/O here: the coordinator's `/link`
shell and the agent's client shell both use it.

The package: `fields` (limits, errors, field readers), `fromagent`, `fromcoordinator` and
`sharing` (one frozen dataclass per message type); parsing by type and `encode` are here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeAlias, TypeVar

from wire.agentmsg.fields import (
    MAX_DRIVES,
    MAX_IMAGES,
    MAX_JOB,
    MAX_NOTES,
    MAX_TAKES,
    MAX_TEXT,
    AgentMessageError,
    BadField,
    ErrorCode,
    JsonObject,
    MissingField,
    NotAnObject,
    Reader,
    UnknownType,
    shown,
)
from wire.agentmsg.fromagent import (
    ApplianceInfo,
    Drive,
    DriveGone,
    Extracted,
    Hello,
    Result,
    Status,
)
from wire.agentmsg.fromcoordinator import (
    Burn,
    Cancel,
    Catalog,
    Error,
    Name,
    Open,
    Take,
    Welcome,
)
from wire.agentmsg.sharing import (
    MAX_PEERS,
    BadPeer,
    Have,
    Peer,
    Peers,
    PeerToken,
    Want,
)

FromAgent: TypeAlias = Hello | Status | Result | DriveGone | Extracted | Have | Want | BadPeer
FromCoordinator: TypeAlias = (
    Welcome | Burn | Open | Name | Catalog | Error | Cancel | Peers | PeerToken
)
AgentMessage: TypeAlias = FromAgent | FromCoordinator

_FROM_AGENT: dict[str, Callable[[Reader], FromAgent]] = {
    c.TYPE: c.from_json for c in (Hello, Status, Result, DriveGone, Extracted, Have, Want, BadPeer)
}
_FROM_COORDINATOR: dict[str, Callable[[Reader], FromCoordinator]] = {
    c.TYPE: c.from_json
    for c in (Welcome, Burn, Open, Name, Catalog, Error, Cancel, Peers, PeerToken)
}

AGENT_TYPES: tuple[str, ...] = tuple(_FROM_AGENT)
COORDINATOR_TYPES: tuple[str, ...] = tuple(_FROM_COORDINATOR)
TYPES: tuple[str, ...] = AGENT_TYPES + COORDINATOR_TYPES

M = TypeVar("M")


def _parse(payload: object, table: Mapping[str, Callable[[Reader], M]], sender: str) -> M:
    if not isinstance(payload, dict):
        raise NotAnObject("", f"a message is a JSON object, not {type(payload).__name__}")
    kind = payload.get("type")
    if not isinstance(kind, str):
        raise MissingField("type", 'every message names its "type" as a string')
    build = table.get(kind)
    if build is None:
        raise UnknownType("type", f"{shown(kind)} is not one of {', '.join(table)} ({sender})")
    return build(Reader(payload, ""))


def parse_from_agent(payload: object) -> FromAgent:
    """A payload the agent sent, checked; raises an `AgentMessageError` naming the field."""
    return _parse(payload, _FROM_AGENT, "what an agent sends")


def parse_from_coordinator(payload: object) -> FromCoordinator:
    """A payload the coordinator sent, checked; raises an `AgentMessageError` naming the field."""
    return _parse(payload, _FROM_COORDINATOR, "what the coordinator sends")


def encode(message: AgentMessage) -> JsonObject:
    """The JSON object (link payload) of a message."""
    return message.to_json()


__all__ = [
    "AGENT_TYPES",
    "COORDINATOR_TYPES",
    "MAX_DRIVES",
    "MAX_IMAGES",
    "MAX_JOB",
    "MAX_NOTES",
    "MAX_PEERS",
    "MAX_TAKES",
    "MAX_TEXT",
    "TYPES",
    "AgentMessage",
    "AgentMessageError",
    "ApplianceInfo",
    "BadField",
    "BadPeer",
    "Burn",
    "Cancel",
    "Catalog",
    "Drive",
    "DriveGone",
    "Error",
    "ErrorCode",
    "Extracted",
    "FromAgent",
    "FromCoordinator",
    "Have",
    "Hello",
    "JsonObject",
    "MissingField",
    "Name",
    "NotAnObject",
    "Open",
    "Peer",
    "PeerToken",
    "Peers",
    "Result",
    "Status",
    "Take",
    "UnknownType",
    "Want",
    "Welcome",
    "encode",
    "parse_from_agent",
    "parse_from_coordinator",
]
