"""The tracker across coordinator nodes: every node's tracker hears what kiosks linked to the
other nodes report, over the pub/sub control channel `coordinator.swarm` (Redis when there are
several nodes, in-process otherwise), so a kiosk linked to one node is told of the kiosks of its
show linked to another, and any node's swarm view shows them all.

A node publishes each `have` and `bad_peer` its links receive and each link that ends
(`forget`; a link is named by a digest of its token, never the token), tagged with its own
random node id; every node applies the others' events to its own tracker (its own come back
from Redis too and are skipped). Nodes that hold no links (a
rendezvous-only node) keep a tracker fed only by these events, for the swarm view. Like the
tracker itself this is state in memory: a node that starts later learns of a kiosk with that
kiosk's next `have`, and what a lost node's kiosks held stays until they link again elsewhere
(their new link reports the same address, which `Tracker.peers` names once).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from typing import Any

from coordinator.pubsub import PubSub
from coordinator.swarm.tracker import Tracker
from wire import agentmsg as am
from wire import swarm as sw

log = logging.getLogger(__name__)

SWARM_CHANNEL = "coordinator.swarm"


class TrackerRelay:
    """Keeps one node's tracker in step with the others' (a pub/sub subscriber by identity)."""

    def __init__(self, tracker: Tracker, pubsub: PubSub, *, node: str | None = None) -> None:
        self.tracker = tracker
        self.pubsub = pubsub
        self.node = node or secrets.token_hex(8)

    async def start(self) -> None:
        await self.pubsub.subscribe(self, SWARM_CHANNEL)

    async def stop(self) -> None:
        await self.pubsub.remove(self)

    # ---- this node's events, for the others

    async def have(self, show: int, link: str, appliance: int, name: str, have: am.Have) -> None:
        await self._publish(
            {
                "op": "have",
                "show": show,
                "link": _link_id(link),
                "appliance": appliance,
                "name": name,
                "message": have.to_json(),
            }
        )

    async def bad_peer(self, show: int, reporter: str, report: am.BadPeer) -> None:
        await self._publish(
            {"op": "bad_peer", "show": show, "reporter": reporter, "message": report.to_json()}
        )

    async def forget(self, show: int, link: str) -> None:
        await self._publish({"op": "forget", "show": show, "link": _link_id(link)})

    async def _publish(self, event: dict[str, Any]) -> None:
        try:
            await self.pubsub.publish(SWARM_CHANNEL, {"node": self.node, **event})
        except Exception:  # a Redis outage costs other nodes this event, never the link
            log.warning("swarm event not published", extra={"op": event["op"]}, exc_info=True)

    # ---- the others' events

    def deliver(self, text: str) -> None:
        try:
            frame = json.loads(text)
            data = frame["data"]
            if data["node"] == self.node:
                return
            self._apply(data)
        except (ValueError, KeyError, TypeError, am.AgentMessageError, sw.SwarmError) as exc:
            log.warning("malformed swarm event dropped", extra={"error": str(exc)})

    def _apply(self, data: dict[str, Any]) -> None:
        show, op = int(data["show"]), data["op"]
        if op == "forget":
            self.tracker.forget(show, str(data["link"]))
            return
        message = am.parse_from_agent(data["message"])
        if op == "have" and isinstance(message, am.Have):
            self.tracker.update(
                show, str(data["link"]), int(data["appliance"]), str(data["name"]), message
            )
        elif op == "bad_peer" and isinstance(message, am.BadPeer):
            self.tracker.bad_peer(show, str(data["reporter"]), message, logged=False)
        else:
            raise TypeError(f"swarm event {op!r} does not carry what it names")


def _link_id(token: str) -> str:
    """A link's name on the channel: its token resumes the link, so it never travels itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]
