"""What a room holds: members, burners with their statistics, kiosks, images and the dispatch
policy, plus the limits and checks every request goes through (a bad value is a `BadRequest`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from coordinator.master.room.errors import BadRequest
from wire import burnproto as bp

# Bytes a medium holds; an image larger than that cannot go on it.
MEDIA_CAPACITY: dict[bp.Capability, int] = {
    bp.Capability.BURNCDR: 737_280_000,
    bp.Capability.BURNDVDR: 4_700_372_992,
    bp.Capability.BURNBDR: 25_025_314_816,
}
# A QLIST of this many md5s still fits in one 64 KiB frame (33 bytes per md5).
QLIST_FIT = (bp.MAX_FRAME - 16) // 33
# A CAP answering ASKCAPAB fits one frame with this many `IMG:<md5>` (37 bytes each) beside the
# capability words.
CAP_IMAGES_FIT = (bp.MAX_FRAME - 128) // 37
MAX_NAME = 100
# A kiosk's name and software version as its link carries them (wire.agentmsg limits).
MAX_KIOSK_TEXT = 200
MAX_VERSION = 64
# Seconds a cancelled burner waits for the result of the burn it stopped before it may be given
# another; a box that had nothing left to stop sends no result.
CANCEL_GRACE = 60.0
# Result ids remembered per burner; far more than can be in flight for one drive at a time.
JOBS_KEPT = 64


class MemberKind(enum.StrEnum):
    BURNER = "BURNER"
    DISPLAY = "DISPLAY"
    COMMAND = "COMMAND"
    BROWSER = "BROWSER"


@dataclass(frozen=True, slots=True)
class Member:
    """One connection in the room. A BROWSER may command only when `commands` is set (the
    balancer decides from the person's role); a COMMAND always may."""

    id: str
    kind: MemberKind
    uid: str | None = None
    credential_id: str | None = None
    commands: bool = False
    # The transport can tell this burner to stop a burn (an appliance link can; a seed-004 TCP
    # burner has no such verb).
    cancels: bool = False

    @property
    def may_command(self) -> bool:
        return self.kind is MemberKind.COMMAND or (
            self.kind is MemberKind.BROWSER and self.commands
        )

    @property
    def watches(self) -> bool:
        """Displays, commands and browsers are pushed the queue and burner states."""
        return self.kind is not MemberKind.BURNER


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the catalog knows of an image. `media` lists the capabilities that can produce it;
    when empty it is derived from the size (a 4 GB image does not fit a CD)."""

    md5: str
    name: str
    size: int
    description: str = ""
    media: frozenset[bp.Capability] = frozenset()

    def required_media(self) -> frozenset[bp.Capability]:
        if self.media:
            return self.media
        fits = {cap for cap, limit in MEDIA_CAPACITY.items() if self.size <= limit}
        return frozenset(fits | {bp.Capability.BLOCK})

    def to_info(self) -> bp.Info:
        return bp.Info(self.md5, self.name, self.size, self.description)


@dataclass(slots=True)
class BurnerStats:
    burned: int = 0
    failed: int = 0
    # Verify failures since the last pass; reset by a pass.
    recent_failures: int = 0
    speed_total: float = 0.0
    speed_samples: int = 0
    cancelled: int = 0

    @property
    def mean_speed(self) -> float | None:
        """Bytes per second over the passed burns whose image size was known."""
        return self.speed_total / self.speed_samples if self.speed_samples else None

    @property
    def failure_rate(self) -> float:
        total = self.burned + self.failed
        return self.failed / total if total else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "burned": self.burned,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "recent_failures": self.recent_failures,
            "mean_speed": self.mean_speed,
        }


@dataclass(slots=True)
class Burner:
    uid: str
    name: str = ""
    capabilities: frozenset[bp.Capability] = frozenset()
    images: frozenset[str] = frozenset()
    stats: BurnerStats = field(default_factory=BurnerStats)
    member_id: str | None = None
    status: bp.StatusValue | None = None
    job: str | None = None
    job_started: float | None = None
    # An operator's "common images only" mark; kept across restarts.
    common_only: bool = False
    # The image of a burn cancelled whose result has not come back yet: that result is not
    # counted (the cancel already was), and no new burn starts before it (or CANCEL_GRACE).
    cancelling: str | None = None
    cancelled_at: float = 0.0
    # Ids of the last results counted (a transport's own job ids, e.g. an agent's): a result
    # replayed after a drop or a crash is recognised. Written with the statistics it changed,
    # in one transaction, so a crash cannot keep one without the other.
    jobs: tuple[str, ...] = ()
    # The last burn's failure as a person reads it (None after a pass), and what the transport
    # said of the result being reported now: (reason code, tool detail).
    failure: dict[str, object] | None = None
    reporting: tuple[str | None, str] | None = None
    # The image of a burn in flight when the room's last master stopped, put back in the queue
    # on load: taken out again if the burner's first status says it is still burning.
    resumable: str | None = None
    # The drive said it is at rest (a blank swapped in, say) while its burn here had no result
    # yet: that result, when it comes, leaves the newer status standing (see `update_status`).
    rested: bool = False

    @property
    def connected(self) -> bool:
        return self.member_id is not None

    @property
    def ready(self) -> bool:
        """Connected, not burning, and said it has a blank medium or is idle."""
        return (
            self.connected
            and self.job is None
            and self.cancelling is None
            and self.status is not None
            and self.status.kind in (bp.StatusKind.IDLE, bp.StatusKind.AVAIL)
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "uid": self.uid,
            "name": self.name,
            "connected": self.connected,
            "status": None if self.status is None else str(self.status),
            "job": self.job,
            "capabilities": sorted(c.value for c in self.capabilities),
            "images": sorted(self.images),
            "common_only": self.common_only,
            "failure": self.failure,
        }


def media_name(capability: bp.Capability) -> str:
    """A medium as people and the agent name it (CDR, DVDR, BDR, BLOCK), not the burn
    protocol's capability word (BURNCDR)."""
    return capability.value.removeprefix("BURN")


class LinkState(enum.StrEnum):
    """How a kiosk's link stands, as the dashboard shows it."""

    ONLINE = "online"
    # The socket dropped; the link waits within its grace period and the burns go on.
    RECONNECTING = "reconnecting"
    OFFLINE = "offline"


@dataclass(slots=True)
class Kiosk:
    """One appliance that linked into the session. `since` is wall-clock Unix seconds of the
    last change of `link` (None before the first one)."""

    id: int
    name: str = ""
    version: str = ""
    link: LinkState = LinkState.OFFLINE
    since: float | None = None
    burners: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    cache_used: int | None = None
    cache_max: int | None = None


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    """How dispatch chooses. `flaky_after`: a burner whose last this-many verifies failed gets
    only common images. `common_share`: an image is common when more than this share of the
    connected burners can burn it. `max_queue`: most discs waiting in one room."""

    flaky_after: int = 3
    common_share: float = 0.5
    max_queue: int = 1024

    def __post_init__(self) -> None:
        if self.flaky_after < 1:
            raise ValueError("flaky_after must be at least 1")
        if not 0.0 <= self.common_share < 1.0:
            raise ValueError("common_share must be in [0, 1)")
        if not 1 <= self.max_queue <= QLIST_FIT:
            raise ValueError(f"max_queue must be 1..{QLIST_FIT} so a QLIST fits one frame")


@dataclass(slots=True)
class Run:
    md5: str
    count: int


def checked_uid(uid: str) -> str:
    try:
        return bp.Name(uid, "").uid
    except bp.ProtocolError as exc:
        raise BadRequest(exc.text, exc.code) from None


def checked_kiosk_id(kiosk_id: int) -> int:
    if type(kiosk_id) is not int or kiosk_id < 0:
        raise BadRequest(
            f"a kiosk id is an integer >= 0, got {kiosk_id!r}", bp.ErrorCode.BAD_NUMBER
        )
    return kiosk_id


def checked_md5(md5: str) -> str:
    try:
        return bp.Queue(md5, 1).md5
    except bp.ProtocolError as exc:
        raise BadRequest(exc.text, exc.code) from None


def checked_text(what: str, value: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit or any(ch < " " for ch in value):
        raise BadRequest(
            f"a kiosk's {what} is one line of at most {limit} characters, got {value!r:.60}",
            bp.ErrorCode.BAD_ENTRY,
        )
    return value
