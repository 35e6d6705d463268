"""The session master: owns the live rooms of this node and routes what they say.

`Master` keeps one `Room` per session id (case-insensitive), loads a room's queue and burner
statistics from `DIR/master.db` when it is first needed, suspends, resumes and unloads rooms, and
is the one place transports talk to: the balancer's WebSocket, the appliance links and the
burn-protocol listener each `join` their connections with a `deliver` callback and pass on what
those connections say with `handle`. After every call the master drains the room's effects:
payloads go to the recipients' `deliver` callbacks (which must only enqueue, never block), changes
go to the `on_change` hook under their pub/sub channel names, and snapshots go to the database
thread. Image descriptions come from an injected async catalog lookup, resolved before the room
(which does no I/O) sees the request. The appliance links report their kiosks (what a kiosk's
`hello` said, its link coming up, dropping within the grace period, or ending) through the
`kiosk_*` methods, so the room stays the one place the dashboard reads them from.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from coordinator.master.db import MasterDB
from coordinator.master.room import (
    DispatchPolicy,
    ImageInfo,
    LinkState,
    Member,
    MemberKind,
    NotAllowed,
    Payload,
    Room,
    RoomError,
    SessionClosed,
    Superseded,
)
from coordinator.store import Store
from coordinator.store.sql import Conn
from wire import burnproto as bp

log = logging.getLogger(__name__)

Catalog = Callable[[str], Awaitable[ImageInfo | None]]
Deliver = Callable[[Payload], None]
ChangeHook = Callable[[str, Mapping[str, object]], None]


class UnknownSession(RoomError):
    """The session is not loaded on this master."""

    code = bp.ErrorCode.NOT_ALLOWED


class PlacedElsewhere(RoomError):
    """The shared database places the session on another master (or on none): this master must
    not run its room, or two masters would count its results and write its queue side by side.
    `owner` is the pool URL of the master it is placed on (None: suspended, or no such session).
    """

    code = bp.ErrorCode.NOT_ALLOWED

    def __init__(self, session_id: str, owner: str | None) -> None:
        where = f"on the session master {owner}" if owner else "on no session master"
        super().__init__(f"session {session_id} runs {where}, not on this one")
        self.session_id = session_id
        self.owner = owner


def _placement(conn: Conn, session_id: str) -> str | None:
    row = conn.execute(
        "SELECT m.url FROM sessions s JOIN masters m ON m.id = s.master_id "
        "WHERE s.id = ? AND s.state = 'live'",
        (session_id,),
    ).fetchone()
    return None if row is None else str(row[0])


async def _no_catalog(md5: str) -> ImageInfo | None:
    return None


class Master:
    def __init__(
        self,
        data_dir: Path,
        *,
        catalog: Catalog | None = None,
        policy: DispatchPolicy | None = None,
        on_change: ChangeHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        shared: Store | None = None,
        url: str | None = None,
    ) -> None:
        self.db = MasterDB(data_dir, shared)
        # On a shared database several masters could load any session: with this master's pool
        # URL, a room is loaded only for a session placed on it (see `load`).
        self._placed = shared if url is not None else None
        self.url = url
        self._catalog = catalog or _no_catalog
        self._policy = policy or DispatchPolicy()
        self._on_change = on_change
        # Transports that push changes themselves (the burn listener) add hooks at run time.
        self._change_hooks: list[ChangeHook] = []
        self._clock = clock
        self._wall = wall
        self._rooms: dict[str, Room] = {}
        # session id -> member id -> deliver. Nested rather than keyed by a (session, member)
        # tuple: one tuple less per member is ~70 bytes less per idle browser (issue 5's target).
        self._deliver: dict[str, dict[str, Deliver]] = {}

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        """Write every room's state and close the file. Members are not removed: burns still in
        flight are on disk as jobs and are requeued when the room is next loaded."""
        for room in self._rooms.values():
            self._apply(room)
        await self.db.close()

    async def flush(self) -> None:
        await self.db.flush()

    def add_change_hook(self, hook: ChangeHook) -> Callable[[], None]:
        """Also call `hook` with every change, after `on_change`; returns its remover."""
        self._change_hooks.append(hook)

        def remove() -> None:
            if hook in self._change_hooks:
                self._change_hooks.remove(hook)

        return remove

    # ---- rooms -------------------------------------------------------------------------------

    @property
    def rooms(self) -> Mapping[str, Room]:
        return self._rooms

    def room(self, session_id: str) -> Room | None:
        return self._rooms.get(session_id.lower())

    def _room(self, session_id: str) -> Room:
        room = self._rooms.get(session_id.lower())
        if room is None:
            raise UnknownSession(f"session {session_id} is not loaded on this master")
        return room

    async def load(self, session_id: str) -> Room:
        """The live room of a session, read from disk the first time.

        With a shared database (`url` given) the first load also checks that the session is
        live and placed on this master, and raises `PlacedElsewhere` if not: every transport
        (links, the balancers' relay, the burn listener, resume events) loads rooms here, so a
        kiosk or client that reaches this master directly for another master's session is
        refused instead of starting a second room for it."""
        key = session_id.lower()
        room = self._rooms.get(key)
        if room is not None:
            return room
        await self.check_placement(key)
        queue, burners, kiosks = await self.db.load(key)
        room = self._rooms.get(key)  # another caller may have loaded it meanwhile
        if room is None:
            room = Room(
                key,
                policy=self._policy,
                clock=self._clock,
                wall=self._wall,
                queue=queue,
                burners=burners,
                kiosks=kiosks,
            )
            self._rooms[key] = room
            self._apply(room)
        return room

    async def check_placement(self, session_id: str) -> None:
        """Raise `PlacedElsewhere` unless the shared database places the session here (always
        passes without a shared database: one master per session by construction)."""
        if self._placed is None:
            return
        key = session_id.lower()
        owner = await self._placed.read(lambda conn: _placement(conn, key), single=True)
        if owner != self.url:
            raise PlacedElsewhere(key, owner)

    async def history(self, session_id: str, span: int, since: int = 0) -> dict[str, object]:
        """The session's burned/failed counts per bucket of `span` seconds since `since`, with
        the room's totals they were read at (None when the room is not loaded here)."""
        key = session_id.lower()
        room = self._rooms.get(key)
        # Taken before the read is queued: every result in these totals was written before it
        # (writes and reads run in order on one thread), and none after them is in the rows.
        totals = room.totals() if room is not None else None
        rows = await self.db.history(key, span, since)
        return {"session": key, "span": span, "since": since, "totals": totals, "rows": rows}

    async def suspend(self, session_id: str) -> None:
        room = self._room(session_id)
        room.suspend("suspended")
        self._apply(room)
        await self.db.flush()

    def resume(self, session_id: str) -> None:
        room = self._room(session_id)
        room.resume()
        self._apply(room)

    async def unload(self, session_id: str) -> None:
        """Remove every member, write the room and forget it; `load` brings it back."""
        room = self._rooms.get(session_id.lower())
        if room is None:
            return
        room.suspend("unloaded")
        self._apply(room)
        del self._rooms[room.session_id]
        self._deliver.pop(room.session_id, None)
        await self.db.flush()

    # ---- members -----------------------------------------------------------------------------

    def join(
        self,
        session_id: str,
        member_id: str,
        kind: MemberKind,
        deliver: Deliver,
        *,
        uid: str | None = None,
        credential_id: str | None = None,
        commands: bool = False,
        cancels: bool = False,
    ) -> Member:
        room = self._room(session_id)
        member = room.join(
            member_id,
            kind,
            uid=uid,
            credential_id=credential_id,
            commands=commands,
            cancels=cancels,
        )
        self._deliver.setdefault(room.session_id, {})[member_id] = deliver
        self._apply(room)
        return member

    def leave(self, session_id: str, member_id: str) -> None:
        room = self._rooms.get(session_id.lower())
        if room is None:
            return
        delivers = self._deliver.get(room.session_id)
        if delivers is not None:
            delivers.pop(member_id, None)
        room.leave(member_id)
        self._apply(room)

    async def handle(
        self,
        session_id: str,
        member_id: str,
        message: bp.Message,
        *,
        job: str | None = None,
        failure: tuple[str | None, str] | None = None,
    ) -> None:
        """Apply one message from a member; replies reach it through its `deliver`.

        `job` names the result this message reports (a burner's final status): it is remembered
        with the statistics the message changed, in the same write, so `counted` knows it after a
        restart too. `failure` is why that result failed: (reason code, the tool's detail).
        """
        room = self._room(session_id)
        match message:
            case bp.Queue(md5=md5) | bp.WhatIs(md5=md5):
                await self._resolve(room, (md5,))
            case bp.Cap(images=images):
                await self._resolve(room, images)
            case _:
                pass
        if member_id not in room.members:  # it left while the catalog was asked
            return
        uid = room.members[member_id].uid
        if failure is not None and uid is not None:
            room.reporting(uid, *failure)
        room.handle(member_id, message)
        if job is not None and uid is not None:
            room.note_job(uid, job)
        self._apply(room)

    def name_if_unnamed(self, session_id: str, uid: str, name: str) -> None:
        """Give burner `uid` the name its box calls it, unless an operator named it already."""
        room = self._room(session_id)
        burner = room.burners.get(uid)
        if burner is None or burner.name or not name:
            return
        try:
            room.set_name(uid, name)
        except RoomError:
            return  # a name the room does not take (too long, control characters): keep none
        self._apply(room)

    def counted(self, session_id: str, uid: str, job: str) -> bool:
        """Whether result `job` of burner `uid` has been counted in the session already."""
        room = self._rooms.get(session_id.lower())
        return room is not None and room.counted(uid, job)

    def open_tray(self, session_id: str, member_id: str, uid: str) -> None:
        """A commanding member asks a burner to open its tray (to find the physical box)."""
        self._command(session_id, member_id, "OPEN", lambda room: room.open_tray(uid))

    def cancel(self, session_id: str, member_id: str, uid: str) -> None:
        """A commanding member stops the burn on burner `uid` (see `Room.cancel`)."""
        self._command(session_id, member_id, "cancel", lambda room: room.cancel(uid))

    def set_common_only(self, session_id: str, member_id: str, uid: str, on: bool) -> None:
        """A commanding member marks burner `uid` as one that gets only common images."""
        self._command(
            session_id, member_id, "common_only", lambda room: room.set_common_only(uid, on)
        )

    def reorder(self, session_id: str, member_id: str, md5: str, position: int) -> None:
        """A commanding member moves image `md5` to `position` in the queue."""
        self._command(session_id, member_id, "reorder", lambda room: room.reorder(md5, position))

    def _command(
        self, session_id: str, member_id: str, what: str, action: Callable[[Room], object]
    ) -> None:
        # Commands with no burn-protocol verb: refusals reach the member as ERROR, as a refused
        # verb would, so every transport reports them the same way.
        room = self._room(session_id)
        member = room.members.get(member_id)
        if member is None:
            return
        try:
            if not member.may_command:
                raise NotAllowed(f"a {member.kind.value} client may not send {what}")
            action(room)
        except RoomError as exc:
            self._send(room.session_id, member_id, bp.Error(exc.code.value, str(exc)))
        self._apply(room)

    # ---- kiosks -------------------------------------------------------------------------------

    async def kiosk_hello(
        self,
        session_id: str,
        kiosk_id: int,
        *,
        name: str,
        version: str,
        burners: tuple[str, ...],
        images: tuple[str, ...],
        cache_used: int | None = None,
        cache_max: int | None = None,
    ) -> None:
        """A kiosk's whole state (see `Room.kiosk_hello`); raises `RoomError` when refused."""
        room = self._room(session_id)
        await self._resolve(room, images)  # names and sizes of the cached images, for display
        try:
            room.kiosk_hello(
                kiosk_id,
                name=name,
                version=version,
                burners=burners,
                images=images,
                cache_used=cache_used,
                cache_max=cache_max,
            )
        finally:
            self._apply(room)

    def kiosk_link(
        self, session_id: str, kiosk_id: int, link: LinkState, *, name: str | None = None
    ) -> None:
        """A kiosk's link came up, dropped within its grace period, or ended."""
        room = self._room(session_id)
        try:
            room.kiosk_link(kiosk_id, link, name=name)
        finally:
            self._apply(room)

    def kiosk_drive_gone(self, session_id: str, kiosk_id: int, uid: str) -> None:
        room = self._room(session_id)
        try:
            room.kiosk_drive_gone(kiosk_id, uid)
        finally:
            self._apply(room)

    def notify_expiry(self, credential_id: str, expires_at: float) -> int:
        """Tell every member holding this credential, in every room, when it expires."""
        notified = 0
        for room in self._rooms.values():
            notified += room.notify_expiry(credential_id, expires_at)
            self._apply(room)
        return notified

    # ---- effects -----------------------------------------------------------------------------

    async def _resolve(self, room: Room, md5s: tuple[str, ...]) -> None:
        for md5 in md5s:
            if room.image(md5) is not None:
                continue
            try:
                info = await self._catalog(md5.lower())
            except Exception:  # a broken catalog must not take the room down
                log.exception("catalog lookup failed", extra={"md5": md5})
                continue
            if info is not None:
                room.learn_image(info)

    def _send(self, session_id: str, member_id: str, payload: Payload) -> None:
        delivers = self._deliver.get(session_id)
        deliver = None if delivers is None else delivers.get(member_id)
        if delivers is None or deliver is None:
            return
        if isinstance(payload, Superseded | SessionClosed):
            del delivers[member_id]
        try:
            deliver(payload)
        except Exception:  # one broken transport must not stop delivery to the others
            log.exception("delivery failed", extra={"session": session_id, "member": member_id})

    def _apply(self, room: Room) -> None:
        effects = room.drain()
        for out in effects.outbound:
            self._send(room.session_id, out.recipient, out.payload)
        if self._on_change is not None:
            for change in effects.changes:
                try:
                    self._on_change(change.channel, change.data)
                except Exception:
                    log.exception("change hook failed", extra={"channel": change.channel})
        for hook in list(self._change_hooks):
            for change in effects.changes:
                try:
                    hook(change.channel, change.data)
                except Exception:
                    log.exception("change hook failed", extra={"channel": change.channel})
        self.db.submit(effects.writes)
