"""The default pub/sub backend: one coordinator process, messages never leave it.

A publish serializes the data once, asks the registry's prefix index who matches (no scan of
every pattern), builds one frame per matching pattern and hands it to each subscriber's
``deliver`` synchronously, so a publish has reached every local send queue when it returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wire.pubsub import MAX_PATTERN_LENGTH, MAX_PATTERNS_PER_SUBSCRIBER

from .base import (
    LocalFanout,
    PubSubHealth,
    Subscriber,
    check_channel,
    encode_data,
    handle_frame,
)


class InProcessPubSub:
    """``PubSub`` within one process."""

    backend = "inprocess"

    def __init__(
        self,
        *,
        max_patterns_per_subscriber: int = MAX_PATTERNS_PER_SUBSCRIBER,
        max_pattern_length: int = MAX_PATTERN_LENGTH,
    ) -> None:
        self._local = LocalFanout(
            max_patterns_per_subscriber=max_patterns_per_subscriber,
            max_pattern_length=max_pattern_length,
        )

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, channel: str, data: Any) -> None:
        self._local.deliver_all(check_channel(channel), encode_data(data))

    async def subscribe(self, subscriber: Subscriber, pattern: str) -> dict[str, Any]:
        return self._local.subscribe(subscriber, pattern).reply

    async def unsubscribe(self, subscriber: Subscriber, pattern: str) -> dict[str, Any]:
        return self._local.unsubscribe(subscriber, pattern).reply

    async def handle(
        self, subscriber: Subscriber, frame: str | bytes | Mapping[str, Any]
    ) -> dict[str, Any]:
        return await handle_frame(self, subscriber, frame)

    async def remove(self, subscriber: Subscriber) -> None:
        self._local.remove(subscriber)

    def health(self) -> PubSubHealth:
        registry = self._local.registry
        return PubSubHealth(
            backend=self.backend,
            reachable=True,
            patterns=len(registry.patterns()),
            subscribers=len(registry),
            refused=0,
            dropped=0,
        )
