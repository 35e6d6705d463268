"""Closing what a revoked credential opened, on every plane of every process.

The store records each credential that stops being valid early (revoked, or deleted with its
holder) in its `revocations` table, through triggers. The watcher polls that table (one indexed
read every `revocation_check_interval`, 0.25 s by default) and hands the credential ids to its
listeners: the balancer closes client WebSockets with 4001, the link hub closes `/link` sockets
with 4001 and the burn listener sends `ERROR NOT_ALLOWED` and hangs up. Polling the table, rather
than telling listeners from the REST handler, is what makes a revocation by the CLI (another
process) or by another coordinator node on the same database reach the sockets of this one; a
REST handler in this process calls `poke()` so its own revocations are acted on at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from coordinator.poller import Poller
from coordinator.store import Store
from coordinator.store.credentials import revoked_since

log = logging.getLogger(__name__)

RevocationListener = Callable[[frozenset[int]], None]


class RevocationWatcher(Poller):
    """Tells its listeners the ids of credentials revoked since it started. A REST handler of this
    process calls `poke()` after a revocation, so its own are acted on at once."""

    def __init__(self, store: Store, interval: float = 0.25) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval}")
        super().__init__(log, "credential-revocation-watcher", "revocation check failed")
        self._store = store
        self._every = interval
        self._last: int | None = None
        self._listeners: list[RevocationListener] = []

    def add_listener(self, listener: RevocationListener) -> Callable[[], None]:
        """Register ``listener``; returns the call that removes it again."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def check_once(self) -> frozenset[int]:
        last = self._last
        self._last, revoked = await self._store.read(lambda conn: revoked_since(conn, last))
        if not revoked:
            return revoked
        log.info("credentials revoked", extra={"credentials": sorted(revoked)})
        for listener in list(self._listeners):
            try:
                listener(revoked)
            except Exception:
                log.exception("revocation listener failed")
        return revoked

    def _interval(self) -> float:
        return self._every

    async def start(self) -> None:
        await self.check_once()  # sets the starting point: what was revoked before is closed
        self._start_task()
