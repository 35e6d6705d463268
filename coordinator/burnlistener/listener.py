"""The burn-protocol TCP listener: legacy 'Buntu Stand burners, displays and command frontends.

Each accepted connection is greeted with `IDENT`, must answer with `ID`, and is then a member of
one session on the `Master`: a burner is asked for its capabilities (`CAPAB`), reports its
status, and is sent `BURN` when dispatch picks it; a display is pushed the queue, every burner's
status, friendly names and statistics (`STATS`) as they change; a command frontend may also
queue, clear, name and open trays (`OPEN\\t<uid>`). A credential about to expire is announced to
its connections as `ERROR\\tCREDENTIAL_EXPIRING`. Framing and parsing are `wire.burnproto`'s;
this module only moves bytes, decides who is let in (the shared `--burn-token`, an appliance
credential checked against the rendezvous store, a callback of your own, or an anonymous
read-only display when allowed; see `auth`), and watches burners' idle
`STATUS`: one silent for `silence_intervals` intervals is dropped, which requeues its burn. Time
comes from an injectable `Ticker` so tests step it instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from coordinator.backoff import Backoff
from coordinator.burnlistener.auth import (
    Authorize,
    Grant,
    Refused,
    chain,
    credential_authorizer,
    token_authorizer,
)
from coordinator.master import (
    CancelBurn,
    CredentialExpiring,
    Master,
    MemberKind,
    Payload,
    Room,
    RoomError,
    SessionClosed,
    Superseded,
    channels,
)
from coordinator.master.room import Burner
from coordinator.store import Store
from wire import burnproto as bp

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
# A client whose unsent output grows past this is not reading; drop it rather than buffer more.
MAX_SEND_BUFFER = 1024 * 1024
CLOSE_TIMEOUT = 5.0

_KINDS = {
    bp.ClientType.BURNER: MemberKind.BURNER,
    bp.ClientType.DISPLAY: MemberKind.DISPLAY,
    bp.ClientType.COMMAND: MemberKind.COMMAND,
}


class Ticker(Protocol):
    """The listener's sense of time: `now` in seconds, `tick` returns when to check again."""

    def now(self) -> float: ...

    async def tick(self) -> None: ...


class LoopTicker:
    """Real time: the event loop's clock, checked every `period` seconds."""

    def __init__(self, period: float) -> None:
        self.period = period

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def tick(self) -> None:
        await asyncio.sleep(self.period)


