"""The session master's end of the relay: browser members of its rooms, per balancer link.

A `MasterHost` wraps the transport-free `Master` for browsers. Each balancer that talks to this
master — over the in-memory channel in embedded mode, or over the relay WebSocket in split mode —
gets one `HostLink`, and everything the link asks for (join, leave, re-auth, a client's command)
is keyed by that link's connection ids, so one balancer can never act for another's clients.
Commands from `wire.clientmsg` become master calls and burn-protocol requests; the master's
answer (`QOK` or `ERROR`, captured from the member's deliver callback while the command runs)
becomes the command's reply. Browsers follow the room through pub/sub channels and `snapshot`,
so the burn-protocol pushes meant for displays are not relayed to them; an expiry notice becomes
an `expiring` frame and a suspended room closes the socket with 4003.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from coordinator.balancer.auth import AuthRefused, Grant, check
from coordinator.master import (
    CredentialExpiring,
    Master,
    MemberKind,
    Payload,
    PlacedElsewhere,
    RoomError,
    SessionClosed,
)
from coordinator.store import Store
from wire import burnproto as bp
from wire import clientmsg as cm
from wire.relay import CloseCode

log = logging.getLogger(__name__)

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


class Link(Protocol):
    """How the host reaches the clients of one balancer."""

    def to_client(self, room: str, conn_id: str, text: str) -> None: ...

    def broadcast(self, room: str, text: str) -> None: ...

    def close_client(self, room: str, conn_id: str, code: CloseCode, reason: str) -> None: ...


# Handles frames whose action is not a browser command (the relay benchmark's echo); None
# answers them with an "unknown action" error.
Fallback = Callable[["HostLink", str, str, dict[str, Any], str | None], None]


@dataclass(slots=True)
class _Member:
    # One per seated browser, kept while it idles: slots and no per-member closure (the master's
    # deliver callback is the bound `deliver` of this record).
    host_link: HostLink
    room: str
    conn_id: str
    # Who it is, so a re-auth can be held to the same person (not the whole grant: idle
    # members should cost little).
    role: str
    person_id: int
    pending: list[bp.QOk | bp.Error] | None = None

    def deliver(self, payload: Payload) -> None:
        self.host_link.deliver(self, payload)


class MasterHost:
    """Browsers' view of one `Master`; `store` re-checks tokens that come over a socket."""

    def __init__(
        self,
        master: Master,
        store: Store,
        clock: Callable[[], float],
        *,
        fallback: Fallback | None = None,
    ) -> None:
        self.master = master
        self.store = store
        self.clock = clock
        self.fallback = fallback
        self.links: set[HostLink] = set()

    def attach(self, link: Link, name: str = "embedded") -> HostLink:
        hl = HostLink(self, link, name)
        self.links.add(hl)
        return hl

    @property
    def clients(self) -> int:
        return sum(len(hl.members) for hl in self.links)


