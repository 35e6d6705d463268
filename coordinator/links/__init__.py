"""Appliance links: the coordinator's `/link` WebSocket and what its messages mean to sessions.

`setup_links(app, master_getter)` is the one call the live plane makes: it builds a `LinkHub`
(the WebSocket shell around `wire.link.LinkServer`) with an `ApplianceBridge` (agent messages to
and from the `Master`), registers `GET /link`, the ack/expiry timer and the shutdown close, and
stores the hub under `LINKS`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from coordinator.images.events import IMAGE_EVENTS
from coordinator.keys import CONFIG, REVOCATIONS, STORE
from coordinator.links.bridge import ApplianceBridge, MasterGetter
from coordinator.links.hub import (
    DEFAULT_ACK_INTERVAL,
    DEFAULT_HEARTBEAT,
    LINK_PATH,
    Appliance,
    Link,
    LinkHandler,
    LinkHub,
)
from coordinator.swarm import TRACKER
from wire.link import DEFAULT_GRACE

LINKS = web.AppKey("links", LinkHub)


def setup_links(
    app: web.Application,
    master_getter: MasterGetter,
    *,
    grace: float = DEFAULT_GRACE,
    ack_interval: float = DEFAULT_ACK_INTERVAL,
    heartbeat: float | None = DEFAULT_HEARTBEAT,
    clock: Callable[[], float] = time.monotonic,
) -> LinkHub:
    """Serve appliance links on `app`; `master_getter()` is asked on each use (None: no master)."""
    bridge = ApplianceBridge(lambda: app[STORE], master_getter, peer_key=app[CONFIG].peer_key)
    hub = LinkHub(bridge, grace=grace, ack_interval=ack_interval, heartbeat=heartbeat, clock=clock)
    hub.register(app)
    watcher = app.get(REVOCATIONS)
    if watcher is not None:
        watcher.add_listener(hub.revoke)
    app[LINKS] = hub
    app[TRACKER] = bridge.tracker
    events = app.get(IMAGE_EVENTS)
    if events is not None:
        events.listeners.append(bridge.catalog_changed)
    return hub


__all__ = [
    "LINKS",
    "LINK_PATH",
    "Appliance",
    "ApplianceBridge",
    "Link",
    "LinkHandler",
    "LinkHub",
    "setup_links",
]
