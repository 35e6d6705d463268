"""The confirmation phrase of a kiosk enrollment, the same on the kiosk's screen and the dashboard.

A kiosk that asks to enroll gets a poll token that only it (the first asker of its code) holds.
Both sides derive a short phrase from that token: the kiosk shows it under its code, the
dashboard shows it next to the pending request, and the admin accepts only when the two match,
so a request made by someone else who read the code off the screen cannot be mistaken for the
kiosk in front of them. Three words of 64 give 262,144 phrases: not a secret, a check by eye.
"""

from __future__ import annotations

import hashlib

# Short, distinct, easy to read aloud; no two share their first three letters.
WORDS: tuple[str, ...] = (
    "amber", "anchor", "apple", "arrow", "badge", "bamboo", "basil", "beacon",
    "birch", "bison", "cabin", "candle", "cedar", "chalk", "cobalt", "comet",
    "coral", "crane", "delta", "dune", "eagle", "ember", "falcon", "fern",
    "flint", "forest", "garnet", "glacier", "harbor", "hazel", "heron", "indigo",
    "iris", "jasper", "juniper", "kettle", "lagoon", "lemon", "linen", "lotus",
    "maple", "marble", "meadow", "nectar", "nutmeg", "olive", "orbit", "otter",
    "pebble", "pepper", "quartz", "quill", "raven", "river", "saffron", "salmon",
    "summit", "thistle", "tiger", "tulip", "velvet", "violet", "walnut", "zephyr",
)  # fmt: skip

_CONTEXT = b"burnstand enrollment confirmation\x00"


def confirmation_phrase(poll_token: str) -> str:
    """Three words derived from ``poll_token``, like ``cedar-otter-quill``."""
    digest = hashlib.sha256(_CONTEXT + poll_token.encode("utf-8")).digest()
    bits = int.from_bytes(digest[:3], "big")
    return "-".join(WORDS[(bits >> shift) & 63] for shift in (18, 12, 6))
