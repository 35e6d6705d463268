"""Field values of the burn protocol: limits, client types, capabilities, `STATUS` values, and the
checks every field goes through."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Self

from wire.burnproto.errors import BadHash, BadNumber, BadPercent, BadStatus, BadUid, ProtocolError

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