class BurnListener:
    """A running listener; `close()` then `await wait_closed()` to stop it."""

    def __init__(
        self,
        master: Master,
        *,
        authorize: Authorize | None,
        public_display: bool,
        display_session: str | None,
        ticker: Ticker,
        idle_interval: float,
        silence_intervals: int,
    ) -> None:
        self.master = master
        self.authorize = authorize
        self.public_display = public_display
        self.display_session = display_session
        self.ticker = ticker
        self.silence_limit = idle_interval * silence_intervals
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._unhook: Callable[[], None] | None = None
        # Wrong credentials in `ID` lines, per client address (issue 23: no unlimited guessing).
        self.backoff = Backoff("burn-protocol ID")

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._accept, host, port, limit=READ_CHUNK)
        self._sweeper = asyncio.create_task(self._sweep(), name="burnlistener-sweep")
        self._unhook = self.master.add_change_hook(self._on_change)

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the listener is not running")
        return int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        if self._unhook is not None:
            self._unhook()
            self._unhook = None
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self._connections):
            conn.close()

    def revoke(self, credential_ids: frozenset[int]) -> None:
        """Hang up on the clients that identified with a credential just revoked."""
        revoked = {str(c) for c in credential_ids}
        for conn in list(self._connections):
            if conn.credential_id is not None and conn.credential_id in revoked:
                log.info("burn client credential revoked", extra={"conn": conn.id})
                conn.refuse(
                    bp.ErrorCode.NOT_ALLOWED, "the credential of this connection was revoked"
                )

    async def wait_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()
        if self._sweeper is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=CLOSE_TIMEOUT)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        conn = _Connection(self, reader, writer)
        self._connections.add(conn)
        if task is not None:
            self._tasks.add(task)
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)
            if task is not None:
                self._tasks.discard(task)

    def _on_change(self, channel: str, data: Mapping[str, object]) -> None:
        """Statistics reach displays and commands only as pub/sub changes; turn those into
        `STATS` frames (the burner's, then the session totals) for the watchers of that room."""
        uid = data.get("uid")
        if not channel.endswith(".stats") or not isinstance(uid, str):
            return
        frames: dict[str, list[bp.Message]] = {}
        for conn in list(self._connections):
            sid = conn.session_id
            if not conn.watches or sid is None or channels.stats(sid) != channel:
                continue
            if sid not in frames:
                room = self.master.room(sid)
                burner = None if room is None else room.burners.get(uid)
                if room is None or burner is None:
                    frames[sid] = []
                else:
                    frames[sid] = [_burner_stats(burner), _total_stats(room)]
            for message in frames[sid]:
                conn.send(message)

    async def _sweep(self) -> None:
        # Runs for the listener's lifetime; each round is bounded by the connections present.
        while True:
            await self.ticker.tick()
            now = self.ticker.now()
            for conn in list(self._connections):
                if conn.watched and now - conn.last_seen > self.silence_limit:
                    log.info("burn client silent, dropping it", extra={"conn": conn.id})
                    conn.abort()


