"""`burnstand-agent jobs` as a table for people: one row per job, oldest first.

The rows come from the journal's JSON view of a job (`JobRecord.as_json`), whether the CLI read
the journal itself or asked the agent, so both print the same. Columns: a short job id (the
full one is in `--json`), when it started (local time), the image's file name, the target, the
result (the failure's reason in brackets) and how long it took. A failed job's message follows
the table, once per job, under its short id.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

COLUMNS: Final = ("ID", "STARTED", "IMAGE", "TARGET", "RESULT", "DURATION")
SHORT_ID: Final = 8


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _image_name(image: str) -> str:
    return image.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or image


def _row(job: dict[str, Any]) -> tuple[str, ...]:
    started = datetime.fromisoformat(job["started"]).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    result = job["state"] + (f" ({job['reason']})" if job.get("reason") else "")
    return (
        job["id"][:SHORT_ID],
        started,
        _image_name(job["image"]),
        job["target"],
        result,
        duration_text(job.get("duration")),
    )


def job_table(jobs: Iterable[dict[str, Any]]) -> list[str]:
    """The table's lines (header first), then one `id: message` line per job with a message
    that is not a pass."""
    listed = list(jobs)
    rows = [COLUMNS, *(_row(j) for j in listed)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    for job in listed:
        if job.get("message") and job["state"] != "passed":
            lines.append(f"{job['id'][:SHORT_ID]}: {job['message']}")
    return lines
