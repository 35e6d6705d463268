"""What every agent ⇄ coordinator message is made of: the limits, the error a bad payload raises
(naming the offending field by its dotted path) with its code, and the readers that check one
field each."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeAlias

from wire import burnproto as bp

MAX_DRIVES = 64
MAX_IMAGES = 4096
MAX_TAKES = 10_000
MAX_TEXT = 200
MAX_JOB = 128
MAX_NOTES = 10_000

_HEX32 = re.compile(r"[0-9A-Fa-f]{32}")
_HEX64 = re.compile(r"[0-9A-Fa-f]{64}")

JsonObject: TypeAlias = dict[str, Any]


class ErrorCode(enum.StrEnum):
    """Codes of the coordinator's `error` message (room refusals reuse the burn-protocol codes)."""

    BAD_MESSAGE = "BAD_MESSAGE"  # not an object, a field missing or of the wrong kind
    UNKNOWN_TYPE = "UNKNOWN_TYPE"  # "type" names no message this side accepts
    NO_SESSION = "NO_SESSION"  # no live session for the appliance's show


class AgentMessageError(ValueError):
    """A payload that is not a valid message; `field` names the part at fault."""

    code: ClassVar[ErrorCode] = ErrorCode.BAD_MESSAGE

    def __init__(self, field: str, text: str) -> None:
        super().__init__(f"{field}: {text}" if field else text)
        self.field = field
        self.text = text


class NotAnObject(AgentMessageError):
    """The payload is not a JSON object."""


class UnknownType(AgentMessageError):
    code = ErrorCode.UNKNOWN_TYPE


class MissingField(AgentMessageError):
    """A required field is absent."""


class BadField(AgentMessageError):
    """A field is present with a value of the wrong kind or out of range."""


def shown(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class Reader:
    def __init__(self, obj: Mapping[str, Any], path: str) -> None:
        self.obj = obj
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> Any:
        if key not in self.obj:
            raise MissingField(self.at(key), "required field is missing")
        return self.obj[key]

    def text(self, key: str, *, limit: int = MAX_TEXT, empty: bool = True) -> str:
        value = self.get(key)
        if not isinstance(value, str):
            raise BadField(self.at(key), f"must be a string, not {shown(value)}")
        if len(value) > limit:
            raise BadField(self.at(key), f"at most {limit} characters")
        if not empty and not value:
            raise BadField(self.at(key), "must not be empty")
        return value

    def optional_text(self, key: str, *, limit: int = MAX_TEXT) -> str | None:
        if self.obj.get(key) is None:
            return None
        return self.text(key, limit=limit)

    def integer(self, key: str, *, minimum: int = 0) -> int:
        value = self.get(key)
        if type(value) is not int or value < minimum:
            raise BadField(self.at(key), f"must be an integer >= {minimum}, not {shown(value)}")
        return value

    def optional_integer(self, key: str, *, minimum: int = 0) -> int | None:
        return None if self.obj.get(key) is None else self.integer(key, minimum=minimum)

    def number(self, key: str) -> float:
        value = self.get(key)
        try:
            # JSON allows integers too large for a float; float() then raises OverflowError.
            number = float(value) if type(value) in (int, float) else math.nan
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or number < 0:
            raise BadField(self.at(key), f"must be a number >= 0, not {shown(value)}")
        return number

    def boolean(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            raise BadField(self.at(key), f"must be true or false, not {shown(value)}")
        return value

    def hex32(self, key: str, what: str) -> str:
        value = self.get(key)
        if not isinstance(value, str) or _HEX32.fullmatch(value) is None:
            raise BadField(self.at(key), f"must be {what} (32 hex digits), not {shown(value)}")
        return value.lower()

    def optional_sha256(self, key: str) -> str | None:
        value = self.obj.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or _HEX64.fullmatch(value) is None:
            raise BadField(self.at(key), f"must be a SHA-256 (64 hex digits), not {shown(value)}")
        return value.lower()

    def status(self, key: str) -> bp.StatusValue:
        value = self.text(key, limit=16)
        try:
            return bp.StatusValue.parse(value)
        except bp.ProtocolError as exc:
            raise BadField(self.at(key), exc.text) from None

    def objects(self, key: str, limit: int) -> list[Reader]:
        value = self.get(key)
        if not isinstance(value, list):
            raise BadField(self.at(key), f"must be a list, not {shown(value)}")
        if len(value) > limit:
            raise BadField(self.at(key), f"at most {limit} entries")
        out = []
        for i, item in enumerate(value):
            where = f"{self.at(key)}[{i}]"
            if not isinstance(item, dict):
                raise BadField(where, f"must be an object, not {shown(item)}")
            out.append(Reader(item, where))
        return out

    def obj_at(self, key: str) -> Reader:
        value = self.get(key)
        if not isinstance(value, dict):
            raise BadField(self.at(key), f"must be an object, not {shown(value)}")
        return Reader(value, self.at(key))

    def strings(self, key: str, limit: int) -> list[str]:
        value = self.get(key)
        if not isinstance(value, list):
            raise BadField(self.at(key), f"must be a list, not {shown(value)}")
        if len(value) > limit:
            raise BadField(self.at(key), f"at most {limit} entries")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise BadField(f"{self.at(key)}[{i}]", f"must be a string, not {shown(item)}")
        return value


def hex_list(r: Reader, key: str, limit: int) -> tuple[str, ...]:
    items = r.strings(key, limit)
    for i, item in enumerate(items):
        if _HEX32.fullmatch(item) is None:
            raise BadField(
                f"{r.at(key)}[{i}]", f"must be an md5 (32 hex digits), not {shown(item)}"
            )
    return tuple(m.lower() for m in items)


def capabilities(r: Reader, key: str) -> tuple[bp.Capability, ...]:
    out = []
    for i, word in enumerate(r.strings(key, len(bp.Capability))):
        try:
            out.append(bp.Capability(word))
        except ValueError:
            words = ", ".join(c.value for c in bp.Capability)
            raise BadField(f"{r.at(key)}[{i}]", f"{shown(word)} is not one of {words}") from None
    return tuple(out)


def check(field: str, ok: bool, text: str) -> None:
    if not ok:
        raise BadField(field, text)


@dataclass(frozen=True, slots=True)
class DriveMessage:
    """A message that names one drive and nothing more (`drive_gone`, `open`, `cancel`)."""

    TYPE: ClassVar[str]
    uid: str

    @classmethod
    def from_json(cls, r: Reader) -> Self:
        return cls(r.hex32("uid", "a drive uid"))

    def to_json(self) -> JsonObject:
        return {"type": self.TYPE, "uid": self.uid}
