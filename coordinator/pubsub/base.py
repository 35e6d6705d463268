"""The pub/sub interface every backend offers, and the local fan-out both backends share.

A subscriber is anything with a non-blocking ``deliver(text)`` (the balancer passes each client's
bounded send queue). ``PubSub`` is the interface the balancer and masters program against; the
in-process and Redis backends implement it. ``LocalFanout`` wraps the sans-I/O registry of
``wire.pubsub``: it answers subscribe/unsubscribe exactly as seed 001 says, and delivers one
published message to local subscribers with the frame text built once per matching pattern, never
once per subscriber. Matching itself is the registry's; nothing here re-implements it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from wire.pubsub import (
    MAX_PATTERN_LENGTH,
    MAX_PATTERNS_PER_SUBSCRIBER,
    Outcome,
    PubSubError,
    Subscribe,
    Subscriptions,
    encode_message_json,
    parse_request,
)

log = logging.getLogger(__name__)

# Same settings as the wire encoder, so a frame reads the same whichever backend carried it.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


class Subscriber(Protocol):
    """Receives message frames. ``deliver`` must not block and should not raise.

    Subscribers are registry keys, so they hash by identity (the default for objects).
    """

    def __hash__(self) -> int: ...

    def deliver(self, text: str) -> None: ...


class PubSubUnavailable(RuntimeError):
    """The backend cannot carry messages right now (Redis is unreachable); nothing was published."""


class PubSubConfigError(ValueError):
    """A pub/sub setting (the Redis URL, the namespace) is unusable; the message says which."""


@dataclass(frozen=True, slots=True)
class PubSubHealth:
    """What ``GET /api/v1/health`` reports about pub/sub."""

    backend: str
    reachable: bool
    patterns: int
    subscribers: int
    # Publishes refused with PubSubUnavailable, and malformed messages from Redis dropped.
    refused: int
    dropped: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class PubSub(Protocol):
    """Pattern pub/sub as seed 001 describes it, whatever carries the messages."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, channel: str, data: Any) -> None:
        """Deliver ``data`` (any JSON value) to every subscriber whose pattern matches ``channel``.

        Raises ``PubSubError`` for an empty channel or data that is not JSON, and
        ``PubSubUnavailable`` when the backend cannot carry it now.
        """
        ...

    async def subscribe(self, subscriber: Subscriber, pattern: str) -> dict[str, Any]: ...

    async def unsubscribe(self, subscriber: Subscriber, pattern: str) -> dict[str, Any]: ...

    async def handle(
        self, subscriber: Subscriber, frame: str | bytes | Mapping[str, Any]
    ) -> dict[str, Any]:
        """Answer one client frame (subscribe or unsubscribe); a bad frame gets its error reply."""
        ...

    async def remove(self, subscriber: Subscriber) -> None:
        """Forget a subscriber that disconnected, with all its patterns."""
        ...

    def health(self) -> PubSubHealth: ...


def check_channel(channel: object) -> str:
    """The channel itself, or ``PubSubError`` saying why it cannot be published on."""
    if not isinstance(channel, str):
        raise PubSubError("channel", f"must be a string, got {type(channel).__name__}")
    if not channel:
        # Redis would match `prefix*` against the bare namespace while the local registry
        # matches nothing against "", so the empty channel is refused by both backends.
        raise PubSubError("channel", "must not be empty")
    try:
        channel.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PubSubError("channel", f"not valid UTF-8 text: {exc}") from None
    return channel


async def handle_frame(
    pubsub: PubSub, subscriber: Subscriber, frame: str | bytes | Mapping[str, Any]
) -> dict[str, Any]:
    """Run a client frame on ``pubsub``; a frame that is not a request gets its error reply."""
    try:
        request = parse_request(frame)
    except PubSubError as exc:
        return exc.reply
    if isinstance(request, Subscribe):
        return await pubsub.subscribe(subscriber, request.pattern)
    return await pubsub.unsubscribe(subscriber, request.pattern)


def encode_data(data: Any) -> str:
    """JSON text of a published value, serialized once per publish."""
    try:
        return _dumps(data)
    except (TypeError, ValueError, RecursionError) as exc:
        raise PubSubError("data", f"not JSON-serializable: {exc}") from None


class LocalFanout:
    """This process's subscribers: the seed's replies, and delivery of one message to them."""

    def __init__(
        self,
        *,
        max_patterns_per_subscriber: int = MAX_PATTERNS_PER_SUBSCRIBER,
        max_pattern_length: int = MAX_PATTERN_LENGTH,
    ) -> None:
        self.registry: Subscriptions[Subscriber] = Subscriptions(
            max_patterns_per_subscriber=max_patterns_per_subscriber,
            max_pattern_length=max_pattern_length,
        )
        # Bumped on every registry change; the Redis backend caches one channel's match result
        # (a publish arrives once per matching pattern, back to back) and this invalidates it.
        self.version = 0
        self._cached_channel: str | None = None
        self._cached_version = -1
        self._cached_groups: dict[str, list[Subscriber]] = {}

    def subscribe(self, subscriber: Subscriber, pattern: str) -> Outcome:
        outcome = self.registry.subscribe(subscriber, pattern)
        if outcome.reply["status"]:
            self.version += 1
        return outcome

    def unsubscribe(self, subscriber: Subscriber, pattern: str) -> Outcome:
        outcome = self.registry.unsubscribe(subscriber, pattern)
        if outcome.reply["status"]:
            self.version += 1
        return outcome

    def remove(self, subscriber: Subscriber) -> tuple[str, ...]:
        """Drop a subscriber; returns the patterns nobody here holds any more."""
        self.version += 1
        return self.registry.remove(subscriber)

    def deliver_all(self, channel: str, data_json: str) -> int:
        """Deliver to every local match of ``channel``; returns how many frames went out."""
        frames: dict[str, str] = {}
        sent = 0
        for subscriber, pattern in self.registry.match(channel):
            text = frames.get(pattern)
            if text is None:
                text = frames[pattern] = encode_message_json(pattern, channel, data_json)
            self._deliver(subscriber, text)
            sent += 1
        return sent

    def deliver_pattern(self, pattern: str, channel: str, data_json: str) -> int:
        """Deliver to the local subscribers of one pattern (Redis says which pattern matched)."""
        if self._cached_channel != channel or self._cached_version != self.version:
            groups: dict[str, list[Subscriber]] = {}
            for subscriber, matched in self.registry.match(channel):
                groups.setdefault(matched, []).append(subscriber)
            self._cached_channel, self._cached_version = channel, self.version
            self._cached_groups = groups
        subscribers = self._cached_groups.get(pattern)
        if not subscribers:
            return 0
        text = encode_message_json(pattern, channel, data_json)
        for subscriber in subscribers:
            self._deliver(subscriber, text)
        return len(subscribers)

    @staticmethod
    def _deliver(subscriber: Subscriber, text: str) -> None:
        # One broken subscriber must not cost the others their message.
        try:
            subscriber.deliver(text)
        except Exception:
            log.exception("pub/sub subscriber failed to take a message")
