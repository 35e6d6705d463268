"""`burnstand-agent burn --image FILE` on a kiosk, run by the agent that owns the drives.

The CLI hands its burn over the control socket (`burn_file`, see appliance.fileburn) instead of
opening the agent's journal itself; the burn is journaled here like any other job and reported
to the coordinator from the journal. A target that is one of this agent's drives is taken as a
kiosk burn takes it: refused while busy, and busy (for the kiosk and the room) while it burns.
Any other target goes through the same checks as a burn the CLI runs by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

from appliance.agent.base import AgentBase
from appliance.agent.catalog import Take
from appliance.agent.slot import Slot
from appliance.burn.job import JobEvent, JobResult
from appliance.control import ControlError, EventListener
from appliance.drives.base import BurnError, Drive
from appliance.drives.targets import TargetRefused, make_drive
from appliance.fileburn import FileBurn, run_file_burn
from appliance.leds import LedState

# What a drive's job id reads while a file burn from the CLI runs on it.
CLI_JOB: Final = "cli"


class FileBurns(AgentBase):
    async def burn_file(
        self, image: str, targets: list[Any], options: dict[str, Any], emit: EventListener
    ) -> list[dict[str, Any]]:
        """Run one `burn_file` request to its end with this agent's journal; `emit` sends each
        job event to the asking client. Returns one result per target."""
        burn = await asyncio.to_thread(FileBurn.from_request, image, targets, options)
        journal = self.journal
        assert journal is not None  # noqa: S101 - set in start()
        ours = {s.info.path: s for s in self.slots.values()}
        drives: list[Drive] = []
        claimed: list[Slot] = []
        for target in burn.targets:
            slot = ours.get(target)
            if slot is not None:
                drives.append(slot.drive)
                claimed.append(slot)
                continue
            try:
                drive = await asyncio.to_thread(make_drive, target, partition_ok=burn.partition_ok)
            except TargetRefused as exc:
                raise ControlError("bad-target", str(exc)) from exc
            drives.append(drive)
        # Checked and claimed with no await in between, so a kiosk burn cannot slip in.
        busy = [s.name for s in claimed if s.busy]
        if busy:
            raise ControlError("busy", f"{', '.join(busy)} is busy with another burn")
        # The kiosk and the room see the file's name on the drive, and its progress.
        file = Take(
            sha256=burn.image.sha256 or "",
            md5=burn.image.md5 or "",
            size=burn.image.size,
            name=burn.image.name,
        )
        for slot in claimed:
            slot.job_id, slot.take, slot.last_result, slot.job_view = CLI_JOB, file, None, None
            self._emit_drive(slot)
        by_path = {s.info.path: s for s in claimed}
        ended: dict[str, JobResult] = {}

        def watch(event: JobEvent) -> None:
            slot = by_path.get(event.target)
            if slot is None:
                return
            if isinstance(event, JobResult):
                ended[event.target] = event
            else:
                self._on_job_event(slot, event)

        try:
            return await run_file_burn(burn, drives, journal, emit, watch)
        finally:
            for slot in claimed:
                slot.job_id, slot.job_view = None, None
                result = ended.get(slot.info.path)
                if result is not None:
                    self._finished(slot, file, result)
                if not self._closing:
                    with contextlib.suppress(BurnError):
                        await self._refresh(slot)
            self._spawn(self.report_results(), "report")

    def _finished(self, slot: Slot, file: Take, result: JobResult) -> None:
        """What a kiosk burn's end shows: the result on the drive, its lights, `finished`."""
        slot.last_result = {
            "job_id": result.job_id,
            "image": file.sha256,
            "image_name": file.name,
            "ok": result.ok,
            "reason": result.reason,
            "message": result.message,
        }
        if self.panel is not None:
            self.panel.show(slot.info.path, LedState.PASSED if result.ok else LedState.FAILED)
        self._emit({"event": "finished", "drive": slot.info.uid, "result": slot.last_result})
