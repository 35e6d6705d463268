"""The "credential about to expire" notification of the seed's expiry flow.

The watcher finds credentials that expire within ``expiry_warning_seconds`` and were not announced
yet, marks them announced (in the store, so a restart does not announce twice) and hands each to
every registered listener. The live plane registers a listener that tells the session masters of
the sessions the credential sits in; until then, listeners are whatever the embedding code adds.
A background task calls ``check_once`` periodically; tests call it directly after moving the clock.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from coordinator.config import CoordinatorConfig
from coordinator.poller import Poller
from coordinator.store import Store
from coordinator.store.credentials import ExpiringCredential, claim_expiring

log = logging.getLogger(__name__)

ExpiryListener = Callable[[ExpiringCredential], Awaitable[None]]


class ExpiryWatcher(Poller):
    """Announces credentials about to expire to its listeners."""

    def __init__(self, store: Store, config: CoordinatorConfig) -> None:
        super().__init__(log, "credential-expiry-watcher", "expiry check failed")
        self._store = store
        self._config = config
        self.listeners: list[ExpiryListener] = []

    def add_listener(self, listener: ExpiryListener) -> None:
        self.listeners.append(listener)

    async def check_once(self) -> list[ExpiringCredential]:
        now = self._config.clock()
        horizon = float(self._config.expiry_warning_seconds)
        expiring = await self._store.write(lambda conn: claim_expiring(conn, now, horizon))
        for cred in expiring:
            log.info(
                "credential about to expire",
                extra={"credential_id": cred.credential_id, "expires_at": cred.expires_at},
            )
            for listener in list(self.listeners):
                try:
                    await listener(cred)
                except Exception:
                    # One failing listener must not stop the others from hearing about it.
                    log.exception(
                        "expiry listener failed", extra={"credential_id": cred.credential_id}
                    )
        return expiring

    def _interval(self) -> float:
        return float(self._config.expiry_check_interval)

    def start(self) -> None:
        self._start_task()
