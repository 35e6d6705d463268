"""The Redis pub/sub backend: several coordinator nodes share live traffic through one Redis.

Each node keeps its own registry of local subscribers and holds one Redis ``PSUBSCRIBE`` per
pattern that has at least one local subscriber: the registry's *first* signal sends PSUBSCRIBE,
its *last* signal PUNSUBSCRIBE, on one dedicated subscriber connection read by one task. A
publish is only a Redis ``PUBLISH``; the message comes back through the node's own pattern
subscriptions like everyone else's, so local subscribers get it exactly once. Channels and
patterns are prefixed with a namespace (``burnstand:`` by default) so several deployments can
share a Redis. When the connection drops the node logs one error line, reports unhealthy,
refuses publishes with ``PubSubUnavailable`` (Redis pub/sub is at-most-once: a message nobody
could carry is better refused loudly than lost quietly), reconnects with bounded, jittered
backoff and re-PSUBSCRIBEs every pattern its registry holds. Subscribe and unsubscribe return
once Redis has confirmed the change, so a publish from any node right after the reply is
delivered (or, for unsubscribe, no longer is).

Why one module of some 530 lines: it is one class, `RedisPubSub`, and its states interlock (a
subscribe waits on the confirmation the reader task sees; a drop fails the waiters, and the
reconnect resubscribes what the registry holds while new subscribes queue behind it). Split into
files, a reader would have to hold that one state machine across all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.connection import Connection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from wire.pubsub import MAX_PATTERN_LENGTH, MAX_PATTERNS_PER_SUBSCRIBER

from .base import (
    LocalFanout,
    PubSubConfigError,
    PubSubHealth,
    PubSubUnavailable,
    Subscriber,
    check_channel,
    encode_data,
    handle_frame,
)

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "burnstand:"

# Failures that mean "this connection is gone"; anything else is a bug and must surface.
_CONNECTION_ERRORS = (RedisError, OSError, EOFError)
_PSUBSCRIBE = b"psubscribe"
_PUNSUBSCRIBE = b"punsubscribe"
_PMESSAGE = b"pmessage"
# Patterns per PSUBSCRIBE when resubscribing after a reconnect: keeps each command small.
_RESUBSCRIBE_BATCH = 256


class _Wire(Protocol):
    """The typed subset of a redis-py connection this module drives by hand."""

    async def connect(self) -> None: ...

    async def send_command(self, *args: Any, **kwargs: Any) -> None: ...

    async def read_response(self, disable_decoding: bool = False) -> Any: ...

    async def disconnect(self, nowait: bool = False) -> None: ...


def _glob_literal(text: str) -> str:
    """``text`` escaped so a Redis glob matches it literally (the namespace may hold `*`)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _settle(fut: asyncio.Future[bool], value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


def _settle_from(target: asyncio.Future[bool], source: asyncio.Future[bool]) -> None:
    _settle(target, not source.cancelled() and source.result())


def _describe(url: str) -> str:
    """Where Redis is, for logs: the URL without credentials or query."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<unparseable Redis URL>"
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{port or 6379}{parts.path}"


class RedisPubSub:
    """``PubSub`` across nodes through Redis PSUBSCRIBE/PUBLISH."""

    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        connect_timeout: float = 2.0,
        command_timeout: float = 5.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
        keepalive: float = 15.0,
        max_patterns_per_subscriber: int = MAX_PATTERNS_PER_SUBSCRIBER,
        max_pattern_length: int = MAX_PATTERN_LENGTH,
    ) -> None:
        if not isinstance(url, str) or not url:
            raise PubSubConfigError("Redis URL must be a non-empty string like redis://host:6379/0")
        try:
            kwargs: dict[str, Any] = dict(parse_url(url))
        except ValueError as exc:
            raise PubSubConfigError(f"Redis URL {_describe(url)!r} is not usable: {exc}") from None
        if not isinstance(namespace, str):
            raise PubSubConfigError("namespace must be a string such as 'burnstand:'")
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("command_timeout", command_timeout),
            ("backoff_initial", backoff_initial),
            ("backoff_max", backoff_max),
            ("keepalive", keepalive),
        ):
            if not value > 0:
                raise PubSubConfigError(f"{name} must be a positive number of seconds")
        self._url = url
        self.where = _describe(url)
        self._connection_class: type[Connection] = kwargs.pop("connection_class", Connection)
        self._connection_kwargs = kwargs
        self._namespace = namespace
        self._ns_channel = namespace.encode("utf-8")
        self._ns_pattern = _glob_literal(namespace).encode("utf-8")
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._keepalive = keepalive
        self._local = LocalFanout(
            max_patterns_per_subscriber=max_patterns_per_subscriber,
            max_pattern_length=max_pattern_length,
        )
        self._client: Redis | None = None
        self._task: asyncio.Task[None] | None = None
        # The subscriber connection, set only while it is up and holds every local pattern.
        self._conn: _Wire | None = None
        # Keeps PSUBSCRIBE/PUNSUBSCRIBE in registry order and out of the resubscribe phase.
        self._lock = asyncio.Lock()
        # Confirmations Redis owes us, oldest first per (kind, pattern): Redis answers in order.
        self._acks: dict[tuple[bytes, bytes], deque[asyncio.Future[bool]]] = {}
        # The unconfirmed PSUBSCRIBE of a pattern, which its second subscriber also waits for.
        self._ready: dict[str, asyncio.Future[bool]] = {}
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        self._first_attempt = asyncio.Event()
        self._last_rx = 0.0
        self._silence: str | None = None
        self._last_valid_payload: bytes | None = None
        self.refused = 0
        self.dropped = 0

    # -- lifecycle

    async def start(self) -> None:
        """Start connecting; returns after the first attempt, whether it succeeded or not."""
        if self._task is not None:
            return
        self._client = Redis.from_url(
            self._url,
            socket_connect_timeout=self._connect_timeout,
            socket_timeout=self._command_timeout,
            # One immediate retry covers a pooled connection that died with a Redis restart. The
            # asyncio client takes the asyncio Retry (redis-py 8.2 warns about the synchronous one).
            retry=Retry(NoBackoff(), 1),
            protocol=2,
        )
        self._task = asyncio.create_task(self._run(), name="burnstand-redis-pubsub")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_attempt.wait(), self._connect_timeout * 2)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._mark_down()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def wait_reachable(self, expected: bool = True) -> None:
        """Wait until Redis is (or, with ``expected=False``, is no longer) reachable.

        Callers bound the wait themselves (``asyncio.timeout``).
        """
        await (self._up if expected else self._down).wait()

    def health(self) -> PubSubHealth:
        registry = self._local.registry
        return PubSubHealth(
            backend=self.backend,
            reachable=self._conn is not None,
            patterns=len(registry.patterns()),
            subscribers=len(registry),
            refused=self.refused,
            dropped=self.dropped,
        )

    # -- the PubSub interface

    async def publish(self, channel: str, data: Any) -> None:
        channel = check_channel(channel)
        data_json = encode_data(data)
        client = self._client
        if client is None or self._conn is None:
            self.refused += 1
            log.warning(
                "pub/sub publish refused: Redis unreachable",
                extra={"redis": self.where, "channel": channel, "refused": self.refused},
            )
            raise PubSubUnavailable(f"Redis at {self.where} is unreachable; nothing was published")
        try:
            await client.publish(self._ns_channel + channel.encode("utf-8"), data_json)
        except _CONNECTION_ERRORS as exc:
            self.refused += 1
            log.warning(
                "pub/sub publish failed",
                extra={"redis": self.where, "channel": channel, "error": str(exc)},
            )
            raise PubSubUnavailable(
                f"Redis at {self.where} did not take the message: {exc}"
            ) from exc

    async def subscribe(self, subscriber: Subscriber, pattern: str) -> dict[str, Any]:
        outcome = self._local.subscribe(subscriber, pattern)
        if outcome.first:
            await self._send_shielded(b"PSUBSCRIBE", (pattern,))
        if outcome.reply["status"]:
            pending = self._ready.get(pattern)
            if pending is not None:
                await self._confirmed(pending, pattern)
        return outcome.reply

    async def unsubscribe(self, subscriber: Subscriber, pattern: str) -> dict[str, Any]:
        outcome = self._local.unsubscribe(subscriber, pattern)
        if outcome.last:
            for fut in await self._send_shielded(b"PUNSUBSCRIBE", (pattern,)):
                await self._confirmed(fut, pattern)
        return outcome.reply

    async def handle(
        self, subscriber: Subscriber, frame: str | bytes | Mapping[str, Any]
    ) -> dict[str, Any]:
        return await handle_frame(self, subscriber, frame)

    async def remove(self, subscriber: Subscriber) -> None:
        gone = self._local.remove(subscriber)
        if gone:
            futures = await self._send_shielded(b"PUNSUBSCRIBE", gone)
            for pattern, fut in zip(gone, futures, strict=False):
                await self._confirmed(fut, pattern)

    # -- commands on the subscriber connection

    def _redis_pattern(self, pattern: str) -> bytes:
        return self._ns_pattern + pattern.encode("utf-8")

    async def _send_shielded(
        self, command: bytes, patterns: Iterable[str]
    ) -> list[asyncio.Future[bool]]:
        """``_send`` that completes even if the caller is cancelled (its client hung up).

        The registry changed already; a command it owes Redis must go out, or a pattern would
        be held locally but not in Redis (or the reverse). The inner task is created right at the
        registry change, and the lock is FIFO, so commands leave in registry order.
        """
        patterns = tuple(patterns)
        readies: list[asyncio.Future[bool]] = []
        if command == b"PSUBSCRIBE":
            # Registered now, before any await: a second local subscriber arriving while this
            # command waits for the lock must wait for Redis's confirmation as well.
            loop = asyncio.get_running_loop()
            for pattern in patterns:
                ready: asyncio.Future[bool] = loop.create_future()
                self._track_ready(pattern, ready)
                readies.append(ready)
        return await asyncio.shield(self._send(command, patterns, readies))

    async def _send(
        self, command: bytes, patterns: tuple[str, ...], readies: list[asyncio.Future[bool]]
    ) -> list[asyncio.Future[bool]]:
        """Send a (P)(UN)SUBSCRIBE now if connected; returns futures for Redis's confirmations.

        When Redis is unreachable nothing is sent: the reconnect resubscribes from the registry,
        which already says what this node must hold.
        """
        async with self._lock:
            conn = self._conn
            if conn is None:
                for ready in readies:
                    _settle(ready, False)
                return []
            kind = command.lower()
            raw = [self._redis_pattern(p) for p in patterns]
            futures = [self._expect(kind, r) for r in raw]
            for ready, fut in zip(readies, futures, strict=False):
                fut.add_done_callback(functools.partial(_settle_from, ready))
            try:
                await conn.send_command(command, *raw, check_health=False)
            except _CONNECTION_ERRORS as exc:
                # The reader fails on the same socket, logs the outage and resolves `futures`.
                log.warning(
                    "pub/sub command not sent", extra={"redis": self.where, "error": str(exc)}
                )
                await conn.disconnect(nowait=True)
            return futures

    def _expect(self, kind: bytes, raw_pattern: bytes) -> asyncio.Future[bool]:
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._acks.setdefault((kind, raw_pattern), deque()).append(fut)
        return fut

    def _track_ready(self, pattern: str, fut: asyncio.Future[bool]) -> None:
        self._ready[pattern] = fut

        def forget(done: asyncio.Future[bool]) -> None:
            if self._ready.get(pattern) is done:
                del self._ready[pattern]

        fut.add_done_callback(forget)

    async def _confirmed(self, fut: asyncio.Future[bool], pattern: str) -> None:
        # Shielded: a caller that gives up must not cancel what other callers wait for.
        try:
            await asyncio.wait_for(asyncio.shield(fut), self._command_timeout)
        except TimeoutError:
            log.warning(
                "pub/sub: Redis did not confirm in time",
                extra={"redis": self.where, "pattern": pattern},
            )

    # -- the reader task

    async def _run(self) -> None:
        """Connect, read, and on failure reconnect with backoff; ends only when cancelled."""
        failures = 0
        while True:
            try:
                conn = await self._open()
            except _CONNECTION_ERRORS as exc:
                failures += 1
                self._first_attempt.set()
                if failures == 1:
                    log.error(  # noqa: TRY400 -- an expected outage; no traceback wanted
                        "pub/sub: Redis unreachable",
                        extra={"redis": self.where, "error": str(exc) or type(exc).__name__},
                    )
                else:
                    log.debug(
                        "pub/sub: Redis still unreachable",
                        extra={"redis": self.where, "attempt": failures},
                    )
                await asyncio.sleep(self._backoff(failures))
                continue
            if failures:
                log.info(
                    "pub/sub: Redis reachable again",
                    extra={
                        "redis": self.where,
                        "attempts": failures,
                        "patterns": len(self._local.registry.patterns()),
                    },
                )
            failures = 0
            self._silence = None
            self._first_attempt.set()
            keepalive = asyncio.create_task(self._keep_alive(conn), name="burnstand-redis-ping")
            try:
                await self._read(conn)
            except _CONNECTION_ERRORS as exc:
                self._mark_down()
                # Counted as the first failure, so the reconnect attempts do not log again.
                failures = 1
                reason = self._silence or str(exc) or type(exc).__name__
                log.error(  # noqa: TRY400 -- an expected outage; a traceback would only be noise
                    "pub/sub: lost the Redis connection",
                    extra={"redis": self.where, "error": reason},
                )
            finally:
                self._mark_down()
                keepalive.cancel()
                await asyncio.gather(keepalive, return_exceptions=True)
                await conn.disconnect(nowait=True)
            await asyncio.sleep(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        delay = min(self._backoff_max, self._backoff_initial * 2.0 ** min(failures - 1, 30))
        # Jitter so a fleet of nodes does not reconnect in lockstep after a Redis restart.
        return delay * random.uniform(0.5, 1.0)  # noqa: S311 -- not a secret

    async def _open(self) -> _Wire:
        """A new subscriber connection holding every pattern the registry holds."""
        conn = cast(
            _Wire,
            self._connection_class(
                **{
                    **self._connection_kwargs,
                    "socket_connect_timeout": self._connect_timeout,
                    # Reads block until Redis speaks; silence is the keepalive's business.
                    "socket_timeout": None,
                    # RESP2: pmessages arrive as plain arrays on this connection.
                    "protocol": 2,
                }
            ),
        )
        try:
            async with asyncio.timeout(self._command_timeout + self._connect_timeout):
                await conn.connect()
                async with self._lock:
                    patterns = sorted(self._local.registry.patterns())
                    for start in range(0, len(patterns), _RESUBSCRIBE_BATCH):
                        chunk = patterns[start : start + _RESUBSCRIBE_BATCH]
                        raw = [self._redis_pattern(p) for p in chunk]
                        await conn.send_command(b"PSUBSCRIBE", *raw, check_health=False)
                    owed = len(patterns)
                    while owed:  # each pass reads one reply; the timeout above bounds it
                        if self._dispatch(await conn.read_response()) == _PSUBSCRIBE:
                            owed -= 1
                    self._conn = conn
                    self._last_rx = asyncio.get_running_loop().time()
                    self._down.clear()
                    self._up.set()
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        return conn

    async def _read(self, conn: _Wire) -> None:
        loop = asyncio.get_running_loop()
        while True:  # runs for the life of the connection; a read error ends it
            reply = await conn.read_response()
            self._last_rx = loop.time()
            self._dispatch(reply)

    async def _keep_alive(self, conn: _Wire) -> None:
        """PING when idle; a connection silent for two periods is dead (no FIN ever came)."""
        loop = asyncio.get_running_loop()
        while True:  # one pass per keepalive period; cancelled with the connection
            await asyncio.sleep(self._keepalive)
            idle = loop.time() - self._last_rx
            if idle >= 2 * self._keepalive:
                # Closing the socket makes the blocked reader fail, log the outage (with this
                # reason) and reconnect.
                self._silence = f"no reply from Redis for {idle:.1f}s"
                await conn.disconnect(nowait=True)
                return
            if idle >= self._keepalive:
                async with self._lock:
                    with contextlib.suppress(*_CONNECTION_ERRORS):
                        await conn.send_command(b"PING", check_health=False)

    def _mark_down(self) -> None:
        self._conn = None
        self._up.clear()
        self._down.set()
        # Nothing more will be confirmed on that connection; the registry is resubscribed whole.
        acks, self._acks = self._acks, {}
        for queue in acks.values():
            for fut in queue:
                _settle(fut, False)

    # -- replies and messages from Redis

    def _dispatch(self, reply: Any) -> bytes | None:
        if not isinstance(reply, list) or not reply:
            return None
        kind = reply[0]
        if kind == _PMESSAGE and len(reply) == 4:
            self._on_message(reply[1], reply[2], reply[3])
        elif kind in (_PSUBSCRIBE, _PUNSUBSCRIBE) and len(reply) >= 2:
            queue = self._acks.get((kind, reply[1]))
            if queue:
                fut = queue.popleft()
                if not queue:
                    del self._acks[(kind, reply[1])]
                _settle(fut, True)
        return kind if isinstance(kind, bytes) else None

    def _on_message(self, raw_pattern: Any, raw_channel: Any, payload: Any) -> None:
        try:
            if not (
                isinstance(raw_pattern, bytes)
                and isinstance(raw_channel, bytes)
                and isinstance(payload, bytes)
                and raw_pattern.startswith(self._ns_pattern)
                and raw_channel.startswith(self._ns_channel)
            ):
                raise ValueError("not a burnstand message")  # noqa: TRY301 -- one drop path
            pattern = raw_pattern[len(self._ns_pattern) :].decode("utf-8")
            channel = raw_channel[len(self._ns_channel) :].decode("utf-8")
            data_json = payload.decode("utf-8")
            # One publish arrives once per matching pattern, back to back: validate it once.
            if payload != self._last_valid_payload:
                json.loads(data_json)
                self._last_valid_payload = payload
        except ValueError as exc:
            # Something other than a burnstand node published into our namespace; passing
            # it on would hand clients a frame they cannot parse.
            self.dropped += 1
            if self.dropped & (self.dropped - 1) == 0:  # 1st, 2nd, 4th, 8th...: no log flood
                log.warning(
                    "pub/sub dropped a malformed message from Redis",
                    extra={"redis": self.where, "error": str(exc), "dropped": self.dropped},
                )
            return
        self._local.deliver_pattern(pattern, channel, data_json)
