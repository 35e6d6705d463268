"""The requests a room refuses, each carrying the burn-protocol ERROR code that reports it."""

from __future__ import annotations

from typing import ClassVar

from wire import burnproto as bp


class RoomError(Exception):
    """A request the room refuses; `code` is the burn-protocol ERROR code that reports it."""

    code: ClassVar[bp.ErrorCode] = bp.ErrorCode.NOT_ALLOWED


class NotAllowed(RoomError):
    code = bp.ErrorCode.NOT_ALLOWED


class RoomSuspended(NotAllowed):
    """The session is suspended or unloaded; nobody may join until it is resumed."""


class UnknownMember(RoomError):
    code = bp.ErrorCode.NOT_IDENTIFIED


class UnknownImage(RoomError):
    code = bp.ErrorCode.UNKNOWN_IMAGE


class UnknownClient(RoomError):
    code = bp.ErrorCode.UNKNOWN_CLIENT


class QueueFull(RoomError):
    code = bp.ErrorCode.BAD_NUMBER


class BadName(RoomError):
    code = bp.ErrorCode.BAD_ENTRY


class MissingField(RoomError):
    code = bp.ErrorCode.FIELD_COUNT


class BadRequest(RoomError):
    """A malformed value given through the typed API (the wire decoder catches these first)."""

    def __init__(self, text: str, code: bp.ErrorCode) -> None:
        super().__init__(text)
        self.code = code  # type: ignore[misc]
