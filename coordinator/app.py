"""The coordinator's aiohttp application factory.

``make_app(config)`` builds the application: the store is opened and closed by a cleanup context,
the rendezvous routes are registered, errors are rendered as problem JSON, and the credential
expiry and revocation watchers run in the background. The live plane (balancer, masters,
pub/sub) adds its own routes, sub-apps and cleanup contexts to the same application, and
replaces the embedded local master by setting ``register_local_master=False`` and registering
its masters itself.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from coordinator import live, metrics, rendezvous
from coordinator import web as web_dashboard
from coordinator.config import CoordinatorConfig
from coordinator.errors import problem_middleware
from coordinator.expiry import ExpiryWatcher
from coordinator.images import fetch as image_fetch
from coordinator.keys import CONFIG, EXPIRY, REVOCATIONS, STORE
from coordinator.rendezvous import images as image_transfer
from coordinator.revocation import RevocationWatcher
from coordinator.store import Store
from coordinator.store.sessions import ensure_local_master

log = logging.getLogger(__name__)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    store = app[STORE]
    await store.open()
    if config.register_local_master:
        now = config.clock()
        added = await store.write(
            lambda conn: ensure_local_master(
                conn, now, config.local_master_url, config.local_master_capacity
            )
        )
        if added:
            log.info(
                "registered the embedded session master", extra={"url": config.local_master_url}
            )
    app[EXPIRY].start()
    await app[REVOCATIONS].start()
    try:
        yield
    finally:
        await app[REVOCATIONS].stop()
        await app[EXPIRY].stop()
        await store.close()


SERVER = "burnstand"  # no versions: they only help someone matching a list of known flaws


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Headers every response carries, set just before it is sent (errors and upgrades too)."""
    headers = response.headers
    headers["Server"] = SERVER
    headers["X-Content-Type-Options"] = "nosniff"
    if request.path.startswith("/api/"):
        # API answers carry secrets and credentials (join, adding people, enrollment pickup)
        # and personal data; no browser or proxy cache may keep any of them.
        headers["Cache-Control"] = "no-store"
    if request.app[CONFIG].behind_tls:
        headers["Strict-Transport-Security"] = "max-age=31536000"


def make_app(config: CoordinatorConfig) -> web.Application:
    app = web.Application(middlewares=[problem_middleware])
    app.on_response_prepare.append(_security_headers)
    store = Store(
        config.database or config.db_path,
        read_threads=config.read_threads,
        pool_size=config.pool_size,
        pool_timeout=config.pool_timeout,
        data_dir=config.data_dir,
    )
    metrics.setup(app)  # GET /metrics, and request timing around every other middleware
    app[CONFIG] = config
    app[STORE] = store
    app[EXPIRY] = ExpiryWatcher(store, config)
    app[REVOCATIONS] = RevocationWatcher(store, config.revocation_check_interval)
    rendezvous.setup(app)
    image_transfer.setup(app)
    app.cleanup_ctx.append(_store_ctx)
    image_fetch.setup(app, app[image_transfer.IMAGES])  # after the store opens
    # --- live plane (coordinator/live.py): balancer, master, pub/sub; after the store opens ---
    live.setup(app)
    # --- end live plane ---
    web_dashboard.setup(app)  # the operators' dashboard at /
    return app
