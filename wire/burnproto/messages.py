"""One frozen dataclass per verb of the burn protocol, each parsing and printing its own fields.

Why one module of some 540 lines: it is the catalog of the protocol's verbs, some twenty small
classes of the same shape read as one table (and `MESSAGE_TYPES`/`VERBS` at the end, which the
docs test checks against docs/protocol.md). Split by verb it would scatter that table; framing,
fields and errors already live in their own modules of `wire.burnproto`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Self

from wire.burnproto.errors import (
    BadCapability,
    BadClientType,
    BadEntry,
    BadNumber,
    BadToken,
    BadVersion,
    ProtocolError,
)
from wire.burnproto.fields import (
    _CODE,
    _CREDENTIAL,
    _VERSION,
    IMAGE_PREFIX,
    MAX_CREDENTIAL,
    MAX_NUMBER,
    MAX_QUEUE_COUNT,
    NO_SPEED,
    PROTOCOL_VERSION,
    STATS_TOTAL,
    Capability,
    ClientType,
    StatusValue,
    _md5,
    _number,
    _set,
    _shown,
    _uid,
)


class _Message:
    """Shared shape of every verb: its name, its field counts, and its fields as text."""

    __slots__ = ()
    VERB: ClassVar[str]
    # Fields after the verb: (fewest, most); most None = any number.
    ARITY: ClassVar[tuple[int, int | None]] = (0, 0)

    @classmethod
    def _from_args(cls, args: list[str]) -> Self:
        return cls()

    def _args(self) -> list[str]:
        return []


@dataclass(frozen=True, slots=True)
class Ident(_Message):
    """Server greeting: `IDENT\\tV1`."""

    VERB: ClassVar[str] = "IDENT"
    ARITY: ClassVar[tuple[int, int | None]] = (1, 1)
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        _check_version(self.version)

    @classmethod
    def _from_args(cls, args: list[str]) -> Self:
        return cls(_parse_version(args[0]))

    def _args(self) -> list[str]:
        return [f"V{self.version}"]


def _check_version(version: int) -> None:
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= 9999:
        raise BadVersion(f"protocol version must be an integer 1..9999, not {version!r}")


def _parse_version(text: str) -> int:
    match = _VERSION.fullmatch(text)
    if match is None:
        raise BadVersion(f"{_shown(text)} is not a protocol version like V1")
    return int(match.group(1))


@dataclass(frozen=True, slots=True)
class Id(_Message):
    """Client answer to the greeting: `ID\\tV1\\t<TYPE>\\t<uid>[\\t<credential>]`.

    The credential is an opaque token (1..512 visible ASCII characters) the listener checks
    before it lets a client act as BURNER or COMMAND; it is kept out of `repr`.
    """

    VERB: ClassVar[str] = "ID"
    ARITY: ClassVar[tuple[int, int | None]] = (3, 4)
    client_type: ClientType
    uid: str
    credential: str | None = field(default=None, repr=False)
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        _check_version(self.version)
        given: object = self.client_type  # callers may pass the plain string
        if not isinstance(given, ClientType):
            _set(self, "client_type", _client_type(str(given)))
        _set(self, "uid", _uid(self.uid))
        if self.credential is not None and (
            not isinstance(self.credential, str) or _CREDENTIAL.fullmatch(self.credential) is None
        ):
            # Never echo the value: it is a secret, even when malformed.
            raise BadToken(
                f"the credential must be 1..{MAX_CREDENTIAL} visible ASCII characters (no spaces)"
            )

    @classmethod
    def _from_args(cls, args: list[str]) -> Self:
        credential = args[3] if len(args) == 4 else None
        return cls(_client_type(args[1]), args[2], credential, _parse_version(args[0]))

    def _args(self) -> list[str]:
        out = [f"V{self.version}", self.client_type.value, self.uid]
        if self.credential is not None:
            out.append(self.credential)
        return out


def _client_type(text: str) -> ClientType:
    try:
        return ClientType(text)
    except ValueError:
        raise BadClientType(
            f"{_shown(text)} is not a client type (BURNER, DISPLAY, COMMAND)"
        ) from None


@dataclass(frozen=True, slots=True)
class Capab(_Message):
    """Server asks a client what it can do: `CAPAB`."""

    VERB: ClassVar[str] = "CAPAB"


@dataclass(frozen=True, slots=True)
class Cap(_Message):
    """What a client can do: `CAP\\t<capability>...\\tIMG:<md5>...` (any order on input)."""

    VERB: ClassVar[str] = "CAP"
    ARITY: ClassVar[tuple[int, int | None]] = (0, None)
    capabilities: tuple[Capability, ...] = ()
    images: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _set(self, "capabilities", tuple(_capability(str(c)) for c in self.capabilities))
        _set(self, "images", tuple(_md5(m) for m in self.images))

    @classmethod
    def _from_args(cls, args: list[str]) -> Self:
        caps: list[Capability] = []
        images: list[str] = []
        for token in args:
            if token.startswith(IMAGE_PREFIX):
                images.append(token[len(IMAGE_PREFIX) :])
            else:
                caps.append(_capability(token))
        return cls(tuple(caps), tuple(images))

    def _args(self) -> list[str]:
        return [c.value for c in self.capabilities] + [IMAGE_PREFIX + m for m in self.images]


def _capability(text: str) -> Capability:
    try:
        return Capability(text)
    except ValueError:
        raise BadCapability(
            f"{_shown(text)} is not a capability (BURNCDR, BURNDVDR, BURNBDR, BLOCK, IMG:<md5>)"
        ) from None


@dataclass(frozen=True, slots=True)
class Status(_Message):
    """A burner's state: `STATUS\\t<IDLE|n%|MD5PASS|MD5FAIL|TRAYOPEN|AVAIL|EMPTY>`."""

    VERB: ClassVar[str] = "STATUS"
    ARITY: ClassVar[tuple[int, int | None]] = (1, 1)
    value: StatusValue

    @classmethod
    def _from_args(cls, args: list[str]) -> Self:
        return cls(StatusValue.parse(args[0]))

    def _args(self) -> list[str]:
        return [str(self.value)]


