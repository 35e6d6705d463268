"""Burn jobs end to end: journal first, progress fan-out, cancel, parallel real loop targets."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from appliance.burn import BurnJob, JobEvent, JobProgress, JobResult, JobStateChanged, burn_many
from appliance.drives.base import DrivePulled, Phase, SourceImage
from appliance.drives.block import BlockDrive, BlockHooks
from appliance.drives.simulated import SimFailures, SimulatedDrive, VirtualClock
from appliance.journal import JobState, Journal

if TYPE_CHECKING:
    from tests.appliance.conftest import ImageMaker, LoopFactory

MiB = 1024 * 1024
IMAGE = SourceImage(path=Path("/images/demo.iso"), size=50_000_000, name="demo.iso", md5="a" * 32)


def sim(**kw: object) -> SimulatedDrive:
    return SimulatedDrive("sim-uid", "sim:1", clock=VirtualClock(), **kw)  # type: ignore[arg-type]


@pytest.fixture
async def journal(tmp_path: Path):
    j = await Journal.open(tmp_path / "journal.db")
    yield j
    await j.close()


class GatedClock(VirtualClock):
    """Virtual time that only moves when the test lets it: one tick per permit."""

    def __init__(self) -> None:
        super().__init__()
        self.permits = asyncio.Semaphore(0)

    async def sleep(self, seconds: float) -> None:
        await self.permits.acquire()
        await super().sleep(seconds)


async def test_pass_is_journaled_before_each_step(journal: Journal):
    clock = GatedClock()
    drive = SimulatedDrive("sim-uid", "sim:1", clock=clock)
    job = BurnJob(drive, IMAGE, journal=journal)
    seen_in_journal: dict[Phase, JobState] = {}
    events: list[JobEvent] = []

    async def watch() -> None:
        async for ev in job.events():
            events.append(ev)
            if isinstance(ev, JobStateChanged) or (
                isinstance(ev, JobProgress) and ev.phase not in seen_in_journal
            ):
                # The drive is parked until we hand out the next tick, so this is the state
                # the journal held while that event happened.
                rec = await journal.get(job.id)
                assert rec is not None
                if isinstance(ev, JobProgress):
                    seen_in_journal[ev.phase] = rec.state
                else:
                    assert rec.state is ev.state
            clock.permits.release()

    watcher = asyncio.create_task(watch())
    result = await job.run()
    await asyncio.wait_for(watcher, 5)

    assert result.ok
    assert result.verified
    assert result.reason is None
    assert seen_in_journal == {Phase.WRITE: JobState.WRITING, Phase.VERIFY: JobState.VERIFYING}
    states = [e.state for e in events if isinstance(e, JobStateChanged)]
    assert states == [JobState.WRITING, JobState.VERIFYING, JobState.PASSED]
    assert events[-1] == result
    assert await journal.history(job.id) == [
        JobState.QUEUED,
        JobState.WRITING,
        JobState.VERIFYING,
        JobState.PASSED,
    ]
    assert drive.tray_open  # ejected after the pass
    rec = await journal.get(job.id)
    assert rec is not None
    assert rec.image_md5 == "a" * 32


async def test_failure_has_reason_code_and_message(journal: Journal):
    job = BurnJob(sim(failures=SimFailures(verify_mismatch_at=50)), IMAGE, journal=journal)
    result = await job.run()
    assert (result.state, result.reason, result.ok) == (JobState.FAILED, "verify-mismatch", False)
    assert "differs" in result.message
    rec = await journal.get(job.id)
    assert rec is not None
    assert (rec.state, rec.reason) == (JobState.FAILED, "verify-mismatch")


async def test_pulled_drive_fails_without_eject(journal: Journal):
    drive = sim(failures=SimFailures(pulled_at=10))
    result = await BurnJob(drive, IMAGE, journal=journal).run()
    assert result.reason == DrivePulled.code
    assert not drive.tray_open


async def test_no_verify_passes_unverified():
    result = await BurnJob(sim(), IMAGE, verify=False).run()
    assert result.ok
    assert not result.verified
    assert "not verified" in result.message


async def test_unexpected_bug_is_a_failed_job_not_a_crash(journal: Journal):
    class Broken(SimulatedDrive):
        def verify(self, image: SourceImage):  # type: ignore[override]
            raise RuntimeError("boom")

    job = BurnJob(Broken("u", clock=VirtualClock()), IMAGE, journal=journal)
    result = await job.run()
    assert (result.state, result.reason) == (JobState.FAILED, "internal-error")


async def test_broken_listener_does_not_break_the_burn():
    job = BurnJob(sim(), IMAGE)
    calls: list[JobEvent] = []

    def bad(ev: JobEvent) -> None:
        raise ValueError("display crashed")

    job.add_listener(bad)
    remove = job.add_listener(calls.append)
    result = await job.run()
    assert result.ok
    assert calls[-1] == result
    remove()
    assert isinstance(calls[0], JobStateChanged)


async def test_cancel_mid_write_is_cancelled_and_target_blank(
    journal: Journal, loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(24 * MiB)
    dev = loop_devices(32 * MiB, fill=b"\x42")
    reached, release = threading.Event(), threading.Event()

    def park(n: int) -> None:
        if n == 2:
            reached.set()
            release.wait(10)

    drive = BlockDrive(dev.path, "u", chunk_size=4 * MiB, hooks=BlockHooks(after_chunk=park))
    job = BurnJob(drive, SourceImage(img, img.stat().st_size), journal=journal)
    job.start()
    assert await asyncio.to_thread(reached.wait, 10)
    rec = await journal.get(job.id)
    assert rec is not None
    assert rec.state is JobState.WRITING
    job.cancel()
    release.set()
    result = await job.wait()
    assert (result.state, result.reason) == (JobState.CANCELLED, "cancelled")
    rec = await journal.get(job.id)
    assert rec is not None
    assert rec.state is JobState.CANCELLED
    assert dev.read(0, 4 * MiB) == bytes(4 * MiB)


async def test_four_loop_targets_in_parallel_all_verified(
    journal: Journal, loop_devices: LoopFactory, make_test_image: ImageMaker
):
    img = make_test_image(48 * MiB + 512)
    devs = [loop_devices(64 * MiB) for _ in range(4)]
    drives = [BlockDrive(d.path, f"uid{i}") for i, d in enumerate(devs)]
    progress: dict[str, set[Phase]] = {}

    def listen(ev: JobEvent) -> None:
        if isinstance(ev, JobProgress):
            progress.setdefault(ev.target, set()).add(ev.phase)

    image = SourceImage(img, img.stat().st_size)
    results = await burn_many(drives, image, journal=journal, listener=listen)
    assert [r.target for r in results] == [d.path for d in devs]
    assert all(isinstance(r, JobResult) and r.ok and r.verified for r in results)
    assert progress == {d.path: {Phase.WRITE, Phase.VERIFY} for d in devs}
    data = img.read_bytes()
    for d in devs:
        assert d.read(0, len(data)) == data
    assert {r.state for r in await journal.jobs()} == {JobState.PASSED}


async def test_job_runs_once():
    job = BurnJob(sim(), IMAGE)
    await job.run()
    with pytest.raises(RuntimeError, match="already ran"):
        await job.run()


async def test_a_journal_that_refuses_a_step_ends_the_job_failed_not_crashed(
    tmp_path: Path, journal: Journal
):
    """Someone else's hand on the job's row (as `jobs` once marked running burns failed) must
    end the burn as a clear failed result, never an exception out of the job task."""
    clock = GatedClock()
    job = BurnJob(SimulatedDrive("sim-uid", "sim:1", clock=clock), IMAGE, journal=journal)
    task = job.start()
    async for ev in job.events():
        if isinstance(ev, JobProgress) and ev.phase is Phase.VERIFY:
            # A stray writer fails the job behind the owner's back, mid-verify.
            await journal.transition(job.id, JobState.FAILED, "interrupted", "stray")
            break
        clock.permits.release()
    for _ in range(10_000):  # bounded: the drive needs a tick per step
        if task.done():
            break
        clock.permits.release()
        await asyncio.sleep(0)
    result = await asyncio.wait_for(task, 5)
    assert (result.state, result.reason, result.verified) == (
        JobState.FAILED,
        "journal-error",
        False,
    )
    assert "could not record" in result.message


async def test_a_journal_that_cannot_take_the_job_writes_nothing(tmp_path: Path):
    j = await Journal.open(tmp_path / "journal.db")
    try:
        await j.create("taken", "u", "sim:1", "/i.iso")
        drive = sim()
        result = await BurnJob(drive, IMAGE, journal=j, job_id="taken").run()
    finally:
        await j.close()
    assert (result.state, result.reason) == (JobState.FAILED, "journal-error")
    assert "nothing was written" in result.message
