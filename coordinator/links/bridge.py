"""What appliance links mean to a session: the bridge between agent messages and the `Master`.

An appliance's link carries the agent messages of `wire.agentmsg`. The bridge picks the session
(the one the agent asked for with `?session=`, else the most recent live session of the appliance's
show), joins one BURNER member per drive the agent announces in `hello` (member ids are per link,
so a restarted agent supersedes its old link's members instead of clashing with them; a report for
a drive not announced on this link joins it, so reports replayed onto a renewed link before the
next `hello` still count), turns `hello`/`status`/`result`/`drive_gone` into `Cap`, `Status` and
leaves for `Master.handle`, and turns what the master delivers to those members (`Burn`, `Open`,
`Name`, `Error`, `CancelBurn`, notices) back into agent messages, looking up a burn's SHA-256, size
and URL among the show's takes. Results are deduplicated by the agent's job id, which the room
keeps with the statistics it changed (one write to master.db), so a report replayed after a link
was renewed, or after the coordinator itself crashed, counts once. Members stay joined while a link
waits within its grace period (the burn goes on in the box); they leave, and their burns are
requeued, when the link ends. The bridge also tells the room about the kiosk itself
(`Master.kiosk_*`): its name, version, burners and cached images from each `hello`, and its link
state: `online` when a link opens or resumes, `reconnecting` while the socket is gone within the
grace period, `offline` when the link ends. Only an appliance's newest link speaks for it, so the
old link of a restarted agent expiring later does not mark the kiosk offline.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from coordinator.errors import Misdirected, NotFound
from coordinator.images.blobs import ImageStore
from coordinator.images.catalog import ImageInfo, images_for, record_extracted
from coordinator.links.hub import Appliance, Link
from coordinator.links.takes import live_session, show_take, show_takes
from coordinator.master import (
    CancelBurn,
    CredentialExpiring,
    Deliver,
    LinkState,
    Master,
    MemberKind,
    Payload,
    PlacedElsewhere,
    RoomError,
    SessionClosed,
    Superseded,
)
from coordinator.store import Store
from coordinator.swarm import PeerKeys, Tracker
from coordinator.swarm.relay import TrackerRelay
from coordinator.swarm.tokens import KEY_FILENAME
from wire import agentmsg as am
from wire import burnproto as bp
from wire import link as wl
from wire import swarm as sw

log = logging.getLogger(__name__)

# The agent's reason for a job stopped by an operator or at the kiosk (appliance.agent).
CANCELLED = "cancelled"

MasterGetter = Callable[[], Master | None]


@dataclass(eq=False)
class _Agent:
    link: Link
    session: str | None
    # Turns one delivery into what the agent is sent (the bridge's `_deliver_one`).
    forward: Callable[[_Agent, str, Payload], Awaitable[None]]
    drives: dict[str, str] = field(default_factory=dict)  # uid -> member id
    deliveries: deque[tuple[str, Payload]] = field(default_factory=deque)
    # Runs only while deliveries wait: an idle link holds no task (10,000 idle kiosks add up).
    pump: asyncio.Task[None] | None = None
    ended: bool = False
    peer_token: am.PeerToken | None = None  # the last one sent, renewed while the agent shares

    def member_id(self, uid: str) -> str:
        return f"link:{self.link.token[:16]}:{uid}"

    def deliver_to(self, uid: str) -> Deliver:
        # The master's deliver must only enqueue; the pump does the (async) rest in order.
        def deliver(payload: Payload) -> None:
            if self.ended:
                return
            self.deliveries.append((uid, payload))
            if self.pump is None:
                self.pump = asyncio.create_task(self._drain(), name=f"link-pump-{uid[:8]}")

        return deliver

    async def _drain(self) -> None:
        # One pump at a time keeps the master's deliveries in order through the async lookups.
        try:
            while self.deliveries:
                uid, payload = self.deliveries.popleft()
                await self.forward(self, uid, payload)
        finally:
            self.pump = None

    def end(self) -> None:
        self.ended = True
        self.deliveries.clear()
        if self.pump is not None:
            self.pump.cancel()


class ApplianceBridge:
    """The `LinkHandler` of production: appliance links as BURNER members of a session."""

    def __init__(
        self, store: Callable[[], Store], master: MasterGetter, *, peer_key: str | None = None
    ) -> None:
        self._store = store
        self._master = master
        self._peer_key = peer_key  # shared by every node of a deployment; None: DIR/peer.key
        self._agents: dict[str, _Agent] = {}
        # Appliance id -> merged token of its newest link, the one whose state the kiosk shows.
        self._newest: dict[int, str] = {}
        self.tracker = Tracker()
        self.relay: TrackerRelay | None = None  # the other nodes' trackers, once live starts
        self._keys: PeerKeys | None = None

    def _images(self) -> ImageStore:
        return images_for(self._store())

    # ---- LinkHandler

    async def admit(self, appliance: Appliance) -> str | None:
        wanted = appliance.requested_session
        session = await self._store().read(
            lambda conn: live_session(conn, appliance.show_id, wanted)
        )
        if wanted is not None and session is None:
            raise NotFound(
                f"session {wanted!r} is not a live session of show {appliance.show_id}",
                field="session",
            )
        master = self._master()
        if session is not None and master is not None:
            # A kiosk that reached this master directly (its own URL, not a balancer) for a
            # session placed on another master must not make this one run a second room.
            try:
                await master.check_placement(session)
            except PlacedElsewhere as exc:
                raise Misdirected(f"{exc}; link through a balancer", field="session") from None
        return session

    async def opened(self, link: Link, *, resumed: bool) -> None:
        self._newest[link.appliance.id] = link.token
        if resumed and link.token in self._agents:
            # Same link, same members; the agent's hello refreshes the rest.
            await self._kiosk_link(self._agents[link.token], LinkState.ONLINE)
            return
        agent = _Agent(link, link.session, self._deliver_one)
        self._agents[link.token] = agent
        show = link.appliance.show_id
        takes = await self._store().read(lambda conn: show_takes(conn, show, self._images()))
        self._send(agent, am.Welcome(agent.session, show, link.appliance.name))
        self._send(agent, am.Catalog(tuple(takes)))
        await self._renew_token(agent)
        await self._kiosk_link(agent, LinkState.ONLINE)

    async def suspended(self, link: Link) -> None:
        agent = self._agents.get(link.token)
        if agent is not None:
            await self._kiosk_link(agent, LinkState.RECONNECTING)

    async def received(self, link: Link, payload: wl.JsonValue) -> None:
        agent = self._agents.get(link.token)
        if agent is None:
            return
        try:
            message = am.parse_from_agent(payload)
        except am.AgentMessageError as exc:
            log.info(
                "bad agent message",
                extra={"appliance": link.appliance.id, "field": exc.field, "error": exc.text},
            )
            self._send(agent, am.Error.of(exc))
            return
        try:
            match message:
                case am.Hello():
                    await self._hello(agent, message)
                case am.Status(uid=uid, status=value):
                    if not self._counts_twice(agent, uid, value):
                        await self._handle(agent, uid, bp.Status(value))
                case am.Result():
                    await self._result(agent, message)
                case am.Extracted():
                    await self._extracted(agent, message)
                case am.DriveGone(uid=uid):
                    self._leave(agent, uid)
                    master = self._master()
                    if master is not None and agent.session is not None:
                        master.kiosk_drive_gone(agent.session, link.appliance.id, uid)
                case am.Have() | am.Want() | am.BadPeer():
                    await self._swarm(agent, message)
        except RoomError as exc:
            # The session went away under us (suspended, unloaded): say so, keep the link.
            self._send(agent, am.Error(exc.code.value, str(exc)))

    async def closed(self, link: Link, *, formal: bool, unacked: tuple[wl.JsonValue, ...]) -> None:
        agent = self._agents.pop(link.token, None)
        if agent is None:
            return
        agent.end()
        self.tracker.forget(link.appliance.show_id, link.token)
        if self.relay is not None:
            await self.relay.forget(link.appliance.show_id, link.token)
        for uid in list(agent.drives):
            self._leave(agent, uid)
        await self._kiosk_link(agent, LinkState.OFFLINE)
        if self._newest.get(link.appliance.id) == link.token:
            del self._newest[link.appliance.id]
        if unacked:
            # Orders the agent never confirmed: the leave above requeued their burns.
            log.info(
                "link ended with undelivered orders",
                extra={"appliance": link.appliance.id, "count": len(unacked)},
            )

    async def _takes_of(self, show: int) -> list[am.Take]:
        return await self._store().read(lambda conn: show_takes(conn, show, self._images()))

    async def catalog_changed(self, _image: ImageInfo) -> None:
        """An image entered the store (uploaded, or fetched from its take's URL): its takes now
        come from the store with a chunk manifest, so every linked kiosk is sent its show's
        catalog."""
        by_show: dict[int, list[_Agent]] = {}
        for agent in self._agents.values():
            by_show.setdefault(agent.link.appliance.show_id, []).append(agent)
        for show, agents in by_show.items():
            takes = await self._takes_of(show)
            for agent in agents:
                if not agent.ended:
                    self._send(agent, am.Catalog(tuple(takes)))

    # ---- sharing among the kiosks of a show

    async def _renew_token(self, agent: _Agent) -> None:
        """Send the agent a fresh peer token (and its show's key) when its last one is due."""
        if self._keys is None:
            keys = PeerKeys(self._store().data_dir / KEY_FILENAME, shared=self._peer_key)
            await asyncio.to_thread(keys.load)
            self._keys = keys
        if self._keys.due(agent.peer_token):
            appliance = agent.link.appliance
            agent.peer_token = self._keys.issue(appliance.show_id, appliance.id)
            self._send(agent, agent.peer_token)

    async def _swarm(self, agent: _Agent, message: am.Have | am.Want | am.BadPeer) -> None:
        appliance = agent.link.appliance
        show = appliance.show_id
        match message:
            case am.Have():
                try:
                    self.tracker.update(
                        show, agent.link.token, appliance.id, appliance.name, message
                    )
                except sw.SwarmError as exc:
                    self._send(agent, am.Error(am.ErrorCode.BAD_MESSAGE.value, f"chunks: {exc}"))
                    return
                if self.relay is not None:
                    await self.relay.have(
                        show, agent.link.token, appliance.id, appliance.name, message
                    )
            case am.Want(sha256=sha256):
                self._send(agent, self.tracker.peers(show, sha256, agent.link.token))
            case am.BadPeer():
                reporter = appliance.name or str(appliance.id)
                self.tracker.bad_peer(show, reporter, message)
                if self.relay is not None:
                    await self.relay.bad_peer(show, reporter, message)
        await self._renew_token(agent)

    # ---- agent → master

    async def _hello(self, agent: _Agent, hello: am.Hello) -> None:
        master = self._master()
        if agent.session is None:
            appliance = agent.link.appliance
            session = await self._store().read(
                lambda conn: live_session(conn, appliance.show_id, None)
            )
            if session is None:
                return  # nothing to join yet; the agent works from its cache meanwhile
            if master is not None:
                try:
                    await master.check_placement(session)
                except PlacedElsewhere as exc:
                    # Not this master's to run (see `admit`): join nothing, try at the next hello.
                    self._send(agent, am.Error(am.ErrorCode.NO_SESSION.value, str(exc)))
                    return
            agent.session = session
            agent.link.session = agent.session
            self._send(agent, am.Welcome(agent.session, appliance.show_id, appliance.name))
        if master is None:
            self._send(agent, am.Error(am.ErrorCode.NO_SESSION.value, "no session master here"))
            return
        room = await master.load(agent.session)
        # What a drive can burn: what its box holds, and every take the box can fetch from a
        # URL when told to burn it (a fresh kiosk holds nothing, yet can burn the whole catalog).
        show = agent.link.appliance.show_id
        takes = await self._store().read(lambda conn: show_takes(conn, show, self._images()))
        fetchable = {t.md5 for t in takes if t.url}
        present = {d.uid for d in hello.drives}
        for uid in [u for u in agent.drives if u not in present]:
            self._leave(agent, uid)
        for drive in hello.drives:
            member = agent.drives.get(drive.uid)
            if member is None:
                member = self._join(master, room.session_id, agent, drive.uid)
            burnable = tuple(sorted(fetchable.union(drive.images)))
            await master.handle(room.session_id, member, bp.Cap(drive.capabilities, burnable))
            if not self._counts_twice(agent, drive.uid, drive.status):
                await master.handle(room.session_id, member, bp.Status(drive.status))
            burner = room.burners.get(drive.uid)
            if burner is not None and burner.name and burner.name != drive.name:
                self._send(agent, am.Name(drive.uid, burner.name))
            else:
                # Until an operator names it, a drive is shown by its box's name for it.
                master.name_if_unnamed(room.session_id, drive.uid, drive.name)
        if self._newest.get(agent.link.appliance.id) == agent.link.token:
            # The cache is what the hello says the drives can burn from: the same images on
            # every drive of a box, so their union is the box's cache.
            images = sorted({m for d in hello.drives for m in d.images})
            info = hello.appliance
            await master.kiosk_hello(
                room.session_id,
                agent.link.appliance.id,
                name=agent.link.appliance.name or info.name,
                version=info.version,
                burners=tuple(d.uid for d in hello.drives),
                images=tuple(images),
                cache_used=info.cache_used,
                cache_max=info.cache_max,
            )

    async def _kiosk_link(self, agent: _Agent, state: LinkState) -> None:
        """Tell the room how the kiosk's link stands, if this is the kiosk's newest link."""
        appliance = agent.link.appliance
        master = self._master()
        if (
            master is None
            or agent.session is None
            or self._newest.get(appliance.id) != agent.link.token
        ):
            return
        try:
            if state is LinkState.ONLINE:
                await master.load(agent.session)
            elif master.room(agent.session) is None:
                return  # an unloaded room is not brought back to hear that a link went
            master.kiosk_link(agent.session, appliance.id, state, name=appliance.name or None)
        except RoomError as exc:
            log.info(
                "kiosk link state not recorded",
                extra={"appliance": appliance.id, "link": state.value, "error": str(exc)},
            )

    async def _handle(
        self,
        agent: _Agent,
        uid: str,
        message: bp.Message,
        *,
        job: str | None = None,
        failure: tuple[str | None, str] | None = None,
    ) -> bool:
        master = self._master()
        if master is None or agent.session is None:
            self._send(
                agent,
                am.Error(
                    am.ErrorCode.NO_SESSION.value,
                    f"no live session to report drive {uid} to; the report was not applied",
                ),
            )
            return False
        member = agent.drives.get(uid)
        if member is None:
            # A report replayed onto a renewed link arrives before the agent's next hello:
            # join the drive now (the room remembers what it can burn) so nothing is lost.
            room = await master.load(agent.session)
            member = self._join(master, room.session_id, agent, uid)
        await master.handle(agent.session, member, message, job=job, failure=failure)
        return True

    def _join(self, master: Master, session: str, agent: _Agent, uid: str) -> str:
        member = agent.member_id(uid)
        master.join(
            session,
            member,
            MemberKind.BURNER,
            agent.deliver_to(uid),
            uid=uid,
            credential_id=str(agent.link.appliance.credential_id),
            cancels=True,  # the agent can stop a burn when told `cancel`
        )
        agent.drives[uid] = member
        return member

    async def _extracted(self, agent: _Agent, found: am.Extracted) -> None:
        show = agent.link.appliance.show_id
        changed = await self._store().write(
            lambda conn: record_extracted(
                conn, show, found.sha256, found.extracted_size, found.extracted_sha256
            )
        )
        log.info(
            "kiosk reported what a take unpacks to",
            extra={"appliance": agent.link.appliance.id, "sha256": found.sha256, "takes": changed},
        )

    async def _result(self, agent: _Agent, result: am.Result) -> None:
        master = self._master()
        if master is not None and agent.session is not None:
            room = await master.load(agent.session)
            if room.counted(result.uid, result.job):
                log.info("duplicate result dropped", extra={"job": result.job, "uid": result.uid})
                return
        kind = bp.StatusKind.MD5PASS if result.ok else bp.StatusKind.MD5FAIL
        # A burn the room did not see (made offline, or its progress reached no coordinator) is
        # reported as complete first, so its outcome counts like any other; a cancelled one made
        # no disc and is no failure of the drive, so it is only passed on as the drive's status.
        unseen = result.reason != CANCELLED and not self._burning(agent, result.uid)
        # What the drive said last (IDLE after a hello, say): the made-up progress below is not
        # its word, so that status is given back once the result has counted.
        said = self._status(agent, result.uid) if unseen else None
        if unseen and not await self._handle(
            agent, result.uid, bp.Status(bp.StatusValue.progress(100))
        ):
            return
        failure = None if result.ok else (result.reason, result.detail or "")
        await self._handle(
            agent, result.uid, bp.Status(bp.StatusValue(kind)), job=result.job, failure=failure
        )
        if said is not None and said.kind not in (bp.StatusKind.MD5PASS, bp.StatusKind.MD5FAIL):
            await self._handle(agent, result.uid, bp.Status(said))

    def _status(self, agent: _Agent, uid: str) -> bp.StatusValue | None:
        """The drive's status as the room has it (None: not known there)."""
        master = self._master()
        room = None if master is None or agent.session is None else master.room(agent.session)
        burner = None if room is None else room.burners.get(uid)
        return None if burner is None else burner.status

    def _burning(self, agent: _Agent, uid: str) -> bool:
        """Whether the room sees a burn on this drive, so a pass or fail now would count."""
        master = self._master()
        room = None if master is None or agent.session is None else master.room(agent.session)
        burner = None if room is None else room.burners.get(uid)
        if burner is None:
            return False
        return burner.job is not None or (
            burner.status is not None and burner.status.kind is bp.StatusKind.PROGRESS
        )

    def _counts_twice(self, agent: _Agent, uid: str, value: bp.StatusValue) -> bool:
        """A drive's own MD5PASS/MD5FAIL while the room sees it burning: leave it to `result`.

        The room counts a pass or fail on a burning burner. An agent says the outcome twice, as
        the drive's status and as the journaled `result` (deduplicated by job id); only the
        result may count, or a burn would count twice, and a burn made offline (no burn in the
        room) would not count at all.
        """
        ended = value.kind in (bp.StatusKind.MD5PASS, bp.StatusKind.MD5FAIL)
        return ended and self._burning(agent, uid)

    def _leave(self, agent: _Agent, uid: str) -> None:
        member = agent.drives.pop(uid, None)
        master = self._master()
        if member is not None and master is not None and agent.session is not None:
            master.leave(agent.session, member)

    # ---- master → agent

    async def _deliver_one(self, agent: _Agent, uid: str, payload: Payload) -> None:
        try:
            message = await self._to_agent(agent, uid, payload)
        except Exception:
            log.exception("could not turn a delivery into an agent message")
            return
        if message is not None:
            self._send(agent, message)

    async def _to_agent(
        self, agent: _Agent, uid: str, payload: Payload
    ) -> am.FromCoordinator | None:
        match payload:
            case bp.Burn(md5=md5):
                show = agent.link.appliance.show_id
                take = await self._store().read(
                    lambda conn: show_take(conn, show, md5, self._images())
                )
                if take is None:
                    return am.Burn(uid, md5, None, None, None, md5)
                return am.Burn(uid, md5, take.sha256, take.size, take.url, take.name)
            case bp.Open():
                return am.Open(uid)
            case CancelBurn(uid=cancelled):
                return am.Cancel(cancelled)
            case bp.Name(uid=named, friendly=friendly):
                return am.Name(named, friendly)
            case bp.Error(code=code, text=text):
                return am.Error(code, text)
            case Superseded():
                agent.drives.pop(uid, None)  # the same drive joined through a newer link
                return None
            case SessionClosed(reason=reason):
                agent.drives.pop(uid, None)
                if agent.session is None:
                    return None
                log.info("session closed under a link", extra={"reason": reason})
                agent.session = agent.link.session = None
                appliance = agent.link.appliance
                return am.Welcome(None, appliance.show_id, appliance.name)
            case CredentialExpiring():
                return None  # appliance credentials do not expire on their own
            case _:
                return None  # replies meant for watchers (QOK, QLIST, ...) are not for a drive

    def _send(self, agent: _Agent, message: am.FromCoordinator) -> None:
        try:
            agent.link.send(am.encode(message))
        except wl.UnackedOverflow:
            log.warning(
                "agent is not acking; message dropped",
                extra={"appliance": agent.link.appliance.id, "type": message.TYPE},
            )
        except wl.LinkError:
            pass  # the link ended meanwhile; its members have left
