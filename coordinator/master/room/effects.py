"""What a room asks of its caller: member notices and replies (`Outbound`), pub/sub announcements
(`Change`) and the snapshots to persist (`Write`), all collected by `Room.drain`; and how a
persisted record becomes a burner or a kiosk again."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from coordinator.master.room.values import JOBS_KEPT, Burner, BurnerStats, Kiosk, LinkState
from wire import burnproto as bp


@dataclass(frozen=True, slots=True)
class CredentialExpiring:
    """Tell a member its credential expires at `expires_at` (Unix seconds) so it can refresh."""

    credential_id: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Superseded:
    """The same burner connected again elsewhere; close this member's connection."""

    uid: str


@dataclass(frozen=True, slots=True)
class CancelBurn:
    """Stop the burn of image `md5` on burner `uid` (sent only to members with `cancels`)."""

    uid: str
    md5: str


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """The room was suspended or unloaded; the member has been removed, close its connection."""

    session_id: str
    reason: str


Notice = CredentialExpiring | Superseded | SessionClosed | CancelBurn


Payload = bp.Message | Notice


@dataclass(frozen=True, slots=True)
class Outbound:
    recipient: str
    payload: Payload


@dataclass(frozen=True, slots=True)
class Change:
    channel: str
    data: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    session_id: str
    runs: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class BurnerRecord:
    """What survives a restart of one burner of one session."""

    session_id: str
    uid: str
    name: str = ""
    capabilities: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    burned: int = 0
    failed: int = 0
    recent_failures: int = 0
    speed_total: float = 0.0
    speed_samples: int = 0
    job: str | None = None
    cancelled: int = 0
    common_only: bool = False
    jobs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KioskRecord:
    """What survives a restart of one kiosk of one session."""

    session_id: str
    id: int
    name: str = ""
    version: str = ""
    link: str = LinkState.OFFLINE.value
    since: float | None = None
    burners: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    cache_used: int | None = None
    cache_max: int | None = None


@dataclass(frozen=True, slots=True)
class HistoryTick:
    """One counted result, added to the per-minute and per-hour history of its burner and of its
    kiosk (None for a burner of no kiosk). `at` is wall-clock Unix seconds."""

    session_id: str
    uid: str
    kiosk_id: int | None
    at: float
    passed: bool


Write = QueueSnapshot | BurnerRecord | KioskRecord | HistoryTick


@dataclass(slots=True)
class Effects:
    outbound: list[Outbound] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)


def kiosk_from_record(record: KioskRecord) -> Kiosk:
    try:
        link = LinkState(record.link)
    except ValueError:
        link = LinkState.OFFLINE  # a state this version does not know: assume the safe one
    return Kiosk(
        id=record.id,
        name=record.name,
        version=record.version,
        link=link,
        since=record.since,
        burners=tuple(record.burners),
        images=tuple(record.images),
        cache_used=record.cache_used,
        cache_max=record.cache_max,
    )


def burner_from_record(record: BurnerRecord) -> Burner:
    caps = frozenset(
        bp.Capability(c) for c in record.capabilities if c in bp.Capability.__members__
    )
    return Burner(
        uid=record.uid,
        name=record.name,
        capabilities=caps,
        images=frozenset(record.images),
        stats=BurnerStats(
            record.burned,
            record.failed,
            record.recent_failures,
            record.speed_total,
            record.speed_samples,
            record.cancelled,
        ),
        job=record.job,
        common_only=record.common_only,
        jobs=record.jobs[-JOBS_KEPT:],
    )
