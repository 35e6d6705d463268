"""Pattern pub/sub (seed 001) as a sans-I/O core: requests, replies and Redis-exact glob matching.

A subscriber (a dashboard socket, a balancer, a test) sends `{"action":"subscribe","pattern":…}` or
`{"action":"unsubscribe","pattern":…}`; `parse_request` turns that into a typed request or a
`PubSubError` whose `reply` is the `status:false` answer to send back. `Subscriptions` is the
per-process registry: it answers each request with the reply the seed prescribes and says when the
pattern got its first local subscriber (the Redis backend then PSUBSCRIBEs) or lost its last one
(PUNSUBSCRIBE), and `match(channel)` finds who receives a published message without scanning every
pattern: literal patterns sit in a dict, glob patterns in buckets keyed by their literal prefix.
`glob_match` reproduces Redis's `stringmatchlen` byte for byte, quirks included, so the in-process
backend and the Redis backend deliver exactly the same messages; it is iterative and does at most
(len(pattern)+1)·(len(channel)+1) steps, so hostile patterns cannot stall the process.
docs/protocol.md ("Pub/sub") is the user-facing reference of the same rules.

Its parts: `glob` (Redis-exact matching), `frames` (requests, replies, messages) and `registry`
(`Subscriptions`). Import from the package: `from wire import pubsub`.
"""

from __future__ import annotations

from wire.pubsub.frames import (
    ACTIONS,
    Action,
    Message,
    PubSubError,
    Request,
    Subscribe,
    Unsubscribe,
    encode_message,
    encode_message_json,
    encode_reply,
    parse_message,
    parse_request,
)
from wire.pubsub.glob import (
    glob_match,
    glob_match_steps,
)
from wire.pubsub.registry import (
    MAX_PATTERN_LENGTH,
    MAX_PATTERNS_PER_SUBSCRIBER,
    Outcome,
    Subscriptions,
)

__all__ = [
    "ACTIONS",
    "MAX_PATTERNS_PER_SUBSCRIBER",
    "MAX_PATTERN_LENGTH",
    "Action",
    "Message",
    "Outcome",
    "PubSubError",
    "Request",
    "Subscribe",
    "Subscriptions",
    "Unsubscribe",
    "encode_message",
    "encode_message_json",
    "encode_reply",
    "glob_match",
    "glob_match_steps",
    "parse_message",
    "parse_request",
]
