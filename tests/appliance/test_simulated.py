"""The simulated drive behaves like a real one on a virtual clock, failures included."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.drives.base import (
    BurnError,
    Drive,
    DrivePulled,
    DriveState,
    MediaTooSmall,
    NoMedia,
    Phase,
    Progress,
    SourceImage,
    VerifyMismatch,
    WriteProtected,
)
from appliance.drives.simulated import TICK, SimFailures, SimulatedDrive, VirtualClock

IMAGE = SourceImage(path=Path("/images/demo.iso"), size=100_000_000, name="demo.iso")


def sim(**kw: object) -> tuple[SimulatedDrive, VirtualClock]:
    clock = VirtualClock()
    return SimulatedDrive("sim-uid", clock=clock, speed=10_000_000, **kw), clock  # type: ignore[arg-type]


async def drain(it: object) -> list[Progress]:
    return [p async for p in it]  # type: ignore[attr-defined]


async def test_is_a_drive_and_burns_at_its_virtual_speed():
    drive, clock = sim()
    assert isinstance(drive, Drive)
    events = await drain(drive.write(IMAGE))
    assert clock.now() == pytest.approx(10.0)  # 100 MB at 10 MB/s, without waiting 10 s
    assert len(events) == pytest.approx(10.0 / TICK, abs=1)  # 4 events per virtual second
    assert events[-1].done == IMAGE.size
    assert events[-1].phase is Phase.WRITE
    assert events[0].eta == pytest.approx(9.75)
    checked = await drain(drive.verify(IMAGE))
    assert checked[-1].percent == 100.0
    await drive.eject()
    assert await drive.state() is DriveState.TRAY_OPEN


async def test_write_failure_at_percent():
    drive, _ = sim(failures=SimFailures(fail_write_at=40, write_error=WriteProtected))
    seen: list[Progress] = []

    async def collect() -> None:
        async for p in drive.write(IMAGE):
            seen.append(p)

    with pytest.raises(WriteProtected, match="simulated"):
        await collect()
    assert seen[-1].percent == pytest.approx(40, abs=3)


async def test_pulled_mid_write():
    drive, _ = sim(failures=SimFailures(pulled_at=25))
    with pytest.raises(DrivePulled):
        await drain(drive.write(IMAGE))
    assert await drive.state() is DriveState.GONE
    with pytest.raises(DrivePulled):
        await drive.eject()


async def test_verify_mismatch_and_unwritten_image():
    drive, _ = sim(failures=SimFailures(verify_mismatch_at=60))
    await drain(drive.write(IMAGE))
    with pytest.raises(VerifyMismatch):
        await drain(drive.verify(IMAGE))
    other, _ = sim()
    with pytest.raises(VerifyMismatch, match="does not hold"):
        await drain(other.verify(IMAGE))


async def test_no_media_tray_and_too_small():
    empty, _ = sim(media=False)
    assert await empty.state() is DriveState.EMPTY
    with pytest.raises(NoMedia):
        await drain(empty.write(IMAGE))
    drive, _ = sim()
    await drive.eject()
    with pytest.raises(NoMedia):
        await drain(drive.write(IMAGE))
    await drive.close_tray()
    assert await drive.state() is DriveState.IDLE
    small, _ = sim(capacity=1000)
    with pytest.raises(MediaTooSmall):
        await drain(small.write(IMAGE))


async def test_busy_while_writing():
    drive, _ = sim()
    states = []
    async for _p in drive.write(IMAGE):
        states.append(await drive.state())
    assert set(states) == {DriveState.BUSY}
    assert await drive.state() is DriveState.IDLE


def test_bad_speed_is_refused():
    with pytest.raises(ValueError, match="speed"):
        SimulatedDrive("u", speed=0)


async def test_generic_failure_is_a_burn_error():
    drive, _ = sim(failures=SimFailures(fail_write_at=0))
    with pytest.raises(BurnError):
        await drain(drive.write(IMAGE))


async def test_a_visitor_swaps_in_a_blank_and_a_bad_blank_fails_its_verify():
    drive, _ = sim()
    await drain(drive.write(IMAGE))
    await drain(drive.verify(IMAGE))
    await drive.eject()
    await drive.swap_disc(bad=True)
    assert await drive.state() is DriveState.IDLE  # tray closed on a blank
    with pytest.raises(VerifyMismatch):
        await drain(drive.verify(IMAGE))  # the blank holds nothing yet
    await drain(drive.write(IMAGE))
    with pytest.raises(VerifyMismatch, match="differs"):
        await drain(drive.verify(IMAGE))
    await drive.swap_disc()
    await drain(drive.write(IMAGE))
    assert (await drain(drive.verify(IMAGE)))[-1].percent == 100.0
