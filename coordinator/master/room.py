"""One live burn session (a room) as a transport-free state machine.

A `Room` holds the members of a session (burners, displays, command frontends and browsers, each
identified by a connection id chosen by whoever carries it), the burners it has ever seen with
their friendly names and statistics, and the burn queue. Callers feed it what members said, as
`wire.burnproto` messages (`Room.handle`) or through the typed methods, and it never sends
anything itself: replies and pushes pile up as `Outbound` (recipient, payload) pairs, pub/sub
announcements as `Change` (channel, data) pairs, and what must be persisted as `Write` snapshots,
all collected by `Room.drain`. That is what lets the balancer's WebSocket, the appliance links and
the burn-protocol TCP listener drive the same object, and the tests drive it with no I/O at all.
Dispatch sends queued images to ready burners that can burn them, keeping rare images (held by
few burners) for the reliable, fast burners and only common ones for a burner that failed its last
verifies or that an operator marked "common images only". An operator may also cancel a burn
(only on a burner whose transport can stop one: an appliance link, not a seed-004 TCP burner):
the job counts as cancelled, not failed, and its image is dropped rather than requeued, because
cancelling says "do not make this disc" (queue it again to have it made).
The room also keeps one record per kiosk (appliance) that linked into the session: its name,
software version, link state (`online`, `reconnecting` while its link waits within the grace
period, `offline` once the link ended) with the wall-clock time of the last change, the uids of
its burners and the images its cache holds, so a dashboard can group burners by kiosk; burners
of no kiosk (burn-protocol TCP clients) are the "other burners".
"""

from __future__ import annotations

import enum
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from coordinator.master import channels
from wire import burnproto as bp
from wire import failures

log = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------------------------
# Errors


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


# --------------------------------------------------------------------------------------------
# Values


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


# --------------------------------------------------------------------------------------------
# Effects


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


@dataclass(slots=True)
class _Run:
    md5: str
    count: int


# Verbs each kind of member may send (COMMAND-only verbs are added by `may_command`).
_WATCHER_VERBS: frozenset[type[bp.Message]] = frozenset(
    {bp.Cap, bp.WhatIs, bp.Info, bp.QReport, bp.SReport, bp.AskCapab, bp.Error}
)
_COMMAND_VERBS: frozenset[type[bp.Message]] = frozenset({bp.Queue, bp.QClear, bp.Name, bp.Open})
_BURNER_VERBS: frozenset[type[bp.Message]] = frozenset(
    {bp.Cap, bp.Status, bp.WhatIs, bp.Info, bp.Error}
)


# --------------------------------------------------------------------------------------------
# The room


