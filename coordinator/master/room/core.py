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

The parts: `base` (state, views, fan-out), `dispatch` (queue and dispatch), `stats`
(statistics), `kiosks` (the kiosk registry); this module adds membership and requests.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from coordinator.master import channels
from coordinator.master.room.dispatch import Dispatch
from coordinator.master.room.effects import (
    CancelBurn,
    CredentialExpiring,
    SessionClosed,
    Superseded,
)
from coordinator.master.room.errors import (
    BadName,
    MissingField,
    NotAllowed,
    RoomError,
    RoomSuspended,
    UnknownClient,
    UnknownImage,
    UnknownMember,
)
from coordinator.master.room.kiosks import Kiosks
from coordinator.master.room.stats import Statistics
from coordinator.master.room.values import (
    MAX_NAME,
    Burner,
    ImageInfo,
    Member,
    MemberKind,
    checked_uid,
)
from wire import burnproto as bp

log = logging.getLogger("coordinator.master.room")

# Verbs each kind of member may send (COMMAND-only verbs are added by `may_command`).
_WATCHER_VERBS: frozenset[type[bp.Message]] = frozenset(
    {bp.Cap, bp.WhatIs, bp.Info, bp.QReport, bp.SReport, bp.AskCapab, bp.Error}
)
# A burn's outcome, and what a drive says once a burn is over and it waits for the next.
_ENDED = frozenset({bp.StatusKind.MD5PASS, bp.StatusKind.MD5FAIL})
_AT_REST = frozenset(
    {bp.StatusKind.IDLE, bp.StatusKind.AVAIL, bp.StatusKind.EMPTY, bp.StatusKind.TRAYOPEN}
)
_COMMAND_VERBS: frozenset[type[bp.Message]] = frozenset({bp.Queue, bp.QClear, bp.Name, bp.Open})
_BURNER_VERBS: frozenset[type[bp.Message]] = frozenset(
    {bp.Cap, bp.Status, bp.WhatIs, bp.Info, bp.Error}
)


class Room(Statistics, Dispatch, Kiosks):
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
            uid = checked_uid(uid)
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

    # ---- requests ----------------------------------------------------------------------------

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

    def set_name(self, uid: str, name: str) -> None:
        uid = checked_uid(uid)
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
        uid = checked_uid(uid)
        burner = self._burners.get(uid)
        if burner is None or burner.member_id is None:
            raise UnknownClient(f"no burner with uid {uid} is connected")
        self._send(burner.member_id, bp.Open())

    def cancel(self, uid: str) -> str:
        """Stop the burn running on burner `uid`; returns the md5 of the image cancelled.

        The burner is told to stop, the job counts as cancelled (neither burned nor failed), and
        the image is not requeued: cancelling means this disc should not be made."""
        uid = checked_uid(uid)
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
        uid = checked_uid(uid)
        burner = self._burners.get(uid)
        if burner is None:
            raise UnknownClient(f"no burner with uid {uid} was ever seen in this session")
        if burner.common_only == on:
            return
        burner.common_only = on
        self._burner_changed(burner)
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
        resumable, burner.resumable = burner.resumable, None
        if (
            resumable is not None
            and kind is bp.StatusKind.PROGRESS
            and burner.job is None
            and self._unqueue(resumable)
        ):
            # The burn outlived the master that started it: it is that disc, not a new one.
            burner.job, burner.job_started = resumable, self._clock()
            burner.rested = False
            self._dirty_burners.add(burner.uid)
            self._queue_changed()
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
        if burner.job is not None and kind in _AT_REST:
            burner.rested = True  # its burn is over; the result is still on its way
        rested = burning and burner.rested
        if kind is bp.StatusKind.MD5PASS and burning:
            self._finished(burner, passed=True)
        elif kind is bp.StatusKind.MD5FAIL and burning:
            self._finished(burner, passed=False)
        if kind in _ENDED:
            burner.rested = False
            if rested and previous is not None and previous.kind in _AT_REST:
                # The outcome of the burn came after the drive said what it does next (a blank
                # swapped in at once): it counts, and the drive's newest word stays its status,
                # so an IDLE drive gets the next disc. (A rest said before this burn started
                # is no such word: the result may be of an earlier burn, and the drive busy.)
                burner.status = previous
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
