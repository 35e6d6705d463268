"""Names of the pub/sub channels a session master publishes its changes on.

Every change a room makes (a burner's status, the queue, statistics, members coming and going, the
room being suspended) is announced on one channel whose name starts with ``session.<id>.``, so a
dashboard can subscribe to ``session.<id>.*`` or to one burner with
``session.<id>.burner.<uid>.*``. Session ids are case-insensitive and always appear lower case.
"""

from __future__ import annotations


def session_prefix(session_id: str) -> str:
    return f"session.{session_id.lower()}"


def burner_status(session_id: str, uid: str) -> str:
    """A burner's status, job, friendly name and whether it is connected."""
    return f"{session_prefix(session_id)}.burner.{uid}.status"


def queue(session_id: str) -> str:
    """The whole burn queue after every change."""
    return f"{session_prefix(session_id)}.queue"


def stats(session_id: str) -> str:
    """One burner's statistics after a finished burn, with the session totals."""
    return f"{session_prefix(session_id)}.stats"


def members(session_id: str) -> str:
    """A member joined or left."""
    return f"{session_prefix(session_id)}.members"


def state(session_id: str) -> str:
    """The room went live, was suspended or unloaded."""
    return f"{session_prefix(session_id)}.state"


def kiosk(session_id: str, kiosk_id: int) -> str:
    """One kiosk (appliance): name, version, link state and since when, burners, cached images."""
    return f"{session_prefix(session_id)}.kiosk.{kiosk_id}"