class Room:
    def __init__(
        self,
        session_id: str,
        *,
        policy: DispatchPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        queue: Iterable[tuple[str, int]] = (),
        burners: Iterable[BurnerRecord] = (),
        kiosks: Iterable[KioskRecord] = (),
    ) -> None:
        self.session_id = session_id.lower()
        self.policy = policy or DispatchPolicy()
        self._clock = clock
        # Kiosk link times are shown to people and outlive a restart: wall clock, not monotonic.
        self._wall = wall
        self.suspended = False
        self._members: dict[str, Member] = {}
        self._burners: dict[str, Burner] = {}
        self._images: dict[str, ImageInfo] = {}
        self._queue: list[_Run] = [_Run(md5, count) for md5, count in queue if count > 0]
        self._effects = Effects()
        self._dirty_queue = False
        self._dirty_burners: set[str] = set()
        self._kiosks: dict[int, Kiosk] = {}
        self._dirty_kiosks: set[int] = set()
        for kiosk_record in kiosks:
            kiosk = _kiosk_from_record(kiosk_record)
            if kiosk.link is not LinkState.OFFLINE:
                # Its link lived in the process that stopped; it comes back online with a new one.
                kiosk.link, kiosk.since = LinkState.OFFLINE, wall()
                self._dirty_kiosks.add(kiosk.id)
            self._kiosks[kiosk.id] = kiosk
        for record in burners:
            self._burners[record.uid] = _burner_from_record(record)
        for burner in self._burners.values():
            # A burn that was in flight when the master stopped never reported its result:
            # put it back at the head so the disc is still made.
            if burner.job is not None:
                self._requeue(burner.job)
                burner.job = None
                self._dirty_burners.add(burner.uid)

    # ---- views -------------------------------------------------------------------------------

    @property
    def members(self) -> Mapping[str, Member]:
        return self._members

    @property
    def burners(self) -> Mapping[str, Burner]:
        return self._burners

    @property
    def kiosks(self) -> Mapping[int, Kiosk]:
        return self._kiosks

    @property
    def queue(self) -> tuple[tuple[str, int], ...]:
        return tuple((run.md5, run.count) for run in self._queue)

    @property
    def queued(self) -> int:
        return sum(run.count for run in self._queue)

    def queue_list(self) -> bp.QList:
        """The queue, next first. Requeued burns may push it past `max_queue`; the tail beyond
        one frame is left out rather than making the reply unsendable."""
        md5s = (run.md5 for run in self._queue for _ in range(run.count))
        return bp.QList(tuple(itertools.islice(md5s, QLIST_FIT)))

    def status_list(self) -> bp.SList:
        entries = [
            bp.SListEntry(b.uid, b.name, b.status)
            for b in sorted(self._burners.values(), key=lambda b: b.uid)
            if b.connected and b.status is not None
        ]
        return bp.SList(tuple(entries))

    def fleet_capabilities(self) -> bp.Cap:
        caps: set[bp.Capability] = set()
        images: set[str] = set()
        for burner in self._burners.values():
            if burner.connected:
                caps |= burner.capabilities
                images |= burner.images
        # Kiosks may burn every take of a large catalog: the answer names as many as one frame
        # holds (in md5 order), rather than being a frame too large to send at all.
        return bp.Cap(
            tuple(c for c in bp.Capability if c in caps),
            tuple(sorted(images))[:CAP_IMAGES_FIT],
        )

    def stats(self) -> dict[str, dict[str, object]]:
        return {uid: b.stats.as_dict() for uid, b in sorted(self._burners.items())}

    def totals(self) -> dict[str, int]:
        return {
            "burned": sum(b.stats.burned for b in self._burners.values()),
            "failed": sum(b.stats.failed for b in self._burners.values()),
        }

    def snapshot(self) -> dict[str, object]:
        """Everything a newly joined dashboard needs, JSON-ready."""
        return {
            "session": self.session_id,
            "suspended": self.suspended,
            "queue": [{"md5": md5, "count": count} for md5, count in self.queue],
            "burners": [
                self.burner_dict(b) | {"stats": b.stats.as_dict()}
                for b in sorted(self._burners.values(), key=lambda b: (b.name, b.uid))
            ],
            "kiosks": [self.kiosk_dict(k) for _, k in sorted(self._kiosks.items())],
            "totals": self.totals(),
        }

    def burner_dict(self, burner: Burner) -> dict[str, object]:
        """A burner, JSON-ready, with the name of the image it burns where the room knows it
        (so no screen has to show a digest while a disc burns)."""
        info = None if burner.job is None else self._images.get(burner.job.lower())
        return burner.as_dict() | {"image": None if info is None else info.name}

    def kiosk_dict(self, kiosk: Kiosk) -> dict[str, object]:
        """A kiosk, JSON-ready; its cached images carry the name and size the room knows."""
        cache = []
        for md5 in kiosk.images:
            info = self._images.get(md5)
            cache.append(
                {
                    "md5": md5,
                    "name": None if info is None else info.name,
                    "size": None if info is None else info.size,
                }
            )
        return {
            "id": kiosk.id,
            "name": kiosk.name,
            "version": kiosk.version,
            "link": kiosk.link.value,
            "since": kiosk.since,
            "burners": list(kiosk.burners),
            "images": cache,
            "cache_used": kiosk.cache_used,
            "cache_max": kiosk.cache_max,
        }

    def image(self, md5: str) -> ImageInfo | None:
        return self._images.get(md5.lower())

    def knows_image(self, md5: str) -> bool:
        md5 = md5.lower()
        return md5 in self._images or any(md5 in b.images for b in self._burners.values())

    def learn_image(self, info: ImageInfo) -> None:
        """Remember what the catalog said of an image (the master looks it up off the room)."""
        self._images[info.md5.lower()] = info

    def members_with_credential(self, credential_id: str) -> list[Member]:
        return [m for m in self._members.values() if m.credential_id == credential_id]

    # ---- effects -----------------------------------------------------------------------------

    def drain(self) -> Effects:
        """Take everything the room wants sent, announced and persisted since the last drain."""
        effects, self._effects = self._effects, Effects()
        if self._dirty_queue:
            effects.writes.append(QueueSnapshot(self.session_id, self.queue))
        for uid in sorted(self._dirty_burners):
            effects.writes.append(self._record(self._burners[uid]))
        for kiosk_id in sorted(self._dirty_kiosks):
            effects.writes.append(self._kiosk_record(self._kiosks[kiosk_id]))
        self._dirty_queue = False
        self._dirty_burners.clear()
        self._dirty_kiosks.clear()
        return effects

    def _send(self, member_id: str, payload: Payload) -> None:
        self._effects.outbound.append(Outbound(member_id, payload))

    def _to_watchers(self, payload: Payload) -> None:
        for member in self._members.values():
            if member.watches:
                self._send(member.id, payload)

    def _announce(self, channel: str, data: Mapping[str, object]) -> None:
        self._effects.changes.append(Change(channel, data))

    def _queue_changed(self) -> None:
        self._dirty_queue = True
        self._to_watchers(self.queue_list())
        self._announce(
            channels.queue(self.session_id),
            {"queue": [{"md5": m, "count": c} for m, c in self.queue], "length": self.queued},
        )

    def _burner_changed(self, burner: Burner, *, persist: bool = True) -> None:
        if persist:
            self._dirty_burners.add(burner.uid)
        self._to_watchers(self.status_list())
        self._announce(
            channels.burner_status(self.session_id, burner.uid), self.burner_dict(burner)
        )

    def _stats_changed(
        self, burner: Burner, result: str, md5: str | None, *, at: float | None = None
    ) -> None:
        """A burn ended (`result` passed, failed or cancelled): the burner's statistics, the
        session's totals, and what metrics label it by (its kiosk, the medium it made)."""
        self._dirty_burners.add(burner.uid)
        kiosk = next((k for k in self._kiosks.values() if burner.uid in k.burners), None)
        info = self._images.get(md5) if md5 else None
        made = burner.capabilities & (
            info.required_media() if info is not None else frozenset(bp.Capability)
        )
        data: dict[str, object] = {
            "uid": burner.uid,
            "burner": burner.stats.as_dict(),
            "totals": self.totals(),
            "result": result,
            "kiosk": None if kiosk is None else kiosk.name,
            "media": media_name(min(made)) if made else None,
        }
        if at is not None:
            data["at"] = at  # when the result was counted, for the dashboard's history chart
        self._announce(channels.stats(self.session_id), data)

    def _record(self, burner: Burner) -> BurnerRecord:
        s = burner.stats
        return BurnerRecord(
            session_id=self.session_id,
            uid=burner.uid,
            name=burner.name,
            capabilities=tuple(sorted(c.value for c in burner.capabilities)),
            images=tuple(sorted(burner.images)),
            burned=s.burned,
            failed=s.failed,
            recent_failures=s.recent_failures,
            speed_total=s.speed_total,
            speed_samples=s.speed_samples,
            job=burner.job,
            cancelled=s.cancelled,
            common_only=burner.common_only,
            jobs=burner.jobs,
        )

    # ---- membership --------------------------------------------------------------------------

    def join(
        self,
        member_id: str,
        kind: MemberKind,
        *,
        uid: str | None = None,
        credential_id: str | None = None,
        commands: bool = False,
        cancels: bool = False,
    ) -> Member:
        if self.suspended:
            raise RoomSuspended(f"session {self.session_id} is suspended")
        if member_id in self._members:
            raise NotAllowed(f"member {member_id} has already joined")
        if kind is MemberKind.BURNER:
            if uid is None:
                raise UnknownClient("a burner joins with its uid")
            uid = _checked_uid(uid)
        member = Member(member_id, kind, uid, credential_id, commands, cancels)
        self._members[member_id] = member
        self._announce(
            channels.members(self.session_id),
            {"event": "join", "member": member_id, "kind": kind.value, "uid": uid},
        )
        if kind is MemberKind.BURNER and uid is not None:
            burner = self._burners.get(uid)
            if burner is None:
                burner = self._burners[uid] = Burner(uid)
            elif burner.member_id is not None:
                # The box reconnected before its old connection was noticed as gone: the new
                # connection wins, and the job (still burning in the same box) stays with it.
                old = burner.member_id
                self._members.pop(old, None)
                self._send(old, Superseded(uid))
            burner.member_id = member_id
            burner.status = None
            self._burner_changed(burner)
        return member

    def leave(self, member_id: str) -> None:
        member = self._members.pop(member_id, None)
        if member is None:
            return
        self._announce(
            channels.members(self.session_id),
            {"event": "leave", "member": member_id, "kind": member.kind.value, "uid": member.uid},
        )
        if member.kind is not MemberKind.BURNER or member.uid is None:
            return
        burner = self._burners.get(member.uid)
        if burner is None or burner.member_id != member_id:
            return
        burner.member_id = None
        burner.status = None
        if burner.job is not None:
            log.info(
                "burner gone mid-burn, image requeued",
                extra={"session": self.session_id, "uid": burner.uid, "md5": burner.job},
            )
            self._requeue(burner.job)
            burner.job = None
            burner.job_started = None
            self._queue_changed()
        burner.cancelling = None
        self._burner_changed(burner)
        self._dispatch()

    def suspend(self, reason: str = "suspended") -> None:
        """Remove every member (telling each) and stop dispatch; state is kept."""
        self.suspended = True
        for member_id in list(self._members):
            self._send(member_id, SessionClosed(self.session_id, reason))
            self.leave(member_id)
        self._announce(channels.state(self.session_id), {"state": reason})

    def resume(self) -> None:
        self.suspended = False
        self._announce(channels.state(self.session_id), {"state": "live"})

    def notify_expiry(self, credential_id: str, expires_at: float) -> int:
        members = self.members_with_credential(credential_id)
        for member in members:
            self._send(member.id, CredentialExpiring(credential_id, expires_at))
        return len(members)

    # ---- kiosks ------------------------------------------------------------------------------

    def kiosk_hello(
        self,
        kiosk_id: int,
        *,
        name: str,
        version: str,
        burners: Iterable[str],
        images: Iterable[str],
        cache_used: int | None = None,
        cache_max: int | None = None,
    ) -> None:
        """A kiosk said what it is, which burners it has and what its cache holds (its whole
        state, so this replaces what was known); a kiosk that says so is online."""
        # Everything is checked before anything changes: a refused hello leaves no trace.
        _checked_kiosk_id(kiosk_id)
        uids = tuple(sorted({_checked_uid(u) for u in burners}))
        cached = tuple(sorted({_checked_md5(m) for m in images}))
        for field_name, value in (("cache_used", cache_used), ("cache_max", cache_max)):
            if value is not None and (type(value) is not int or value < 0):
                raise BadRequest(
                    f"{field_name} must be an integer >= 0 or absent, got {value!r}",
                    bp.ErrorCode.BAD_NUMBER,
                )
        name = _checked_text("name", name, MAX_KIOSK_TEXT)
        version = _checked_text("version", version, MAX_VERSION)
        kiosk = self._kiosk(kiosk_id)
        kiosk.name, kiosk.version = name, version
        kiosk.burners = uids
        kiosk.images = cached
        kiosk.cache_used, kiosk.cache_max = cache_used, cache_max
        # A drive moved to another box belongs to that box only.
        for other in self._kiosks.values():
            if other is not kiosk and set(other.burners) & set(uids):
                other.burners = tuple(u for u in other.burners if u not in uids)
                self._kiosk_changed(other)
        self._set_link(kiosk, LinkState.ONLINE)
        self._kiosk_changed(kiosk)

    def kiosk_link(self, kiosk_id: int, link: LinkState, *, name: str | None = None) -> None:
        """A kiosk's link came up, dropped (waiting within its grace period) or ended."""
        if not isinstance(link, LinkState):
            raise BadRequest(f"unknown link state {link!r}", bp.ErrorCode.BAD_ENTRY)
        if name is not None:
            name = _checked_text("name", name, MAX_KIOSK_TEXT)
        kiosk = self._kiosk(kiosk_id)
        changed = self._set_link(kiosk, link)
        if name is not None and name != kiosk.name:
            kiosk.name = name
            changed = True
        if changed:
            self._kiosk_changed(kiosk)

    def kiosk_drive_gone(self, kiosk_id: int, uid: str) -> None:
        """A kiosk stopped using one of its burners (unplugged)."""
        uid = _checked_uid(uid)
        kiosk = self._kiosks.get(_checked_kiosk_id(kiosk_id))
        if kiosk is not None and uid in kiosk.burners:
            kiosk.burners = tuple(u for u in kiosk.burners if u != uid)
            self._kiosk_changed(kiosk)

    def _kiosk(self, kiosk_id: int) -> Kiosk:
        kiosk = self._kiosks.get(_checked_kiosk_id(kiosk_id))
        if kiosk is None:
            kiosk = self._kiosks[kiosk_id] = Kiosk(kiosk_id)
        return kiosk

    def _set_link(self, kiosk: Kiosk, link: LinkState) -> bool:
        if kiosk.link is link and kiosk.since is not None:
            return False
        kiosk.link, kiosk.since = link, self._wall()
        log.info(
            "kiosk link",
            extra={"session": self.session_id, "kiosk": kiosk.id, "link": link.value},
        )
        return True

    def _kiosk_changed(self, kiosk: Kiosk) -> None:
        self._dirty_kiosks.add(kiosk.id)
        self._announce(channels.kiosk(self.session_id, kiosk.id), self.kiosk_dict(kiosk))

    def _kiosk_record(self, kiosk: Kiosk) -> KioskRecord:
        return KioskRecord(
            session_id=self.session_id,
            id=kiosk.id,
            name=kiosk.name,
            version=kiosk.version,
            link=kiosk.link.value,
            since=kiosk.since,
            burners=kiosk.burners,
            images=kiosk.images,
            cache_used=kiosk.cache_used,
            cache_max=kiosk.cache_max,
        )

    # ---- requests ----------------------------------------------------------------------------

    def counted(self, uid: str, job: str) -> bool:
        """Whether burner `uid`'s result `job` has been counted already."""
        burner = self._burners.get(uid)
        return burner is not None and job in burner.jobs

    def reporting(self, uid: str, reason: str | None, detail: str) -> None:
        """The next result of burner `uid` failed for `reason` (a `wire.failures` code), the
        tool saying `detail`; a burn-protocol MD5FAIL, which says nothing more, is a verify
        that did not match."""
        burner = self._burners.get(uid)
        if burner is not None:
            burner.reporting = (reason, detail)

    def note_job(self, uid: str, job: str) -> None:
        """Remember that result `job` of burner `uid` was counted (see `Burner.jobs`)."""
        burner = self._burners.get(uid)
        if burner is None or job in burner.jobs:
            return
        burner.jobs = (*burner.jobs, job)[-JOBS_KEPT:]
        self._dirty_burners.add(uid)

    def handle(self, member_id: str, message: bp.Message) -> None:
        """Apply what a member said; a refused request is answered with ERROR to the member."""
        member = self._members.get(member_id)
        if member is None:
            raise UnknownMember(f"{member_id} is not a member of session {self.session_id}")
        try:
            self._handle(member, message)
        except RoomError as exc:
            self._send(member.id, bp.Error(exc.code.value, str(exc)))

    def _handle(self, member: Member, message: bp.Message) -> None:
        verb = type(message)
        if member.kind is MemberKind.BURNER:
            allowed = _BURNER_VERBS
        else:
            allowed = _WATCHER_VERBS | (_COMMAND_VERBS if member.may_command else frozenset())
        if verb not in allowed:
            raise NotAllowed(f"a {member.kind.value} client may not send {message.VERB}")
        match message:
            case bp.Cap(capabilities=caps, images=images):
                if member.kind is MemberKind.BURNER:
                    self.set_capabilities(member.id, caps, images)
            case bp.Status(value=value):
                self.update_status(member.id, value)
            case bp.WhatIs(md5=md5):
                self._send(member.id, self.whatis(md5))
            case bp.Info(md5=md5, name=name, size=size, description=text):
                # A peer describing an image we have no catalog entry for: keep it for WHATIS.
                if md5 not in self._images:
                    self._images[md5] = ImageInfo(md5, name, size, text)
            case bp.QReport():
                self._send(member.id, self.queue_list())
            case bp.SReport():
                self._send(member.id, self.status_list())
            case bp.AskCapab():
                self._send(member.id, self.fleet_capabilities())
            case bp.Queue(md5=md5, count=count):
                self.queue_image(md5, count)
                self._send(member.id, bp.QOk())
            case bp.QClear():
                self.clear_queue()
                self._send(member.id, bp.QOk())
            case bp.Name(uid=uid, friendly=friendly):
                self.set_name(uid, friendly)
            case bp.Open(uid=str() as uid):
                self.open_tray(uid)
            case bp.Open():
                raise MissingField("OPEN from a command names the burner: OPEN<TAB><uid>")
            case bp.Error(code=code):
                log.info(
                    "peer reported an error",
                    extra={"session": self.session_id, "member": member.id, "code": code},
                )
            case _:  # pragma: no cover - the allow-lists above admit only the verbs matched
                raise NotAllowed(f"{message.VERB} is not handled here")

    def whatis(self, md5: str) -> bp.Info:
        info = self._images.get(md5.lower())
        if info is None:
            raise UnknownImage(f"no image with md5 {md5.lower()} is known in this session")
        return info.to_info()

    def queue_image(self, md5: str, count: int = 1) -> None:
        try:
            md5 = bp.Queue(md5, count).md5  # the same checks as on the wire
        except bp.ProtocolError as exc:
            raise BadRequest(exc.text, exc.code) from None
        if not self.knows_image(md5):
            raise UnknownImage(f"no burner holds and no catalog lists image {md5}")
        if self.queued + count > self.policy.max_queue:
            raise QueueFull(
                f"the queue holds at most {self.policy.max_queue} discs; "
                f"{self.queued} are waiting, {count} more do not fit"
            )
        if self._queue and self._queue[-1].md5 == md5:
            self._queue[-1].count += count
        else:
            self._queue.append(_Run(md5, count))
        self._queue_changed()
        self._dispatch()

    def clear_queue(self) -> None:
        self._queue.clear()
        self._queue_changed()

    def set_name(self, uid: str, name: str) -> None:
        uid = _checked_uid(uid)
        burner = self._burners.get(uid)
        if burner is None:
            raise UnknownClient(f"no burner with uid {uid} was ever seen in this session")
        if len(name) > MAX_NAME or any(ch < " " for ch in name):
            raise BadName(f"a friendly name is at most {MAX_NAME} characters, one line, no tabs")
        burner.name = name
        self._to_watchers(bp.Name(uid, name))
        self._announce(channels.burner_status(self.session_id, uid), self.burner_dict(burner))
        self._dirty_burners.add(uid)

    def open_tray(self, uid: str) -> None:
        """Ask a burner to open its tray, so a person can see which box it is."""
        uid = _checked_uid(uid)
        burner = self._burners.get(uid)
        if burner is None or burner.member_id is None:
            raise UnknownClient(f"no burner with uid {uid} is connected")
        self._send(burner.member_id, bp.Open())

    def cancel(self, uid: str) -> str:
        """Stop the burn running on burner `uid`; returns the md5 of the image cancelled.

        The burner is told to stop, the job counts as cancelled (neither burned nor failed), and
        the image is not requeued: cancelling means this disc should not be made."""
        uid = _checked_uid(uid)
        burner = self._burners.get(uid)
        if burner is None or burner.member_id is None:
            raise UnknownClient(f"no burner with uid {uid} is connected")
        if burner.job is None:
            raise NotAllowed(f"burner {uid} is not burning anything")
        member = self._members.get(burner.member_id)
        if member is None or not member.cancels:
            raise NotAllowed(
                f"burner {uid} is a burn-protocol (TCP) client, which has no verb to stop a burn; "
                "stop it at the box"
            )
        md5 = burner.job
        self._send(burner.member_id, CancelBurn(uid, md5))
        burner.job = burner.job_started = None
        burner.cancelling = md5
        burner.cancelled_at = self._clock()
        burner.stats.cancelled += 1
        log.info("burn cancelled", extra={"session": self.session_id, "uid": uid, "md5": md5})
        self._burner_changed(burner)
        self._stats_changed(burner, "cancelled", md5)
        return md5

    def set_common_only(self, uid: str, on: bool) -> None:
        """Mark (or unmark) a burner as one that gets only common images."""
        uid = _checked_uid(uid)
        burner = self._burners.get(uid)
        if burner is None:
            raise UnknownClient(f"no burner with uid {uid} was ever seen in this session")
        if burner.common_only == on:
            return
        burner.common_only = on
        self._burner_changed(burner)
        self._dispatch()

    def reorder(self, md5: str, position: int) -> None:
        """Move the first run of image `md5` in the queue to run index `position` (0 is next);
        a position past the end moves it last. Neighbouring runs of one image merge."""
        try:
            md5 = bp.Queue(md5, 1).md5  # the same md5 checks as on the wire
        except bp.ProtocolError as exc:
            raise BadRequest(exc.text, exc.code) from None
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise BadRequest(
                f"position must be an integer >= 0, got {position!r}", bp.ErrorCode.BAD_NUMBER
            )
        at = next((i for i, run in enumerate(self._queue) if run.md5 == md5), None)
        if at is None:
            raise UnknownImage(f"image {md5} is not in the queue")
        run = self._queue.pop(at)
        self._queue.insert(min(position, len(self._queue)), run)
        merged: list[_Run] = []
        for item in self._queue:
            if merged and merged[-1].md5 == item.md5:
                merged[-1].count += item.count
            else:
                merged.append(item)
        self._queue = merged
        self._queue_changed()
        self._dispatch()

    def set_capabilities(
        self, member_id: str, capabilities: Iterable[bp.Capability], images: Iterable[str]
    ) -> None:
        burner = self._burner_of(member_id)
        burner.capabilities = frozenset(capabilities)
        burner.images = frozenset(m.lower() for m in images)
        self._burner_changed(burner)
        self._dispatch()

    def update_status(self, member_id: str, value: bp.StatusValue) -> None:
        burner = self._burner_of(member_id)
        previous, burner.status = burner.status, value
        kind = value.kind
        # A result counts once, for a burn we started or one we saw progressing (a burn that
        # outlived a master restart); a repeated MD5PASS is only a status repeated.
        burning = burner.job is not None or (
            previous is not None and previous.kind is bp.StatusKind.PROGRESS
        )
        if (
            burner.cancelling is not None
            and burner.job is None
            and kind in (bp.StatusKind.MD5PASS, bp.StatusKind.MD5FAIL)
        ):
            # The result of the cancelled burn: it was counted as cancelled already.
            burning = False
            burner.cancelling = None
        if kind is bp.StatusKind.MD5PASS and burning:
            self._finished(burner, passed=True)
        elif kind is bp.StatusKind.MD5FAIL and burning:
            self._finished(burner, passed=False)
        if kind in (bp.StatusKind.MD5PASS, bp.StatusKind.MD5FAIL):
            burner.reporting = None  # said of this result only (a cancelled one is not counted)
        # Progress is transient: announce it but do not write it to disk every percent.
        self._burner_changed(burner, persist=kind is not bp.StatusKind.PROGRESS)
        self._dispatch()

    def _burner_of(self, member_id: str) -> Burner:
        member = self._members.get(member_id)
        if member is None or member.kind is not MemberKind.BURNER or member.uid is None:
            raise NotAllowed("only a burner reports capabilities and status")
        return self._burners[member.uid]

    def _finished(self, burner: Burner, *, passed: bool) -> None:
        stats = burner.stats
        job, started = burner.job, burner.job_started
        burner.job = burner.job_started = None
        at = self._wall()
        reason, detail = burner.reporting or ("verify-mismatch", "")
        burner.failure = None
        if not passed:
            burner.failure = {
                "reason": reason or failures.UNKNOWN,
                "sentence": failures.sentence(reason),
                "detail": detail,
                "at": at,
            }
        if passed:
            stats.burned += 1
            stats.recent_failures = 0
            info = self._images.get(job) if job else None
            if info is not None and started is not None:
                elapsed = self._clock() - started
                if elapsed > 0 and info.size > 0:
                    stats.speed_total += info.size / elapsed
                    stats.speed_samples += 1
        else:
            stats.failed += 1
            stats.recent_failures += 1
            if job is not None:
                # The disc asked for was not made: try again, first.
                self._requeue(job)
                self._queue_changed()
        kiosk = next((k.id for k in self._kiosks.values() if burner.uid in k.burners), None)
        # Written in the same transaction as the burner's statistics (see `drain`).
        self._effects.writes.append(
            HistoryTick(self.session_id, burner.uid, kiosk, at, passed=passed)
        )
        self._stats_changed(burner, "passed" if passed else "failed", job, at=at)

    def _requeue(self, md5: str) -> None:
        if self._queue and self._queue[0].md5 == md5:
            self._queue[0].count += 1
        else:
            self._queue.insert(0, _Run(md5, 1))
        self._dirty_queue = True

    # ---- dispatch ----------------------------------------------------------------------------

    def _can_burn(self, burner: Burner, md5: str) -> bool:
        if md5 not in burner.images:
            return False
        info = self._images.get(md5)
        needed = info.required_media() if info is not None else frozenset(bp.Capability)
        return bool(burner.capabilities & needed)

    def _flaky(self, burner: Burner) -> bool:
        """Kept to common images: failed its last verifies, or an operator said so."""
        return burner.common_only or burner.stats.recent_failures >= self.policy.flaky_after

    def is_common(self, md5: str) -> bool:
        """More than `common_share` of the connected burners can burn this image."""
        connected = [b for b in self._burners.values() if b.connected]
        if not connected:
            return False
        holders = sum(1 for b in connected if self._can_burn(b, md5))
        return holders > self.policy.common_share * len(connected)

    def _dispatch(self) -> None:
        if self.suspended or not self._queue:
            return
        now = self._clock()
        for b in self._burners.values():
            if b.cancelling is not None and now - b.cancelled_at > CANCEL_GRACE:
                b.cancelling = None  # no result came for the cancelled burn: free it anyway
        ready = [b for b in self._burners.values() if b.ready]
        if not ready:
            return
        common: dict[str, bool] = {}

        def is_rare(md5: str) -> bool:
            if md5 not in common:
                common[md5] = self.is_common(md5)
            return not common[md5]

        held_rare: dict[str, int] = {}

        def rare_held(b: Burner) -> int:
            if b.uid not in held_rare:
                held_rare[b.uid] = sum(1 for m in b.images if is_rare(m))
            return held_rare[b.uid]

        def rare_key(b: Burner) -> _Key:
            # Few boxes hold it: give it to the most reliable, then the fastest.
            return (0, *_reliability_key(b))

        def common_key(b: Burner) -> _Key:
            # Anyone can; keep the boxes that hold rare images free for those.
            return (rare_held(b), *_reliability_key(b))

        started = False
        for run in list(self._queue):
            while run.count > 0 and ready:
                candidates = [b for b in ready if self._can_burn(b, run.md5)]
                key = common_key
                if is_rare(run.md5):
                    candidates = [b for b in candidates if not self._flaky(b)]
                    key = rare_key
                if not candidates:
                    break
                best = min(candidates, key=key)
                ready.remove(best)
                run.count -= 1
                self._start(best, run.md5)
                started = True
            if run.count == 0:
                self._queue.remove(run)
            if not ready:
                break
        if started:
            self._queue_changed()

    def _start(self, burner: Burner, md5: str) -> None:
        if burner.member_id is None:  # only ready, hence connected, burners get here
            return
        burner.job = md5
        burner.job_started = self._clock()
        self._send(burner.member_id, bp.Burn(md5))
        self._burner_changed(burner)


