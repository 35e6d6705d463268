"""Typed keys of the coordinator's application state, shared by the app factory and handlers."""

from __future__ import annotations

from collections.abc import Callable
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
