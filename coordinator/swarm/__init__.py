"""Kiosks of a show sharing images on their LAN, the coordinator's part: the tracker (which kiosk
holds which chunks of which image, and where its peer server is) and the peer tokens.

The appliance bridge feeds the tracker from the agents' `have` messages, answers `want` with
`peers`, logs `bad_peer` reports, and sends each link its `peer_token`. The manifests themselves
are made by the image store (`coordinator.images.blobs`).
"""

from aiohttp import web

from coordinator.swarm.tokens import PeerKeys
from coordinator.swarm.tracker import Tracker

TRACKER = web.AppKey("tracker", Tracker)

__all__ = ["TRACKER", "PeerKeys", "Tracker"]
