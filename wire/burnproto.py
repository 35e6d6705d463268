"""The 'Buntu Stand burn protocol (seed 004) as a sans-I/O core: bytes in, typed events out.

Burners, displays and command frontends speak a small text protocol to the burn-protocol listener:
UTF-8, fields split by TAB, each message ended by a blank line (CRLF CRLF). This module knows the
framing, the escaping of blank lines inside free text, and one frozen dataclass per verb; a
`Decoder` per connection turns received bytes into those messages (or into typed `ProtocolError`
events for malformed frames, after which it keeps decoding), and `encode` turns a message back
into the bytes to send. It never opens a socket or touches asyncio, so the coordinator listener,
a burner client and the tests all drive it the same way. docs/protocol.md is the user-facing
reference of the same rules.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass, field
from typing import ClassVar, Self

PROTOCOL_VERSION = 1
TERMINATOR = b"\r\n\r\n"
# Largest frame body (everything before the terminator) a peer may send.
MAX_FRAME = 64 * 1024
# A burner that is not burning repeats its STATUS this often (seconds).
IDLE_STATUS_INTERVAL = 10.0
MAX_QUEUE_COUNT = 9999
MAX_CREDENTIAL = 512
IMAGE_PREFIX = "IMG:"
# The uid field of a `STATS` frame that carries the session totals instead of one burner's.
STATS_TOTAL = "*"
# A `STATS` speed field when no passed burn had a known image size yet.
NO_SPEED = "-"
# Counts and sizes travel as at most 19 decimal digits.
MAX_NUMBER = 10**19 - 1

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_VERSION = re.compile(r"V([1-9][0-9]{0,3})")
_PERCENT = re.compile(r"([0-9]{1,3})%")
_DIGITS = re.compile(r"[0-9]{1,19}")
_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_CREDENTIAL = re.compile(rf"[\x21-\x7e]{{1,{MAX_CREDENTIAL}}}")
_MAC = re.compile(r"[0-9a-f]{2}([:\-]?)[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}")


class ErrorCode(enum.StrEnum):
    """Codes carried by `ERROR` frames; the first group is what the decoder itself reports."""

    EMPTY_FRAME = "EMPTY_FRAME"
    BAD_UTF8 = "BAD_UTF8"
    UNKNOWN_VERB = "UNKNOWN_VERB"
    FIELD_COUNT = "FIELD_COUNT"
    BAD_VERSION = "BAD_VERSION"
    BAD_CLIENT_TYPE = "BAD_CLIENT_TYPE"
    BAD_UID = "BAD_UID"
    BAD_HASH = "BAD_HASH"
    BAD_STATUS = "BAD_STATUS"
    BAD_PERCENT = "BAD_PERCENT"
    BAD_NUMBER = "BAD_NUMBER"
    BAD_CAPABILITY = "BAD_CAPABILITY"
    BAD_ENTRY = "BAD_ENTRY"
    BAD_TOKEN = "BAD_TOKEN"  # noqa: S105 - an error code, not a secret
    FRAME_TOO_LARGE = "FRAME_TOO_LARGE"
    TRUNCATED = "TRUNCATED"
    # Well-formed frames a listener still refuses; the decoder never produces these.
    NOT_IDENTIFIED = "NOT_IDENTIFIED"
    NOT_ALLOWED = "NOT_ALLOWED"
    UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
    UNKNOWN_IMAGE = "UNKNOWN_IMAGE"
    UNKNOWN_CLIENT = "UNKNOWN_CLIENT"
    # A notice, not a refusal: the credential this connection presented is about to expire.
    CREDENTIAL_EXPIRING = "CREDENTIAL_EXPIRING"


ERROR_CODES: tuple[str, ...] = tuple(code.value for code in ErrorCode)


# --------------------------------------------------------------------------------------------
# Errors


class ProtocolError(ValueError):
    """A malformed frame (as a `Decoder` event) or a malformed message field (when raised).

    `frame` holds the raw bytes of the offending frame so nothing is lost; it may contain a
    credential, so it is left out of `repr` and should not be logged.
    """

    code: ClassVar[ErrorCode]

    def __init__(self, text: str, frame: bytes = b"") -> None:
        super().__init__(text)
        self.text = text
        self.frame = frame

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProtocolError) or type(other) is not type(self):
            return NotImplemented
        return (self.text, self.frame) == (other.text, other.frame)

    def __hash__(self) -> int:
        return hash((type(self), self.text, self.frame))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r})"


class EmptyFrame(ProtocolError):
    code = ErrorCode.EMPTY_FRAME


class BadUtf8(ProtocolError):
    code = ErrorCode.BAD_UTF8


class UnknownVerb(ProtocolError):
    code = ErrorCode.UNKNOWN_VERB


class FieldCount(ProtocolError):
    code = ErrorCode.FIELD_COUNT


class BadVersion(ProtocolError):
    code = ErrorCode.BAD_VERSION


class BadClientType(ProtocolError):
    code = ErrorCode.BAD_CLIENT_TYPE


class BadUid(ProtocolError):
    code = ErrorCode.BAD_UID


class BadHash(ProtocolError):
    code = ErrorCode.BAD_HASH


class BadStatus(ProtocolError):
    code = ErrorCode.BAD_STATUS


class BadPercent(ProtocolError):
    code = ErrorCode.BAD_PERCENT


class BadNumber(ProtocolError):
    code = ErrorCode.BAD_NUMBER


class BadCapability(ProtocolError):
    code = ErrorCode.BAD_CAPABILITY


class BadEntry(ProtocolError):
    code = ErrorCode.BAD_ENTRY


class BadToken(ProtocolError):
    code = ErrorCode.BAD_TOKEN


class FrameTooLarge(ProtocolError):
    """The peer sent more than `MAX_FRAME` bytes without a terminator; the decoder is closed."""

    code = ErrorCode.FRAME_TOO_LARGE


class Truncated(ProtocolError):
    """The stream ended in the middle of a frame (reported by `Decoder.end_of_stream`)."""

    code = ErrorCode.TRUNCATED


class EncodeError(ValueError):
    """A message that cannot be put on the wire (a tab in a field, an oversized frame...)."""


class DecoderClosedError(RuntimeError):
    """`Decoder.feed` was called after the decoder closed (frame too large or end of stream)."""


# --------------------------------------------------------------------------------------------
# Field values


class ClientType(enum.StrEnum):
    BURNER = "BURNER"
    DISPLAY = "DISPLAY"
    COMMAND = "COMMAND"


class Capability(enum.StrEnum):
    BURNCDR = "BURNCDR"
    BURNDVDR = "BURNDVDR"
    BURNBDR = "BURNBDR"
    BLOCK = "BLOCK"


class StatusKind(enum.StrEnum):
    IDLE = "IDLE"
    PROGRESS = "PROGRESS"  # travels as `<n>%`, never as the word
    MD5PASS = "MD5PASS"
    MD5FAIL = "MD5FAIL"
    TRAYOPEN = "TRAYOPEN"
    AVAIL = "AVAIL"
    EMPTY = "EMPTY"


@dataclass(frozen=True, slots=True)
class StatusValue:
    """One burner status: a kind, plus the percentage when the kind is `PROGRESS`."""

    kind: StatusKind
    percent: int | None = None

    def __post_init__(self) -> None:
        if self.kind is StatusKind.PROGRESS:
            if (
                not isinstance(self.percent, int)
                or isinstance(self.percent, bool)
                or not 0 <= self.percent <= 100
            ):
                raise BadPercent(f"a burn percentage is an integer 0..100, not {self.percent!r}")
        elif self.percent is not None:
            raise BadStatus(f"status {self.kind.value} carries no percentage")

    @classmethod
    def progress(cls, percent: int) -> Self:
        return cls(StatusKind.PROGRESS, percent)

    @classmethod
    def parse(cls, text: str) -> Self:
        if text.endswith("%"):
            match = _PERCENT.fullmatch(text)
            if match is None:
                raise BadPercent(f"{_shown(text)} is not a percentage like 42%")
            return cls(StatusKind.PROGRESS, int(match.group(1)))
        if text == StatusKind.PROGRESS.value or text not in StatusKind.__members__:
            raise BadStatus(
                f"{_shown(text)} is not a status (IDLE, <n>%, MD5PASS, MD5FAIL, TRAYOPEN, "
                "AVAIL, EMPTY)"
            )
        return cls(StatusKind(text))

    def __str__(self) -> str:
        if self.kind is StatusKind.PROGRESS:
            return f"{self.percent}%"
        return self.kind.value


def _shown(text: str, limit: int = 40) -> str:
    """A field value quoted for an error text, cut so a huge field cannot bloat the reply."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


