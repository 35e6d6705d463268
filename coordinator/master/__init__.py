"""Session master: live burn sessions (rooms), their queue and dispatch, persisted in master.db."""

from coordinator.master.master import (
    Catalog,
    ChangeHook,
    Deliver,
    Master,
    PlacedElsewhere,
    UnknownSession,
)
from coordinator.master.room import (
    CancelBurn,
    CredentialExpiring,
    DispatchPolicy,
    ImageInfo,
    Kiosk,
    LinkState,
    Member,
    MemberKind,
    Payload,
    Room,
    RoomError,
    SessionClosed,
    Superseded,
)

__all__ = [
    "CancelBurn",
    "Catalog",
    "ChangeHook",
    "CredentialExpiring",
    "Deliver",
    "DispatchPolicy",
    "ImageInfo",
    "Kiosk",
    "LinkState",
    "Master",
    "Member",
    "MemberKind",
    "Payload",
    "PlacedElsewhere",
    "Room",
    "RoomError",
    "SessionClosed",
    "Superseded",
    "UnknownSession",
]