@dataclass(frozen=True, slots=True)
class _HashMessage(_Message):
    md5: str

    ARITY: ClassVar[tuple[int, int | None]] = (1, 1)

    def __post_init__(self) -> None:
        _set(self, "md5", _md5(self.md5))

    @classmethod
    def _from_args(cls, args: list[str]) -> Self:
        return cls(args[0])

    def _args(self) -> list[str]:
        return [self.md5]


@dataclass(frozen=True, slots=True)
class Burn(_HashMessage):
    """Server tells a burner to burn an image: `BURN\\t<md5>`."""

    VERB: ClassVar[str] = "BURN"


@dataclass(frozen=True, slots=True)
class Open(_Message):
    """Open a tray. Server to burner: `OPEN` (open your own tray). Command to server:
    `OPEN\\t<uid>` (open that burner's tray, so a person can find the physical box)."""

    VERB: ClassVar[str] = "OPEN"
    ARITY: ClassVar[tuple[int, int | None]] = (0, 1)
    uid: str | None = None

    def __post_init__(self) -> None:
        if self.uid is not None:
            _set(self, "uid", _uid(self.uid))

    @classmethod
    def _from_args(cls, args: list[str]) -> Self:
        return cls(args[0] if args else None)

    def _args(self) -> list[str]:
        return [] if self.uid is None else [self.uid]


@dataclass(frozen=True, slots=True)
class WhatIs(_HashMessage):
    """Ask what an image is: `WHATIS\\t<md5>`; answered (not necessarily at once) by `INFO`."""

    VERB: ClassVar[str] = "WHATIS"


@dataclass(frozen=True, slots=True)
class Info(_Message):
    """`INFO\\t<md5>\\t<name>\\t<size in bytes>\\t<description>`; the description is free text."""

    VERB: ClassVar[str] = "INFO"
    ARITY: ClassVar[tuple[int, int | None]] = (4, 4)
    md5: str
    name: str
    size: int
    description: str = ""

    def __post_init__(self) -> None:
        _set(self, "md5", _md5(self.md5))
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise BadNumber(f"image size must be a non-negative integer, not {self.size!r}")
        if self.size >= 10**19:
            raise BadNumber(f"image size {self.size} is out of range")

    @classmethod
    def _from_args(cls, args: list[str]) -> Self:
        return cls(args[0], args[1], _number(args[2], "image size"), args[3])

    def _args(self) -> list[str]:
        return [self.md5, self.name, str(self.size), self.description]


