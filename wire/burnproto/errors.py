"""Typed errors of the burn protocol: each decode error carries the `ERROR` code sent back."""

from __future__ import annotations

import enum
from typing import ClassVar


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
