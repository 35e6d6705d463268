"""Pattern pub/sub for the live plane: one interface, an in-process and a Redis backend.

``make_pubsub(None)`` gives the in-process backend a single coordinator uses;
``make_pubsub("redis://…")`` gives the Redis backend that lets several coordinator nodes share
live traffic (``serve --redis``). Both answer subscribe/unsubscribe exactly as seed 001 says,
match with the Redis glob rules of ``wire.pubsub``, and hand each subscriber frames through its
non-blocking ``deliver``. docs/_sections/pubsub-backends.md says how to run them.
"""

from __future__ import annotations

from typing import Any

from .base import (
    PubSub,
    PubSubConfigError,
    PubSubHealth,
    PubSubUnavailable,
    Subscriber,
)
from .inprocess import InProcessPubSub
from .redis_backend import DEFAULT_NAMESPACE, RedisPubSub

__all__ = [
    "DEFAULT_NAMESPACE",
    "InProcessPubSub",
    "PubSub",
    "PubSubConfigError",
    "PubSubHealth",
    "PubSubUnavailable",
    "RedisPubSub",
    "Subscriber",
    "make_pubsub",
]


def make_pubsub(
    redis_url: str | None, *, namespace: str = DEFAULT_NAMESPACE, **options: Any
) -> PubSub:
    """The backend for a node: in-process without a Redis URL, Redis with one.

    ``options`` are the backend's keyword settings (limits, and for Redis timeouts, backoff and
    keepalive). A bad URL or setting raises ``PubSubConfigError`` before anything connects.
    """
    if redis_url is None:
        return InProcessPubSub(**options)
    return RedisPubSub(redis_url, namespace=namespace, **options)