def _hex32(value: str, error: type[ProtocolError], what: str) -> str:
    if not isinstance(value, str) or _HEX32.fullmatch(value) is None:
        raise error(f"{_shown(str(value))} is not {what} (32 hex digits)")
    return value.lower()


def _md5(value: str) -> str:
    return _hex32(value, BadHash, "an md5 hash")


def _uid(value: str) -> str:
    return _hex32(value, BadUid, "a client uid")


def _number(text: str, what: str) -> int:
    if _DIGITS.fullmatch(text) is None:
        raise BadNumber(f"{what} must be a non-negative decimal integer, not {_shown(text)}")
    return int(text)


def _set(obj: object, name: str, value: object) -> None:
    # Normalising a field of a frozen dataclass in __post_init__.
    object.__setattr__(obj, name, value)


def client_uid(mac: str, device_path: str) -> str:
    """The uid a burner presents in `ID`: md5 of its normalised MAC followed by the device path.

    The MAC is lowercased with `:` separators first, so `AA-BB-...`, `aabb...` and `aa:bb:...`
    give the same uid; two drives in one machine differ by their device path.
    """
    normal = mac.strip().lower()
    if _MAC.fullmatch(normal) is None:
        raise ValueError(f"{mac!r} is not a MAC address like aa:bb:cc:dd:ee:ff")
    if not device_path:
        raise ValueError("device path must not be empty")
    digits = normal.replace(":", "").replace("-", "")
    canonical = ":".join(digits[i : i + 2] for i in range(0, 12, 2))
    data = (canonical + device_path).encode("utf-8", "surrogateescape")
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


