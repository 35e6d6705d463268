"""The commands about the drives and the agent service: `drives` (what discovery sees),
`jobs` (the job journal, asked of the running agent when there is one), `run` (the agent itself)
and `status`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    human,
    journal_path,
    open_journal,
    socket_path,
)
from plumbing import logs

if TYPE_CHECKING:
    pass


_DRIVE_COLUMNS = ("PATH", "KIND", "CAPABILITIES", "SIZE", "MODEL", "UID")


def drives_command(args: argparse.Namespace) -> int:
    try:
        from appliance.drives.discovery import list_drives
    except ImportError as exc:
        raise CliError(f"drive discovery is not available here ({exc})") from exc
    try:
        found = list_drives()
    except Exception as exc:
        raise CliError(f"drive discovery failed: {exc}") from exc
    if args.json:
        # One array, so "nothing found" is `[]` and not an empty output a script cannot tell
        # from a crash.
        rows = [
            {
                "uid": d.uid,
                "path": d.path,
                "kind": str(d.kind),
                "capabilities": sorted(d.capabilities),
                "capacity": d.capacity,
                "model": d.model,
                "block_size": d.block_size,
            }
            for d in found
        ]
        print(json.dumps(rows))
        return EXIT_OK
    table = [
        (
            d.path,
            str(d.kind),
            ",".join(sorted(d.capabilities)),
            "-" if d.capacity is None else human(d.capacity),
            d.model or "-",
            d.uid,
        )
        for d in found
    ]
    widths = [max(len(row[i]) for row in [_DRIVE_COLUMNS, *table]) for i in range(6)]
    for row in [_DRIVE_COLUMNS, *table]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if not found:
        print("no drives found (burners, USB sticks and SD cards show up here)", file=sys.stderr)
    return EXIT_OK


async def jobs_command(args: argparse.Namespace) -> int:
    if args.journal is None and "BURNSTAND_JOURNAL" not in os.environ:
        # On a kiosk the agent owns the journal: ask it, and read the file only without one.
        asked = await _agent_jobs(args.socket)
        if asked is not None:
            _print_jobs(asked, as_json=args.json)
            return EXIT_OK
    path = journal_path(args)
    if not path.exists():
        print(f"burnstand-agent: no jobs yet (no job journal at {path})", file=sys.stderr)
        return EXIT_OK
    # Read-only: looking must never change a job another process is running.
    journal = await open_journal(path, read_only=True)
    try:
        records = await journal.jobs()
    finally:
        await journal.close()
    _print_jobs([r.as_json() for r in records], as_json=args.json)
    return EXIT_OK


async def _agent_jobs(socket: Path | None) -> list[dict[str, Any]] | None:
    """The running agent's jobs, or None when no agent answers on its control socket."""
    from appliance.control import AgentUnavailable, ControlClient, RequestFailed

    path = socket_path(socket)
    if not path.exists():
        return None
    try:
        async with ControlClient(path, timeout=5.0) as client:
            jobs: list[dict[str, Any]] = await client.request("jobs")
    except AgentUnavailable:
        return None
    except RequestFailed as exc:
        raise CliError(f"the agent could not list its jobs: {exc}") from exc
    return jobs


def _print_jobs(jobs: list[dict[str, Any]], *, as_json: bool) -> None:
    from appliance.jobtable import job_table

    lines = [json.dumps(job) for job in jobs] if as_json else job_table(jobs)
    for line in lines:
        print(line)


def run_command(args: argparse.Namespace) -> int:
    import asyncio

    from appliance.agent import run
    from appliance.config import ConfigError, load_config
    from appliance.journal import JournalError

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"burnstand-agent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logs.setup(args.log_level, args.log_format)
    try:
        asyncio.run(run(config, socket=args.socket))
    except (OSError, JournalError) as exc:
        raise CliError(f"the agent could not start: {exc}") from exc
    return EXIT_OK


async def status_command(args: argparse.Namespace) -> int:
    from appliance.control import AgentUnavailable, ControlClient

    path = socket_path(args.socket)
    try:
        async with ControlClient(path, timeout=5.0) as client:
            status = await client.request("status")
            drives = await client.request("drives")
    except AgentUnavailable as exc:
        raise CliError(f"{exc} (is burnstand-agent running?)") from exc
    if args.json:
        print(json.dumps({"status": status, "drives": drives}))
        return EXIT_OK
    print(f"agent {status['version']}  link {status['link']}  {status['coordinator'] or '-'}")
    print(f"cache {human(status['cache_used'])} of {human(status['cache_max'])}")
    for d in drives:
        job = d.get("job")
        doing = f"{job['phase']} {job['percent']:.0f}% {job['image_name']}" if job else d["state"]
        last = d.get("last_result")
        after = f"  last: {'PASS' if last['ok'] else 'FAIL'} {last['image_name']}" if last else ""
        print(f"{d['name']}\t{d['path']}\t{doing}{after}")
    return EXIT_OK
