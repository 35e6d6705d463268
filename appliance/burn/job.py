"""A burn job: write an image to one drive, read it back, eject, and say pass or fail and why.

The job drives any `Drive` backend, records each state in the journal before entering it (so a
power cut mid-write reads as failed on the next start), fans its progress out to any number of
listeners (callbacks or async iterators) and turns every way a burn can end — a `BurnError`,
a cancelled task, an unexpected bug — into one `JobResult`; it never reports a pass it did not
verify. `burn_many` runs one job per target in parallel. A journal that refuses a step ends
the job as a failed `journal-error` result too, never as an exception out of its task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

from appliance.drives.base import (
    BurnError,
    Cancelled,
    Drive,
    DrivePulled,
    NoMedia,
    Phase,
    Progress,
    SourceImage,
)
from appliance.journal import JobState, Journal

log = logging.getLogger(__name__)

JOURNAL_ERROR = "journal-error"


class _JournalFailed(Exception):
    """The journal refused a step of a running job; the job stops and fails with the reason."""


@dataclass(frozen=True, slots=True)
class JobProgress:
    job_id: str
    target: str
    phase: Phase
    done: int
    total: int
    percent: float
    speed: float
    eta: float | None


@dataclass(frozen=True, slots=True)
class JobStateChanged:
    job_id: str
    target: str
    state: JobState


@dataclass(frozen=True, slots=True)
class JobResult:
    job_id: str
    target: str
    drive_uid: str
    state: JobState  # passed, failed or cancelled
    reason: str | None  # BurnError.code for a failure, None for a pass
    message: str
    verified: bool

    @property
    def ok(self) -> bool:
        return self.state is JobState.PASSED


JobEvent = JobProgress | JobStateChanged | JobResult
Listener = Callable[[JobEvent], None]


class _Subscription:
    """An async iterator over one job's events, ending after its `JobResult`."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[JobEvent] = asyncio.Queue()
        self._ended = False

    def push(self, event: JobEvent) -> None:
        self.queue.put_nowait(event)

    def __aiter__(self) -> _Subscription:
        return self

    async def __anext__(self) -> JobEvent:
        if self._ended:
            raise StopAsyncIteration
        event = await self.queue.get()
        if isinstance(event, JobResult):
            self._ended = True
        return event