@dataclass(frozen=True, slots=True)
class Queue(_Message):
    """Queue `count` discs of an image: `QUEUE\\t<md5>[\\t<count>]` (count 1 is not sent)."""

    VERB: ClassVar[str] = "QUEUE"
    ARITY: ClassVar[tuple[int, int | None]] = (1, 2)
    md5: str
    count: int = 1

    def __post_init__(self) -> None:
        _set(self, "md5", _md5(self.md5))
        if (
            not isinstance(self.count, int)
            or isinstance(self.count, bool)
            or not 1 <= self.count <= MAX_QUEUE_COUNT
        ):
            raise BadNumber(f"queue count must be 1..{MAX_QUEUE_COUNT}, not {self.count!r}")

    @classmethod
    def _from_args(cls, args: list[str]) -> Self:
        count = _number(args[1], "queue count") if len(args) == 2 else 1
        return cls(args[0], count)

    def _args(self) -> list[str]:
        return [self.md5] if self.count == 1 else [self.md5, str(self.count)]


@dataclass(frozen=True, slots=True)
class QOk(_Message):
    """Server accepted a `QUEUE`: `QOK`."""

    VERB: ClassVar[str] = "QOK"


@dataclass(frozen=True, slots=True)
class QReport(_Message):
    """Ask the server for its queue: `QREPORT`."""

    VERB: ClassVar[str] = "QREPORT"


@dataclass(frozen=True, slots=True)
class QList(_Message):
    """The queue, first to burn first: `QLIST\\t<md5>\\t<md5>...` (no field when empty)."""

    VERB: ClassVar[str] = "QLIST"
    ARITY: ClassVar[tuple[int, int | None]] = (0, None)
    md5s: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _set(self, "md5s", tuple(_md5(m) for m in self.md5s))

    @classmethod
    def _from_args(cls, args: list[str]) -> Self:
        return cls(tuple(args))

    def _args(self) -> list[str]:
        return list(self.md5s)


@dataclass(frozen=True, slots=True)
class SReport(_Message):
    """Ask the server for every burner's status: `SREPORT`."""

    VERB: ClassVar[str] = "SREPORT"


@dataclass(frozen=True, slots=True)
class SListEntry:
    """One burner in an `SLIST`: travels as the field `<uid>=<friendly name>=<status>`."""

    uid: str
    name: str
    status: StatusValue

    def __post_init__(self) -> None:
        _set(self, "uid", _uid(self.uid))

    @classmethod
    def parse(cls, text: str) -> Self:
        # uid and status never contain "=", so the name may: split at the first and last one.
        uid, sep, rest = text.partition("=")
        name, sep2, status = rest.rpartition("=")
        if not sep or not sep2:
            raise BadEntry(f"{_shown(text)} is not a burner entry like <uid>=<name>=<status>")
        return cls(uid, name, StatusValue.parse(status))

    def __str__(self) -> str:
        return f"{self.uid}={self.name}={self.status}"


@dataclass(frozen=True, slots=True)
class SList(_Message):
    """Every burner's status: `SLIST\\t<uid>=<name>=<status>...` (no field when none)."""

    VERB: ClassVar[str] = "SLIST"
    ARITY: ClassVar[tuple[int, int | None]] = (0, None)
    entries: tuple[SListEntry, ...] = ()

    def __post_init__(self) -> None:
        _set(self, "entries", tuple(self.entries))

    @classmethod
    def _from_args(cls, args: list[str]) -> Self:
        return cls(tuple(SListEntry.parse(a) for a in args))

    def _args(self) -> list[str]:
        return [str(e) for e in self.entries]


@dataclass(frozen=True, slots=True)
class AskCapab(_Message):
    """A display or command asks the server what the fleet can do: `ASKCAPAB` (reply: `CAP`)."""

    VERB: ClassVar[str] = "ASKCAPAB"


