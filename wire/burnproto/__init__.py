"""The 'Buntu Stand burn protocol (seed 004) as a sans-I/O core: bytes in, typed events out.

Burners, displays and command frontends speak a small text protocol to the burn-protocol listener:
UTF-8, fields split by TAB, each message ended by a blank line (CRLF CRLF). This package knows the
framing, the escaping of blank lines inside free text, and one frozen dataclass per verb; a
`Decoder` per connection turns received bytes into those messages (or into typed `ProtocolError`
events for malformed frames, after which it keeps decoding), and `encode` turns a message back
into the bytes to send. It never opens a socket or touches asyncio, so the coordinator listener,
a burner client and the tests all drive it the same way. docs/protocol.md is the user-facing
reference of the same rules.

Its parts: `errors` (the typed decode errors and their `ERROR` codes), `fields` (limits and field
values), `messages` (one class per verb) and `framing` (`encode`, `parse_frame`, `Decoder`). Import
from the package: `from wire import burnproto as bp`.
"""

from __future__ import annotations

from wire.burnproto.errors import (
    ERROR_CODES as ERROR_CODES,
)
from wire.burnproto.errors import (
    BadCapability as BadCapability,
)
from wire.burnproto.errors import (
    BadClientType as BadClientType,
)
from wire.burnproto.errors import (
    BadEntry as BadEntry,
)
from wire.burnproto.errors import (
    BadHash as BadHash,
)
from wire.burnproto.errors import (
    BadNumber as BadNumber,
)
from wire.burnproto.errors import (
    BadPercent as BadPercent,
)
from wire.burnproto.errors import (
    BadStatus as BadStatus,
)
from wire.burnproto.errors import (
    BadToken as BadToken,
)
from wire.burnproto.errors import (
    BadUid as BadUid,
)
from wire.burnproto.errors import (
    BadUtf8 as BadUtf8,
)
from wire.burnproto.errors import (
    BadVersion as BadVersion,
)
from wire.burnproto.errors import (
    DecoderClosedError as DecoderClosedError,
)
from wire.burnproto.errors import (
    EmptyFrame as EmptyFrame,
)
from wire.burnproto.errors import (
    EncodeError as EncodeError,
)
from wire.burnproto.errors import (
    ErrorCode as ErrorCode,
)
from wire.burnproto.errors import (
    FieldCount as FieldCount,
)
from wire.burnproto.errors import (
    FrameTooLarge as FrameTooLarge,
)
from wire.burnproto.errors import (
    ProtocolError as ProtocolError,
)
from wire.burnproto.errors import (
    Truncated as Truncated,
)
from wire.burnproto.errors import (
    UnknownVerb as UnknownVerb,
)
from wire.burnproto.fields import (
    IDLE_STATUS_INTERVAL as IDLE_STATUS_INTERVAL,
)
from wire.burnproto.fields import (
    IMAGE_PREFIX as IMAGE_PREFIX,
)
from wire.burnproto.fields import (
    MAX_CREDENTIAL as MAX_CREDENTIAL,
)
from wire.burnproto.fields import (
    MAX_FRAME as MAX_FRAME,
)
from wire.burnproto.fields import (
    MAX_NUMBER as MAX_NUMBER,
)
from wire.burnproto.fields import (
    MAX_QUEUE_COUNT as MAX_QUEUE_COUNT,
)
from wire.burnproto.fields import (
    NO_SPEED as NO_SPEED,
)
from wire.burnproto.fields import (
    PROTOCOL_VERSION as PROTOCOL_VERSION,
)
from wire.burnproto.fields import (
    STATS_TOTAL as STATS_TOTAL,
)
from wire.burnproto.fields import (
    TERMINATOR as TERMINATOR,
)
from wire.burnproto.fields import (
    Capability as Capability,
)
from wire.burnproto.fields import (
    ClientType as ClientType,
)
from wire.burnproto.fields import (
    StatusKind as StatusKind,
)
from wire.burnproto.fields import (
    StatusValue as StatusValue,
)
from wire.burnproto.framing import (
    Decoder as Decoder,
)
from wire.burnproto.framing import (
    encode as encode,
)
from wire.burnproto.framing import (
    escape_field as escape_field,
)
from wire.burnproto.framing import (
    parse_frame as parse_frame,
)
from wire.burnproto.framing import (
    unescape_field as unescape_field,
)
from wire.burnproto.messages import (
    MESSAGE_TYPES as MESSAGE_TYPES,
)
from wire.burnproto.messages import (
    VERBS as VERBS,
)
from wire.burnproto.messages import (
    AskCapab as AskCapab,
)
from wire.burnproto.messages import (
    Burn as Burn,
)
from wire.burnproto.messages import (
    Cap as Cap,
)
from wire.burnproto.messages import (
    Capab as Capab,
)
from wire.burnproto.messages import (
    Error as Error,
)
from wire.burnproto.messages import (
    ErrorReply as ErrorReply,
)
from wire.burnproto.messages import (
    Event as Event,
)
from wire.burnproto.messages import (
    Id as Id,
)
from wire.burnproto.messages import (
    Ident as Ident,
)
from wire.burnproto.messages import (
    Info as Info,
)
from wire.burnproto.messages import (
    Message as Message,
)
from wire.burnproto.messages import (
    Name as Name,
)
from wire.burnproto.messages import (
    Open as Open,
)
from wire.burnproto.messages import (
    QClear as QClear,
)
from wire.burnproto.messages import (
    QList as QList,
)
from wire.burnproto.messages import (
    QOk as QOk,
)
from wire.burnproto.messages import (
    QReport as QReport,
)
from wire.burnproto.messages import (
    Queue as Queue,
)
from wire.burnproto.messages import (
    SList as SList,
)
from wire.burnproto.messages import (
    SListEntry as SListEntry,
)
from wire.burnproto.messages import (
    SReport as SReport,
)
from wire.burnproto.messages import (
    Stats as Stats,
)
from wire.burnproto.messages import (
    Status as Status,
)
from wire.burnproto.messages import (
    WhatIs as WhatIs,
)
from wire.burnuid import client_uid as client_uid
