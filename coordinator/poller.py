"""A check that runs again and again in the background: the loop the credential watchers and the
image fetcher share.

A `Poller` subclass says what one check is (`check_once`, which tests call directly) and how long
to wait between checks (`_interval`). `_start_task` runs the check in a task until `stop`, again
after each interval or at once after `poke`; a check that raises is logged on the subclass's
logger and the loop goes on, so one bad read never ends the watching. With `wait_first` the first
check waits for an interval or a poke too, rather than running as the task starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging


class Poller:
    def __init__(self, log: logging.Logger, task_name: str, failed: str) -> None:
        self._log = log
        self._task_name = task_name
        self._check_failed = failed  # the log line of a check that raised
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def check_once(self) -> object:
        raise NotImplementedError

    def _interval(self) -> float:
        raise NotImplementedError

    def poke(self) -> None:
        """Check now rather than at the next interval."""
        self._wake.set()

    async def _run(self, wait_first: bool) -> None:
        if wait_first:
            await self._wait()
        while True:
            try:
                await self.check_once()
            except Exception:
                self._log.exception(self._check_failed)
            await self._wait()

    async def _wait(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._interval())
        self._wake.clear()

    def _start_task(self, *, wait_first: bool = False) -> None:
        self._task = asyncio.create_task(self._run(wait_first), name=self._task_name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
