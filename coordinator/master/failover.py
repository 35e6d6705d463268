"""A session master's heartbeat, and its share of watching the others.

Every master on a shared (PostgreSQL) database runs one `FailoverWatcher`: each ``interval``
seconds it writes its heartbeat and looks for masters silent for longer than ``silence``; the
live sessions of those are moved to live masters (`coordinator.store.failover`, one winner) and
announced on the sessions control channel as "live on master X", which is what a REST resume
announces too: that master loads the room from the shared tables (queue, burners, statistics,
counted result ids) and balancers route the reconnecting browsers there.

A watcher only judges others after its own heartbeats have gone through for a whole silence:
after the database was away (when nobody could heartbeat) or right after its own start, every
live master has written a fresh heartbeat before anyone is taken for dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from coordinator.store import Store
from coordinator.store.errors import StoreError
from coordinator.store.failover import heartbeat, reassign_silent

log = logging.getLogger(__name__)

Publish = Callable[[Mapping[str, object]], Awaitable[None]]


class FailoverWatcher:
    def __init__(
        self,
        store: Store,
        url: str,
        clock: Callable[[], float],
        publish: Publish,
        *,
        interval: float = 2.0,
        silence: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.url = url
        self.clock = clock
        self.publish = publish
        self.interval = interval
        self.silence = silence
        self.monotonic = monotonic
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._healthy_since: float | None = None  # monotonic; None while heartbeats fail

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.check_once()
            except StoreError as exc:  # the database is away: try again next round
                self._healthy_since = None
                log.warning("failover check skipped", extra={"error": exc.detail})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    async def check_once(self) -> list[tuple[str, str]]:
        """Heartbeat, then move what silent masters held; returns what was moved."""
        now, url, silence = self.clock(), self.url, self.silence
        await self.store.write(lambda c: heartbeat(c, now, url), lock=f"heartbeat:{url}")
        if self._healthy_since is None:
            self._healthy_since = self.monotonic()
        if self.monotonic() - self._healthy_since < silence:
            return []  # not watching long enough to tell silence from an outage
        moved = await self.store.write(lambda c: reassign_silent(c, now, silence))
        for session_id, master_url in moved:
            log.warning(
                "session moved from a silent master",
                extra={"session": session_id, "master": master_url},
            )
            await self.publish({"session": session_id, "state": "live", "master_url": master_url})
        return moved
