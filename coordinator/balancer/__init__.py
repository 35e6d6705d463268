"""The balancer: client WebSockets at `/ws/<session>`, routed to the session's master."""

from __future__ import annotations

from coordinator.balancer.auth import AuthRefused, Grant, authorize
from coordinator.balancer.balancer import Balancer, ClientConn, EmbeddedRoute
from coordinator.balancer.host import HostLink, MasterHost

__all__ = [
    "AuthRefused",
    "Balancer",
    "ClientConn",
    "EmbeddedRoute",
    "Grant",
    "HostLink",
    "MasterHost",
    "authorize",
]