class _Connection:
    def __init__(
        self, listener: BurnListener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.listener = listener
        self.master = listener.master
        self.reader = reader
        self.writer = writer
        self.id = f"burn-{uuid.uuid4().hex[:16]}"
        self.decoder = bp.Decoder()
        self.last_seen = listener.ticker.now()
        self.session_id: str | None = None
        self.client_type: bp.ClientType | None = None
        self.credential_id: str | None = None
        self.closing = False
        peer = writer.get_extra_info("peername")
        self.address = f"addr:{peer[0] if isinstance(peer, tuple) else peer}"

    @property
    def watched(self) -> bool:
        """Burners must keep talking; so must a connection that has not identified yet."""
        return self.client_type in (None, bp.ClientType.BURNER) and not self.closing

    @property
    def watches(self) -> bool:
        """Displays and commands are pushed the queue, statuses and statistics."""
        return self.client_type in (bp.ClientType.DISPLAY, bp.ClientType.COMMAND)

    # ---- output ------------------------------------------------------------------------------

    def send(self, message: bp.Message) -> None:
        if self.closing:
            return
        self.writer.write(bp.encode(message))
        if self.writer.transport.get_write_buffer_size() > MAX_SEND_BUFFER:
            log.warning("burn client not reading, dropping it", extra={"conn": self.id})
            self.abort()

    def refuse(self, code: bp.ErrorCode, text: str) -> None:
        """Send ERROR and hang up after it is written."""
        self.send(bp.Error(code.value, text))
        self.close()

    def deliver(self, payload: Payload) -> None:
        match payload:
            case SessionClosed(reason=reason):
                self.refuse(bp.ErrorCode.NOT_ALLOWED, f"the session was {reason}")
            case Superseded():
                self.refuse(bp.ErrorCode.NOT_ALLOWED, "this burner connected again elsewhere")
            case CredentialExpiring(expires_at=expires_at):
                # A notice, not a refusal: the connection stays, and the operator watching a
                # legacy client learns to renew the credential before it is refused.
                when = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                log.info("credential expiring on a burn client", extra={"conn": self.id})
                self.send(
                    bp.Error(
                        bp.ErrorCode.CREDENTIAL_EXPIRING.value,
                        f"the credential of this connection expires at {when}; "
                        "renew it and reconnect before then",
                    )
                )
            case CancelBurn():
                # The room refuses to cancel on a member without `cancels`; TCP burners have
                # no verb for it, so one arriving here is not for us.
                log.warning("cancel delivered to a burn-protocol client", extra={"conn": self.id})
            case _:
                self.send(payload)

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.writer.close()

    def abort(self) -> None:
        self.closing = True
        self.writer.transport.abort()

    # ---- input -------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            self.send(bp.Ident())
            await self._read_loop()
        except (ConnectionError, OSError) as exc:
            log.info("burn client connection lost", extra={"conn": self.id, "error": repr(exc)})
        except Exception:
            log.exception("burn client handler failed", extra={"conn": self.id})
        finally:
            if self.session_id is not None:
                self.master.leave(self.session_id, self.id)
            self.closing = True
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                await asyncio.wait_for(self.writer.wait_closed(), CLOSE_TIMEOUT)

    async def _read_loop(self) -> None:
        # Ends when the peer hangs up or we decide to close; each read is at most READ_CHUNK.
        while not self.closing:
            data = await self.reader.read(READ_CHUNK)
            if not data:
                if self.decoder.end_of_stream():
                    log.info("burn client hung up mid-frame", extra={"conn": self.id})
                return
            events = self.decoder.feed(data)
            if events:
                self.last_seen = self.listener.ticker.now()
            for event in events:
                if self.writer.is_closing():
                    return
                await self._event(event)

    async def _event(self, event: bp.Event) -> None:
        if isinstance(event, bp.FrameTooLarge):
            self.refuse(event.code, event.text)
            return
        if isinstance(event, bp.ProtocolError):
            self.send(bp.ErrorReply(event))
            return
        if self.session_id is None:
            if isinstance(event, bp.Id):
                await self._identify(event)
            else:
                self.send(
                    bp.Error(bp.ErrorCode.NOT_IDENTIFIED.value, f"send ID before {event.VERB}")
                )
            return
        if isinstance(event, bp.Id):
            self.send(bp.Error(bp.ErrorCode.NOT_ALLOWED.value, "this connection is identified"))
            return
        try:
            if isinstance(event, bp.Open) and event.uid is not None:
                # A command naming a burner; the master checks that this member may command.
                self.master.open_tray(self.session_id, self.id, event.uid)
            else:
                await self.master.handle(self.session_id, self.id, event)
        except RoomError as exc:  # the session went away under us
            self.refuse(exc.code, str(exc))

    async def _identify(self, ident: bp.Id) -> None:
        if ident.version != bp.PROTOCOL_VERSION:
            self.send(
                bp.Error(
                    bp.ErrorCode.UNSUPPORTED_VERSION.value,
                    f"this server speaks V{bp.PROTOCOL_VERSION}, not V{ident.version}",
                )
            )
            return
        kind = ident.client_type
        backoff = self.listener.backoff
        retry = backoff.wait((self.address,))
        if retry:
            self.refuse(
                bp.ErrorCode.NOT_ALLOWED,
                f"too many failed attempts from this address; try again in {retry} s",
            )
            return
        try:
            grant = await self._grant(ident)
        except Refused as exc:
            log.info(
                "burn client refused", extra={"conn": self.id, "type": kind.value, "why": exc.text}
            )
            if exc.wrong_credential:
                backoff.failed((self.address,))
            self.refuse(exc.code, exc.text)
            return
        if grant is None:
            if ident.credential is None:
                text = f"a {kind.value} must present a credential in its ID line"
            else:
                text = f"the credential is not accepted for a {kind.value}"
            log.info("burn client refused", extra={"conn": self.id, "type": kind.value})
            if ident.credential is not None:
                backoff.failed((self.address,))
            self.refuse(bp.ErrorCode.NOT_ALLOWED, text)
            return
        try:
            room = await self.master.load(grant.session_id)
            self.master.join(
                room.session_id,
                self.id,
                _KINDS[kind],
                self.deliver,
                uid=ident.uid if kind is bp.ClientType.BURNER else None,
                credential_id=grant.credential_id,
            )
        except RoomError as exc:
            self.refuse(exc.code, str(exc))
            return
        self.session_id, self.client_type = room.session_id, kind
        self.credential_id = grant.credential_id
        log.info(
            "burn client joined",
            extra={
                "conn": self.id,
                "type": kind.value,
                "uid": ident.uid,
                "session": room.session_id,
            },
        )
        if kind is bp.ClientType.BURNER:
            self.send(bp.Capab())
        else:
            # A display starts from the current picture, then gets every change.
            self.send(room.queue_list())
            self.send(room.status_list())
            for burner in sorted(room.burners.values(), key=lambda b: b.uid):
                self.send(_burner_stats(burner))
            self.send(_total_stats(room))

    async def _grant(self, ident: bp.Id) -> Grant | None:
        listener = self.listener
        if ident.credential is None:
            if (
                ident.client_type is bp.ClientType.DISPLAY
                and listener.public_display
                and listener.display_session is not None
            ):
                return Grant(listener.display_session)
            return None
        if listener.authorize is None:
            return None
        try:
            result = await listener.authorize(ident.client_type, ident.credential)
        except Refused:
            raise
        except Exception:
            log.exception("burn client authorization failed", extra={"conn": self.id})
            return None
        if isinstance(result, str):
            return Grant(result)
        return result


def _burner_stats(burner: Burner) -> bp.Stats:
    stats = burner.stats
    speed = stats.mean_speed
    return bp.Stats(burner.uid, stats.burned, stats.failed, None if speed is None else round(speed))


def _total_stats(room: Room) -> bp.Stats:
    """The session totals; the mean speed is over every passed burn, not a mean of means."""
    all_stats = [b.stats for b in room.burners.values()]
    samples = sum(s.speed_samples for s in all_stats)
    speed = round(sum(s.speed_total for s in all_stats) / samples) if samples else None
    return bp.Stats(None, sum(s.burned for s in all_stats), sum(s.failed for s in all_stats), speed)


async def start_burn_listener(
    master: Master,
    host: str,
    port: int,
    *,
    burn_token: str | None = None,
    session_id: str | None = None,
    store: Store | None = None,
    clock: Callable[[], float] = time.time,
    authorize: Authorize | None = None,
    public_display: bool = False,
    ticker: Ticker | None = None,
    idle_interval: float = bp.IDLE_STATUS_INTERVAL,
    silence_intervals: int = 3,
) -> BurnListener:
    """Listen for burn-protocol clients on `host:port` (port 0 picks a free one).

    `burn_token` admits any client type presenting it into `session_id`. With `store`, an
    appliance credential in the `ID` line admits into the newest live session of its show,
    checked against the store at `clock()` time; the token, when set, is tried first.
    `authorize` replaces both with a check of your own. With `public_display`, a DISPLAY without
    a credential may watch `session_id` read-only.
    """
    if idle_interval <= 0 or silence_intervals < 1:
        raise ValueError("idle_interval must be positive and silence_intervals at least 1")
    if (burn_token is not None or public_display) and session_id is None:
        raise ValueError("burn_token and public_display need the session_id they admit into")
    if authorize is None:
        authorizers: list[Authorize] = []
        if burn_token is not None and session_id is not None:
            authorizers.append(token_authorizer(burn_token, session_id))
        if store is not None:
            authorizers.append(credential_authorizer(store, clock))
        authorize = chain(*authorizers) if authorizers else None
    listener = BurnListener(
        master,
        authorize=authorize,
        public_display=public_display,
        display_session=session_id,
        ticker=ticker or LoopTicker(idle_interval),
        idle_interval=idle_interval,
        silence_intervals=silence_intervals,
    )
    await listener.start(host, port)
    return listener
