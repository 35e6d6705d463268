"""One caller at a time per write key inside this process, queued on the event loop.

On PostgreSQL a keyed write waits for its advisory lock on the server while holding a pooled
connection and a thread of the store's pool. Fifty clients writing under one key (say, acting
on one session) would then hold most of the pool while they wait, and every other request would
queue behind them. Writes of one key are therefore lined up here first, at no cost while they
wait; the advisory lock still orders them against other processes and hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class KeyedGate:
    """``async with gate.hold(key)``: one holder per key; keys nobody waits for are dropped."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