class HostLink:
    """The master's side of one balancer: its joined clients and their commands."""

    def __init__(self, host: MasterHost, link: Link, name: str) -> None:
        self.host = host
        self.link = link
        self.name = name
        self.members: dict[str, _Member] = {}

    async def _grant(self, token: str, room: str, grant: Grant | None) -> Grant:
        if grant is not None:  # embedded: the balancer checked it in this process
            return grant
        now = self.host.clock()
        return await self.host.store.read(lambda conn: check(conn, token, room, now))

    async def join(self, room: str, conn_id: str, token: str, grant: Grant | None = None) -> None:
        """Seat a client in the room; raises `AuthRefused` with the close code if it may not."""
        g = await self._grant(token, room, grant)
        master = self.host.master
        try:
            r = await master.load(g.session_id)
        except PlacedElsewhere as exc:
            # A balancer that read the placement before the session moved: the client tries
            # again (1013) and is routed to the session's master.
            raise AuthRefused(CloseCode.TRY_AGAIN_LATER, str(exc)) from None
        if r.suspended:
            # The store says live (checked above): the room was resumed through rendezvous.
            master.resume(g.session_id)
        member = _Member(self, g.session_id, conn_id, g.role, g.person_id)
        self.members[conn_id] = member
        self._seat(g, member, conn_id)

    async def reauth(self, room: str, conn_id: str, token: str, grant: Grant | None = None) -> None:
        """Move a seated client to a refreshed credential, keeping its connection id."""
        member = self.members.get(conn_id)
        if member is None:
            raise AuthRefused(CloseCode.POLICY_VIOLATION, "not joined")
        g = await self._grant(token, room, grant)
        if (g.role, g.person_id) != (member.role, member.person_id):
            raise AuthRefused(CloseCode.POLICY_VIOLATION, "a new auth must be the same person")
        # The room keys expiry notices by credential: seat the member again under the new one.
        self.host.master.leave(member.room, conn_id)
        self._seat(g, member, conn_id)

    def _seat(self, g: Grant, member: _Member, conn_id: str) -> None:
        """Seat `member` in its room under grant `g`; if the room refuses, unseat it (4003)."""
        try:
            self.host.master.join(
                g.session_id,
                conn_id,
                MemberKind.BROWSER,
                member.deliver,
                credential_id=sys.intern(str(g.credential_id)),
                commands=g.commands,
            )
        except RoomError as exc:
            del self.members[conn_id]
            raise AuthRefused(CloseCode.SESSION_UNAVAILABLE, str(exc)) from None

    def leave(self, conn_id: str) -> None:
        member = self.members.pop(conn_id, None)
        if member is not None:
            self.host.master.leave(member.room, conn_id)

    def close(self) -> None:
        """The balancer is gone: every client it carried leaves its room."""
        for conn_id in list(self.members):
            self.leave(conn_id)
        self.host.links.discard(self)

    def deliver(self, member: _Member, payload: Payload) -> None:
        """What the master delivers to one browser member."""
        link = self.link
        if isinstance(payload, bp.QOk | bp.Error):
            if member.pending is not None:
                member.pending.append(payload)
        elif isinstance(payload, CredentialExpiring):
            link.to_client(member.room, member.conn_id, _dumps(cm.expiring(payload.expires_at)))
        elif isinstance(payload, SessionClosed):
            self.members.pop(member.conn_id, None)
            link.close_client(
                member.room,
                member.conn_id,
                CloseCode.SESSION_UNAVAILABLE,
                f"session {payload.session_id} {payload.reason}",
            )
        # Other burn-protocol pushes are for displays; browsers follow pub/sub channels.

    def reply(self, member: _Member, answer: dict[str, Any]) -> None:
        self.link.to_client(member.room, member.conn_id, _dumps(answer))

    def message(
        self, conn_id: str, message: dict[str, Any], raw: str | None = None
    ) -> Awaitable[None] | None:
        """Handle one client frame; returns an awaitable only when the master must be awaited."""
        member = self.members.get(conn_id)
        if member is None:
            return None  # left meanwhile, or a link speaking for a client it never joined
        action = message.get("action")
        fallback = self.host.fallback
        if fallback is not None and action not in cm.ACTIONS:
            fallback(self, member.room, conn_id, message, raw)
            return None
        try:
            command = cm.parse_command(message)
        except cm.CommandError as exc:
            self.reply(member, exc.reply())
            return None
        if isinstance(command, cm.PubSubCommand):
            # The balancer answers these; one arriving here came from a misbehaving link.
            self.reply(member, cm.reply(command.action, False, error="action: not relayed"))
            return None
        return self._command(member, command)

    def _command(self, member: _Member, command: cm.MasterCommand) -> Awaitable[None] | None:
        master = self.host.master
        room = master.room(member.room)
        if room is None:
            self.reply(member, cm.reply(command.action, False, error="session is not loaded"))
            return None
        match command:
            case cm.Snapshot():
                self.reply(member, cm.reply(command.action, True, result=room.snapshot()))
                return None
            case cm.OpenTray(uid=uid):
                member.pending = []
                master.open_tray(member.room, member.conn_id, uid)
                self._answer(member, command.action)
                return None
            case cm.QueueImage(md5=md5, count=count):
                return self._via_master(member, command.action, bp.Queue(md5, count))
            case cm.ClearQueue():
                return self._via_master(member, command.action, bp.QClear())
            case cm.NameBurner(uid=uid, name=name):
                try:
                    request: bp.Message = bp.Name(uid, name)
                except bp.ProtocolError as exc:
                    self.reply(member, cm.reply(command.action, False, error=f"name: {exc.text}"))
                    return None
                return self._via_master(member, command.action, request)
            case cm.CancelBurn(uid=uid):
                member.pending = []
                master.cancel(member.room, member.conn_id, uid)
                self._answer(member, command.action)
                return None
            case cm.CommonOnly(uid=uid, on=on):
                member.pending = []
                master.set_common_only(member.room, member.conn_id, uid, on)
                self._answer(member, command.action)
                return None
            case cm.Reorder(md5=md5, position=position):
                member.pending = []
                master.reorder(member.room, member.conn_id, md5, position)
                self._answer(member, command.action)
                return None
            case cm.History(span=span, since=since):
                return self._history(member, int(span), since)

    async def _history(self, member: _Member, span: int, since: int) -> None:
        result = await self.host.master.history(member.room, span, since)
        self.reply(member, cm.reply(cm.Action.HISTORY.value, True, result=result))

    async def _via_master(self, member: _Member, action: str, request: bp.Message) -> None:
        member.pending = []
        try:
            await self.host.master.handle(member.room, member.conn_id, request)
        except RoomError as exc:
            member.pending = None
            self.reply(member, cm.reply(action, False, error=str(exc)))
            return
        self._answer(member, action)

    def _answer(self, member: _Member, action: str) -> None:
        pending, member.pending = member.pending or [], None
        errors = [p for p in pending if isinstance(p, bp.Error)]
        if errors:
            self.reply(member, cm.reply(action, False, error=f"{errors[0].code}: {errors[0].text}"))
        else:
            self.reply(member, cm.reply(action, True))
