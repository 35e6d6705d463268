"""One drive as the agent holds it: the `Slot` with its state, current job and last result.

A slot is what the kiosk sees of a drive (`Slot.view`) and what the burn protocol calls its
STATUS (`proto_status`). Burns, the link and the control API all read and change slots.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from appliance.agent.catalog import Take
from appliance.burn.job import BurnJob
from appliance.config import SimulatedDriveConfig
from appliance.control import DriveView, JobView, ResultView
from appliance.drives.base import Drive, DriveInfo, DriveState, Phase
from appliance.drives.simulated import SimulatedDrive
from appliance.drives.uid import drive_uid


@dataclass(eq=False)
class Slot:
    drive: Drive
    name: str
    state: DriveState = DriveState.IDLE
    job: BurnJob | None = None
    take: Take | None = None
    job_id: str | None = None  # set from acceptance on, before the BurnJob exists (fetching)
    job_view: JobView | None = None
    last_result: ResultView | None = None
    sent_status: str | None = None
    task: asyncio.Task[None] | None = None

    @property
    def info(self) -> DriveInfo:
        return self.drive.info

    @property
    def busy(self) -> bool:
        return self.job_id is not None

    def view(self) -> DriveView:
        info = self.info
        return {
            "uid": info.uid,
            "name": self.name,
            "path": info.path,
            "kind": info.kind.value,
            "capabilities": sorted(info.capabilities),
            "capacity": info.capacity,
            "state": DriveState.BUSY.value if self.busy else self.state.value,
            "job": self.job_view,
            "last_result": self.last_result,
        }


def proto_status(slot: Slot) -> str:
    """The burn protocol's STATUS word for a drive."""
    if slot.job_view is not None:
        view = slot.job_view
        overall = view["percent"] / 2 + (50 if view["phase"] == Phase.VERIFY.value else 0)
        return f"{int(overall)}%"
    if slot.busy:
        return "0%"
    if slot.state is DriveState.TRAY_OPEN:
        if slot.last_result is not None:
            return "MD5PASS" if slot.last_result["ok"] else "MD5FAIL"
        return "TRAYOPEN"
    if slot.state in (DriveState.EMPTY, DriveState.GONE):
        return "EMPTY"
    return "IDLE"


def cancel_job(slot: Slot) -> None:
    if slot.task is not None:
        slot.task.cancel()


def simulated_drive(conf: SimulatedDriveConfig) -> SimulatedDrive:
    return SimulatedDrive(
        drive_uid(conf.path),
        conf.path,
        speed=conf.speed,
        capacity=conf.capacity,
        capabilities=conf.capabilities,
    )