class BurnJob:
    """write → verify → eject → result for one drive. Run it once, with `run()` or `start()`."""

    def __init__(
        self,
        drive: Drive,
        image: SourceImage,
        *,
        journal: Journal | None = None,
        verify: bool = True,
        eject: bool = True,
        job_id: str | None = None,
    ) -> None:
        self.drive = drive
        self.image = image
        self.journal = journal
        self.do_verify = verify
        self.do_eject = eject
        self.id = job_id or uuid.uuid4().hex
        info = drive.info
        self.target = info.path
        self.uid = info.uid
        self.state = JobState.QUEUED
        self.result: JobResult | None = None
        self._listeners: list[Listener] = []
        self._subs: list[_Subscription] = []
        self._task: asyncio.Task[JobResult] | None = None
        self._started = False

    # ----------------------------------------------------------------- fan-out

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every event; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def events(self) -> AsyncIterator[JobEvent]:
        """Subscribe now; iterate to get every later event, ending with the `JobResult`."""
        sub = _Subscription()
        if self.result is not None:
            sub.push(self.result)
        self._subs.append(sub)
        return sub

    def _emit(self, event: JobEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                # A broken display must not break the burn.
                log.exception("progress listener failed job=%s", self.id)
        for sub in self._subs:
            sub.push(event)

    # ----------------------------------------------------------------- running

    def start(self) -> asyncio.Task[JobResult]:
        """Run the job in its own task; `cancel()` then stops it with a Cancelled result."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"burn-{self.id}")
        return self._task

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def wait(self) -> JobResult:
        """The result of a job begun with `start()`, also when it was cancelled."""
        task = self.start()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
        if self.result is None:  # pragma: no cover - run() always sets it
            raise RuntimeError("job ended without a result")
        return self.result

    async def run(self) -> JobResult:
        if self._started:
            raise RuntimeError(f"job {self.id} already ran")
        self._started = True
        image = self.image
        if self.journal is not None:
            try:
                await self.journal.create(
                    self.id, self.uid, self.target, str(image.path), image.sha256, image.md5
                )
            except Exception as exc:
                self.journal = None  # nothing of this job is in it; write nothing more there
                return await self._finish(
                    JobState.FAILED,
                    JOURNAL_ERROR,
                    f"the job journal could not record the job, so nothing was written ({exc})",
                    False,
                )
        verified = False
        try:
            await self._enter(JobState.WRITING)
            async for p in self.drive.write(image):
                self._progress(p)
            if self.do_verify:
                await self._enter(JobState.VERIFYING)
                async for p in self.drive.verify(image):
                    self._progress(p)
                verified = True
            message = "written and verified" if verified else "written, not verified"
            result = await self._finish(JobState.PASSED, None, message, verified)
        except asyncio.CancelledError:
            await asyncio.shield(
                self._finish(
                    JobState.CANCELLED,
                    Cancelled.code,
                    "cancelled; the target is blank at its start and must be burned again",
                    False,
                )
            )
            raise
        except BurnError as exc:
            state = JobState.CANCELLED if isinstance(exc, Cancelled) else JobState.FAILED
            result = await self._finish(state, exc.code, str(exc), False)
            if isinstance(exc, DrivePulled | NoMedia | Cancelled):
                return result
        except _JournalFailed as exc:
            return await self._finish(JobState.FAILED, JOURNAL_ERROR, str(exc), False)
        except Exception as exc:
            # Anything unforeseen is still a failed job with a reason, never a crash or a pass.
            log.exception("burn job crashed job=%s target=%s", self.id, self.target)
            return await self._finish(JobState.FAILED, "internal-error", repr(exc), False)
        if self.do_eject:
            try:
                await self.drive.eject()
            except Exception as exc:  # the result stands; eject is a courtesy
                log.warning("eject failed job=%s target=%s error=%r", self.id, self.target, exc)
        return result

    async def _enter(self, state: JobState) -> None:
        if self.journal is not None:
            try:
                await self.journal.transition(self.id, state)
            except Exception as exc:
                raise _JournalFailed(
                    f"the job journal could not record the {state} step, so the burn stopped"
                    f" ({exc})"
                ) from exc
        self.state = state
        self._emit(JobStateChanged(self.id, self.target, state))

    async def _finish(
        self, state: JobState, reason: str | None, message: str, verified: bool
    ) -> JobResult:
        if self.result is not None:
            return self.result
        if self.journal is not None:
            try:
                await self.journal.transition(self.id, state, reason, message)
            except Exception as exc:
                # The journal is what gets reported upstream; a result it does not hold is
                # never told as a pass.
                log.warning(
                    "journal refused the result job=%s state=%s error=%r", self.id, state, exc
                )
                if state is JobState.PASSED:
                    message = f"{message}, but the job journal could not record it ({exc})"
                    state, reason, verified = JobState.FAILED, JOURNAL_ERROR, False
                else:
                    message = f"{message} (the job journal could not record it: {exc})"
        self.state = state
        result = JobResult(self.id, self.target, self.uid, state, reason, message, verified)
        self.result = result
        log.info(
            "burn finished job=%s target=%s state=%s reason=%s", self.id, self.target, state, reason
        )
        self._emit(JobStateChanged(self.id, self.target, state))
        self._emit(result)
        return result

    def _progress(self, p: Progress) -> None:
        self._emit(
            JobProgress(self.id, self.target, p.phase, p.done, p.total, p.percent, p.speed, p.eta)
        )


async def burn_many(
    drives: Iterable[Drive],
    image: SourceImage,
    *,
    journal: Journal | None = None,
    verify: bool = True,
    eject: bool = True,
    listener: Listener | None = None,
) -> list[JobResult]:
    """Burn one image to several drives at once; one result per drive, in the given order."""
    jobs = [BurnJob(d, image, journal=journal, verify=verify, eject=eject) for d in drives]
    if listener is not None:
        for job in jobs:
            job.add_listener(listener)
    tasks = [job.start() for job in jobs]
    try:
        await asyncio.gather(*tasks, return_exceptions=True)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return [await job.wait() for job in jobs]
