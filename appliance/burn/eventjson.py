"""A burn job's events as JSON: the CLI's `--json` lines, and the exact form the agent streams.

`event_json` is the public shape `burnstand-agent burn --json` prints (rounded for people and
scripts). `to_wire`/`from_wire` carry an event unrounded from the agent to the CLI over the
control socket, so a burn the agent runs for the CLI prints exactly what a burn the CLI runs
itself would print.
"""

from __future__ import annotations

from typing import Any

from appliance.burn.job import JobEvent, JobProgress, JobResult, JobStateChanged
from appliance.drives.base import Phase
from appliance.journal import JobState


def event_json(event: JobEvent) -> dict[str, Any]:
    """The `--json` line of one event."""
    if isinstance(event, JobProgress):
        return {
            "event": "progress",
            "job": event.job_id,
            "target": event.target,
            "phase": str(event.phase),
            "done": event.done,
            "total": event.total,
            "percent": round(event.percent, 2),
            "speed": round(event.speed),
            "eta": None if event.eta is None else round(event.eta, 1),
        }
    if isinstance(event, JobStateChanged):
        return {
            "event": "state",
            "job": event.job_id,
            "target": event.target,
            "state": str(event.state),
        }
    return {
        "event": "result",
        "job": event.job_id,
        "target": event.target,
        "uid": event.drive_uid,
        "state": str(event.state),
        "ok": event.ok,
        "verified": event.verified,
        "reason": event.reason,
        "message": event.message,
    }


def to_wire(event: JobEvent) -> dict[str, Any]:
    """One event, every field as the job produced it."""
    if isinstance(event, JobProgress):
        return {
            "kind": "progress",
            "job_id": event.job_id,
            "target": event.target,
            "phase": str(event.phase),
            "done": event.done,
            "total": event.total,
            "percent": event.percent,
            "speed": event.speed,
            "eta": event.eta,
        }
    if isinstance(event, JobStateChanged):
        return {
            "kind": "state",
            "job_id": event.job_id,
            "target": event.target,
            "state": str(event.state),
        }
    return {
        "kind": "result",
        "job_id": event.job_id,
        "target": event.target,
        "drive_uid": event.drive_uid,
        "state": str(event.state),
        "reason": event.reason,
        "message": event.message,
        "verified": event.verified,
    }


def from_wire(raw: dict[str, Any]) -> JobEvent:
    """The event `to_wire` made; KeyError or ValueError when `raw` is not one."""
    kind = raw["kind"]
    if kind == "progress":
        eta = raw["eta"]
        return JobProgress(
            job_id=str(raw["job_id"]),
            target=str(raw["target"]),
            phase=Phase(raw["phase"]),
            done=int(raw["done"]),
            total=int(raw["total"]),
            percent=float(raw["percent"]),
            speed=float(raw["speed"]),
            eta=None if eta is None else float(eta),
        )
    if kind == "state":
        return JobStateChanged(
            job_id=str(raw["job_id"]), target=str(raw["target"]), state=JobState(raw["state"])
        )
    if kind == "result":
        reason = raw["reason"]
        return JobResult(
            job_id=str(raw["job_id"]),
            target=str(raw["target"]),
            drive_uid=str(raw["drive_uid"]),
            state=JobState(raw["state"]),
            reason=None if reason is None else str(reason),
            message=str(raw["message"]),
            verified=bool(raw["verified"]),
        )
    raise ValueError(f"not a burn event kind: {kind!r}")
