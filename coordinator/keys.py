"""Typed keys of the coordinator's application state, shared by the app factory and handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from coordinator.config import CoordinatorConfig
from coordinator.expiry import ExpiryWatcher
from coordinator.revocation import RevocationWatcher
from coordinator.store import Store

CONFIG = web.AppKey("config", CoordinatorConfig)
STORE = web.AppKey("store", Store)
EXPIRY = web.AppKey("expiry", ExpiryWatcher)
REVOCATIONS = web.AppKey("revocations", RevocationWatcher)
OPENAPI = web.AppKey[dict[str, Any]]("openapi")
# Live-plane health report (coordinator/live.py); the health endpoint uses it when present.
HEALTH = web.AppKey[Callable[[], dict[str, Any]]]("health")
# A session's history as this node's session master keeps it (session id, span seconds, since),
# or None when this node hosts no master (coordinator/live.py sets it).
HISTORY = web.AppKey[Callable[[str, int, int], Awaitable[dict[str, Any] | None]]]("history")