@dataclass(frozen=True, slots=True)
class Name(_Message):
    """Give a burner a friendly name: `NAME\\t<uid>\\t<friendly>` (empty name clears it)."""

    VERB: ClassVar[str] = "NAME"
    ARITY: ClassVar[tuple[int, int | None]] = (2, 2)
    uid: str
    friendly: str

    def __post_init__(self) -> None:
        _set(self, "uid", _uid(self.uid))

    @classmethod
    def _from_args(cls, args: list[str]) -> Self:
        return cls(args[0], args[1])

    def _args(self) -> list[str]:
        return [self.uid, self.friendly]


@dataclass(frozen=True, slots=True)
class QClear(_Message):
    """Empty the queue: `QCLEAR` (answered by `QOK`)."""

    VERB: ClassVar[str] = "QCLEAR"


@dataclass(frozen=True, slots=True)
class Stats(_Message):
    """Statistics pushed to displays and commands:
    `STATS\\t<uid>\\t<burned>\\t<failed>\\t<mean bytes/s>` for one burner, or with `*` in
    place of the uid for the session totals. `uid` None means the totals; `mean_speed` is the
    mean write speed (bytes per second) over passed burns of a known size, None (`-` on the
    wire) while there is none."""

    VERB: ClassVar[str] = "STATS"
    ARITY: ClassVar[tuple[int, int | None]] = (4, 4)
    uid: str | None
    burned: int
    failed: int
    mean_speed: int | None = None

    def __post_init__(self) -> None:
        if self.uid is not None:
            _set(self, "uid", _uid(self.uid))
        _check_count(self.burned, "burned count")
        _check_count(self.failed, "failed count")
        if self.mean_speed is not None:
            _check_count(self.mean_speed, "mean speed")

    @property
    def is_total(self) -> bool:
        return self.uid is None

    @classmethod
    def _from_args(cls, args: list[str]) -> Self:
        uid = None if args[0] == STATS_TOTAL else args[0]
        speed = None if args[3] == NO_SPEED else _number(args[3], "mean speed")
        return cls(uid, _number(args[1], "burned count"), _number(args[2], "failed count"), speed)

    def _args(self) -> list[str]:
        speed = NO_SPEED if self.mean_speed is None else str(self.mean_speed)
        return [self.uid or STATS_TOTAL, str(self.burned), str(self.failed), speed]


def _check_count(value: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_NUMBER:
        raise BadNumber(f"{what} must be an integer 0..{MAX_NUMBER}, not {value!r}")


@dataclass(frozen=True, slots=True)
class Error(_Message):
    """`ERROR\\t<code>\\t<text>`; `code` is one of `ERROR_CODES` when we send it, any token
    (letters, digits, `_.-`, at most 64) when a peer does."""

    VERB: ClassVar[str] = "ERROR"
    ARITY: ClassVar[tuple[int, int | None]] = (2, 2)
    code: str
    text: str = ""

    def __post_init__(self) -> None:
        code = str(self.code)
        if _CODE.fullmatch(code) is None:
            raise BadToken(f"{_shown(code)} is not an error code (letters, digits, _ . -)")
        _set(self, "code", code)

    @classmethod
    def _from_args(cls, args: list[str]) -> Self:
        return cls(args[0], args[1])

    def _args(self) -> list[str]:
        return [self.code, self.text]


Message = (
    Ident
    | Id
    | Capab
    | Cap
    | Status
    | Burn
    | Open
    | WhatIs
    | Info
    | Queue
    | QOk
    | QReport
    | QList
    | SReport
    | SList
    | AskCapab
    | Name
    | QClear
    | Stats
    | Error
)
Event = Message | ProtocolError

MESSAGE_TYPES: tuple[type[Message], ...] = (
    Ident,
    Id,
    Capab,
    Cap,
    Status,
    Burn,
    Open,
    WhatIs,
    Info,
    Queue,
    QOk,
    QReport,
    QList,
    SReport,
    SList,
    AskCapab,
    Name,
    QClear,
    Stats,
    Error,
)
VERBS: tuple[str, ...] = tuple(cls.VERB for cls in MESSAGE_TYPES)
_BY_VERB: dict[str, type[Message]] = {cls.VERB: cls for cls in MESSAGE_TYPES}


def ErrorReply(error: ProtocolError) -> Error:
    """The `ERROR` message a server sends back for a decode error (named like the message it
    builds, so `encode(ErrorReply(event))` reads as what goes on the wire)."""
    return Error(error.code.value, error.text.replace("\t", " "))
