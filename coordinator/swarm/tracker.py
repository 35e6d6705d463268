"""The tracker: which kiosks of a show hold (and are fetching) which chunks of which image, where
their peer servers are, how many bytes each got from the origin and from peers, and which peers
were reported for serving bad chunks.

It is fed by the `have` messages of appliance links and answers `want` with the other kiosks of
the same show (never the asker, never another show's). It is in memory, per coordinator process:
after a restart the agents' next `have` (sent on every reconnect) fills it again; with several
nodes, `coordinator.swarm.relay` feeds each node's tracker what the others' links report.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wire import agentmsg as am
from wire import swarm as sw

log = logging.getLogger(__name__)

MAX_NOTES = 50  # bad-peer reports kept per show, for the dashboard


@dataclass(slots=True)
class Holder:
    """One link's last word on one image."""

    appliance: int
    name: str
    have: am.Have
    held: int  # how many chunks `have.chunks` names
    updated: float


@dataclass(slots=True)
class _Show:
    images: dict[str, dict[str, Holder]] = field(default_factory=dict)  # sha -> link -> holder
    notes: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_NOTES))


class Tracker:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._shows: dict[int, _Show] = {}

    def update(self, show: int, link: str, appliance: int, name: str, have: am.Have) -> None:
        """Record a `have`; raises `wire.swarm.SwarmError` when its chunk maps are unreadable."""
        held = len(sw.decode_have(have.chunks, have.count))
        sw.decode_have(have.fetching, have.count)
        images = self._shows.setdefault(show, _Show()).images
        images.setdefault(have.sha256, {})[link] = Holder(appliance, name, have, held, self.clock())

    def peers(self, show: int, sha256: str, asker: str) -> am.Peers:
        """The kiosks of `show` other than `asker` that serve chunks of the image (those with
        the most chunks first); none when the tracker knows of no chunk map for it."""
        holders = self._shows.get(show, _Show()).images.get(sha256, {})
        if not holders:
            return am.Peers(sha256, 1, ())
        count = next(iter(holders.values())).have.count
        serving = sorted(
            (h for link, h in holders.items() if link != asker and h.have.address is not None),
            key=lambda h: -h.held,
        )
        peers: dict[str, am.Peer] = {}
        for h in serving:
            if len(peers) >= am.MAX_PEERS:
                break
            # One kiosk may be known through two links (an old one on a node that was lost):
            # it is named once, with its fullest report.
            if h.have.address is not None and h.have.count == count:
                peers.setdefault(
                    h.have.address, am.Peer(h.have.address, h.have.chunks, h.have.fetching)
                )
        return am.Peers(sha256, count, tuple(peers.values()))

    def bad_peer(
        self, show: int, reporter: str, report: am.BadPeer, *, logged: bool = True
    ) -> None:
        """Keep a bad-peer report for the show's swarm view; logged where it arrived (another
        node's report, relayed here, is not logged twice)."""
        if logged:
            self._log_bad_peer(show, reporter, report)
        self._shows.setdefault(show, _Show()).notes.append(
            {
                "at": self.clock(),
                "reporter": reporter,
                "peer": report.address,
                "sha256": report.sha256,
                "reason": report.reason,
            }
        )

    @staticmethod
    def _log_bad_peer(show: int, reporter: str, report: am.BadPeer) -> None:
        log.warning(
            "kiosk reported a bad peer",
            extra={
                "show": show,
                "reporter": reporter,
                "peer": report.address,
                "sha256": report.sha256,
                "reason": report.reason,
            },
        )

    def forget(self, show: int, link: str) -> None:
        """A link ended: its kiosk no longer serves through it."""
        entry = self._shows.get(show)
        if entry is None:
            return
        for sha in list(entry.images):
            entry.images[sha].pop(link, None)
            if not entry.images[sha]:
                del entry.images[sha]

    def snapshot(self, show: int) -> dict[str, Any]:
        """What the dashboard shows: per image, each kiosk's progress and where its bytes came
        from; and the latest bad-peer reports."""
        entry = self._shows.get(show, _Show())
        images = []
        for sha, holders in sorted(entry.images.items()):
            kiosks = [
                {
                    "appliance": h.appliance,
                    "name": h.name,
                    "address": h.have.address,
                    "chunks": h.held,
                    "count": h.have.count,
                    "origin_bytes": h.have.origin_bytes,
                    "peer_bytes": h.have.peer_bytes,
                    "updated": h.updated,
                }
                for h in sorted(holders.values(), key=lambda h: (h.name, h.appliance))
            ]
            images.append({"sha256": sha, "kiosks": kiosks})
        return {"images": images, "reports": list(entry.notes)}