_Key = tuple[int, int, float, float, str]


def _reliability_key(burner: Burner) -> tuple[int, float, float, str]:
    s = burner.stats
    return (s.recent_failures, s.failure_rate, -(s.mean_speed or 0.0), burner.uid)


def _checked_uid(uid: str) -> str:
    try:
        return bp.Name(uid, "").uid
    except bp.ProtocolError as exc:
        raise BadRequest(exc.text, exc.code) from None


def _checked_kiosk_id(kiosk_id: int) -> int:
    if type(kiosk_id) is not int or kiosk_id < 0:
        raise BadRequest(
            f"a kiosk id is an integer >= 0, got {kiosk_id!r}", bp.ErrorCode.BAD_NUMBER
        )
    return kiosk_id


def _checked_md5(md5: str) -> str:
    try:
        return bp.Queue(md5, 1).md5
    except bp.ProtocolError as exc:
        raise BadRequest(exc.text, exc.code) from None


def _checked_text(what: str, value: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit or any(ch < " " for ch in value):
        raise BadRequest(
            f"a kiosk's {what} is one line of at most {limit} characters, got {value!r:.60}",
            bp.ErrorCode.BAD_ENTRY,
        )
    return value


def _kiosk_from_record(record: KioskRecord) -> Kiosk:
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


def _burner_from_record(record: BurnerRecord) -> Burner:
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