# --------------------------------------------------------------------------------------------
# Messages


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


# --------------------------------------------------------------------------------------------
# Framing


def escape_field(text: str) -> str:
    """Make free text safe inside a frame.

    A blank line would end the frame, so after every CRLF a line made only of spaces (including
    the empty line) gets one more space: a blank line travels as `\\r\\n \\r\\n` (seed 004) and
    a line that really was one space travels as two, which keeps the round trip exact.
    """
    if "\r\n" not in text:
        return text
    lines = text.split("\r\n")
    for i in range(1, len(lines)):
        if not lines[i].strip(" "):
            lines[i] += " "
    return "\r\n".join(lines)


def unescape_field(text: str) -> str:
    """Reverse `escape_field`: a space-only line after a CRLF loses one space."""
    if "\r\n" not in text:
        return text
    lines = text.split("\r\n")
    for i in range(1, len(lines)):
        line = lines[i]
        if line and not line.strip(" "):
            lines[i] = line[:-1]
    return "\r\n".join(lines)


def encode(message: Message) -> bytes:
    """The bytes of one frame, terminator included.

    Raises `EncodeError` for a field holding a tab (the protocol has no way to carry one), for
    text that is not valid Unicode, and for a frame larger than `MAX_FRAME`, which the peer
    would refuse.
    """
    parts = [message.VERB]
    for index, arg in enumerate(message._args(), start=1):
        if "\t" in arg:
            raise EncodeError(
                f"{message.VERB} field {index} contains a tab, which the burn protocol "
                "cannot carry; replace it before sending"
            )
        parts.append(escape_field(arg))
    try:
        body = "\t".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodeError(f"{message.VERB} holds text that is not valid Unicode: {exc}") from None
    if len(body) > MAX_FRAME:
        raise EncodeError(f"{message.VERB} frame is {len(body)} bytes; the limit is {MAX_FRAME}")
    return body + TERMINATOR


