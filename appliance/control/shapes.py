"""What the control socket speaks: its limits, the JSON shapes of drives, images, jobs and the
agent's status, the events a subscriber is pushed, and media sense (which drive an image fits)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, NotRequired, TypedDict

# The drive vocabulary the control API speaks, re-exported so the kiosk side (and its demo agent)
# names it through this module only: the kiosk never imports the drives package.
from appliance.drives.base import DriveKind as DriveKind
from appliance.drives.base import DriveState as DriveState
from appliance.drives.base import NoMedia as NoMedia
from appliance.drives.base import Phase as Phase

log = logging.getLogger("appliance.control")

DEFAULT_SOCKET: Final = Path("/run/burnstand/agent.sock")
SOCKET_GROUP: Final = "burnstand"
SOCKET_MODE: Final = 0o660
MAX_LINE: Final = 64 * 1024
# Events a subscriber may have waiting before it counts as stuck. A stuck subscriber is
# disconnected rather than fed a stream with holes: on reconnect it reloads a full snapshot,
# whereas a silently dropped `finished` event would leave a visitor staring at a stale bar.
EVENT_QUEUE_LIMIT: Final = 256
MAX_NAME: Final = 40

# Media a catalog entry can go on, by the largest image each holds (bytes).
MEDIA_CAPACITY: Final[dict[str, int]] = {
    "CDR": 700 * 1024 * 1024,
    "DVDR": 4_700_000_000,
    "BDR": 25_000_000_000,
}


# --- the wire shapes -----------------------------------------------------------------------


class JobView(TypedDict):
    job_id: str
    image: str  # sha256
    image_name: str
    phase: str  # "download" (from the show's kiosks) | "write" | "verify"
    done: int
    total: int
    percent: float
    speed: float  # bytes per second
    eta: float | None  # seconds left in this phase
    # Where the image's bytes came from when other kiosks of the show shared it (sharing on).
    from_peers: NotRequired[int]
    from_origin: NotRequired[int]


class ResultView(TypedDict):
    job_id: str
    image: str
    image_name: str
    ok: bool
    reason: str | None  # a BurnError code, None on a pass
    message: str


class DriveView(TypedDict):
    uid: str
    name: str  # friendly name set by an operator, else a default from the path
    path: str
    kind: str  # DriveKind value
    capabilities: list[str]  # "CDR", "DVDR", "BDR", "BLOCK"
    capacity: int | None
    state: str  # DriveState value
    job: JobView | None
    last_result: ResultView | None


class ImageView(TypedDict):
    sha256: str
    md5: str
    name: str
    size: int  # the file as delivered
    notes: str
    media: list[str]  # media kinds the image fits on
    # A compressed image: the size it unpacks to (what has to fit on the medium).
    extracted_size: NotRequired[int | None]
    # What the image store found inside: "disk", "iso", "hybrid" or "unknown" (wire.imageformat).
    content: NotRequired[str | None]


class QueueEntry(TypedDict):
    job_id: str
    drive: str
    image: str
    state: str  # JobState value


class AgentStatus(TypedDict):
    version: str
    link: str  # "online" | "connecting" | "offline" | "pending"
    coordinator: str
    cache_used: int
    cache_max: int
    drives: int
    language: NotRequired[str]  # the kiosk's default language (config [kiosk] language)


class BurnAccepted(TypedDict):
    job_id: str
    drive: str


Event = dict[str, Any]
EventListener = Callable[[Event], None]

EVENTS: Final = ("drive", "progress", "finished", "status")


class Listeners:
    """The event listeners of a `ControlHandler`: `add` returns the function that removes one,
    `emit` calls each in turn, and a listener that raises is logged and does not stop the rest."""

    def __init__(self) -> None:
        self._items: list[EventListener] = []

    def add(self, listener: EventListener) -> Callable[[], None]:
        self._items.append(listener)

        def remove() -> None:
            if listener in self._items:
                self._items.remove(listener)

        return remove

    def emit(self, event: Event) -> None:
        for listener in list(self._items):
            try:
                listener(event)
            except Exception:
                log.exception("control event listener failed")


def media_for_size(size: int, content: str | None = None) -> list[str]:
    """Media kinds an image of `size` (unpacked) bytes goes on. Media sense: a disk image
    (partition table, no ISO 9660) boots from USB sticks and SD cards only, a plain ISO from
    discs only; a hybrid ISO, or an image nobody looked inside yet, from either."""
    discs = [kind for kind, cap in MEDIA_CAPACITY.items() if size <= cap]
    if content == "disk":
        return ["BLOCK"]
    if content == "iso":
        return discs
    return [*discs, "BLOCK"]


def unpacked_size(image: ImageView) -> int:
    """What has to fit on the medium: the unpacked image, not the compressed file."""
    return image.get("extracted_size") or image["size"]


def fits(drive: DriveView, image: ImageView) -> bool:
    """Whether `drive` could ever take `image`: a medium kind in common and, when the loaded
    medium's size is known, room for it. Says nothing about whether the drive is free now."""
    if not set(drive["capabilities"]) & set(image["media"]):
        return False
    return drive["capacity"] is None or drive["capacity"] >= unpacked_size(image)


def why_not_offered(drive: DriveView, image: ImageView) -> str | None:
    """Why a drive is not offered for an image because of what the image is (media sense);
    None when it is offered, or when only the size is in the way."""
    if fits(drive, image):
        return None
    content = image.get("content")
    block = "BLOCK" in drive["capabilities"]
    if content == "disk" and not block:
        return WHY_NOT_OFFERED["disk-on-disc"]
    if content == "iso" and block:
        return WHY_NOT_OFFERED["iso-on-block"]
    return None


# Why media sense keeps a burner off an image card, in English; the kiosk shows them translated.
WHY_NOT_OFFERED: Final[dict[str, str]] = {
    "disk-on-disc": "a disk image boots from USB sticks and SD cards, not from discs",
    "iso-on-block": "this ISO has no partition table, so it boots from discs only",
}