def parse_frame(frame: bytes) -> Event:
    """One frame body (terminator removed) as a message, or the `ProtocolError` it deserves."""
    try:
        return _parse(frame)
    except ProtocolError as error:
        error.frame = frame
        return error


def _parse(frame: bytes) -> Message:
    if not frame:
        raise EmptyFrame("empty frame: a blank line with no verb before it")
    try:
        text = frame.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadUtf8(f"frame is not valid UTF-8 (byte {exc.start})") from None
    verb, *raw = text.split("\t")
    cls = _BY_VERB.get(verb)
    if cls is None:
        raise UnknownVerb(f"unknown verb {_shown(verb)}")
    fewest, most = cls.ARITY
    if len(raw) < fewest or (most is not None and len(raw) > most):
        # Only fixed-size verbs get here: every variadic verb takes zero fields or more.
        wanted = str(fewest) if fewest == most else f"{fewest} or {most}"
        raise FieldCount(f"{verb} takes {wanted} field(s) after the verb, got {len(raw)}")
    return cls._from_args([unescape_field(a) for a in raw])


def _partial_terminator(buf: bytearray) -> int:
    """How many bytes at the end of `buf` could be the start of a terminator still arriving."""
    if buf.endswith(b"\r\n\r"):
        return 3
    if buf.endswith(b"\r\n"):
        return 2
    if buf.endswith(b"\r"):
        return 1
    return 0


class Decoder:
    """Turns the bytes of one connection into events, whatever way the bytes are split.

    Malformed frames become `ProtocolError` events and decoding goes on with the next frame.
    A frame body over `MAX_FRAME` bytes becomes one `FrameTooLarge` event as soon as that is
    certain (without waiting for a terminator); the decoder is then closed, and any later
    `feed` raises `DecoderClosedError`, because the server answers ERROR and hangs up.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._max_frame = max_frame
        self._buf = bytearray()
        # Where the terminator search resumes, so small feeds never rescan the buffer.
        self._scan = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Bytes held for a frame whose terminator has not arrived yet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Event]:
        if self._closed:
            raise DecoderClosedError("the decoder is closed; the connection should be too")
        buf = self._buf
        buf += data
        events: list[Event] = []
        start = 0
        scan = self._scan
        while (end := buf.find(TERMINATOR, scan)) >= 0:
            if end - start > self._max_frame:
                events.append(self._too_large(end - start))
                return events
            events.append(parse_frame(bytes(buf[start:end])))
            start = scan = end + len(TERMINATOR)
        # At least this much of the pending frame is body, even if a terminator is half-arrived.
        if len(buf) - start - _partial_terminator(buf) > self._max_frame:
            events.append(self._too_large(len(buf) - start - _partial_terminator(buf)))
            return events
        del buf[:start]
        self._scan = max(0, len(buf) - (len(TERMINATOR) - 1))
        return events

    def end_of_stream(self) -> list[Event]:
        """The peer closed: a `Truncated` event if a frame was cut off, and the decoder closes."""
        if self._closed:
            return []
        self._closed = True
        rest = bytes(self._buf)
        self._buf.clear()
        if not rest:
            return []
        text = f"connection ended inside a frame ({len(rest)} bytes without terminator)"
        return [Truncated(text, rest)]

    def _too_large(self, size: int) -> FrameTooLarge:
        self._closed = True
        self._buf.clear()
        return FrameTooLarge(
            f"frame is over {self._max_frame} bytes ({size}+ received); closing the connection"
        )
