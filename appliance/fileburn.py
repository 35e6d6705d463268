"""One image file burned to the targets an operator names, wherever the burn runs.

`burnstand-agent burn --image FILE --target …` on a kiosk hands its burn to the running agent
over the control socket (`burn_file`) instead of opening the agent's job journal behind its
back: the agent owns the journal and the drives. The agent runs the burn, streams each job
event back to the asking client, and answers with the results; the CLI prints them exactly as
it prints a burn it runs itself. Closing the connection (Ctrl-C, SIGTERM) cancels the burn in
the agent. Without an agent the CLI burns by itself with its own journal.

Both sides share `FileBurn`: the CLI builds one from its flags and sends it as a request, the
agent parses the request back and refuses anything malformed with `bad-args`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from appliance.drives.base import SourceImage
from appliance.imagefile import ImageUnreadable, checked_image

if TYPE_CHECKING:
    from appliance.burn.job import JobEvent, JobResult
    from appliance.drives.base import Drive
    from appliance.journal import Journal

# What `burn_file` pushes for each job event: {"event": "burn", "job": <eventjson.to_wire>}.
BURN_EVENT: Final = "burn"
_OPTIONS: Final = frozenset(
    {
        "sha256",
        "md5",
        "extracted_size",
        "extracted_sha256",
        "bmap",
        "raw",
        "verify",
        "eject",
        "partition_ok",
    }
)

# The on/off options and what an omitted one means.
_FLAGS: Final = {"raw": False, "verify": True, "eject": True, "partition_ok": False}


class AgentRefused(Exception):
    """The agent answered `burn_file` with an error; `message` is for the operator."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class FileBurn:
    """What to burn where, and how: the CLI's `burn` flags for an image file."""

    image: SourceImage
    targets: tuple[str, ...]
    verify: bool = True
    eject: bool = True
    partition_ok: bool = False

    def to_request(self) -> dict[str, Any]:
        """The `burn_file` arguments (image, targets, options)."""
        image = self.image
        return {
            "image": str(image.path),
            "targets": list(self.targets),
            "options": {
                "sha256": image.sha256,
                "md5": image.md5,
                "extracted_size": image.extracted_size,
                "extracted_sha256": image.extracted_sha256,
                "bmap": None if image.bmap is None else os.path.abspath(image.bmap),
                "raw": image.encoding == "raw",
                "verify": self.verify,
                "eject": self.eject,
                "partition_ok": self.partition_ok,
            },
        }

    @classmethod
    def from_request(cls, image: str, targets: list[Any], options: dict[str, Any]) -> FileBurn:
        """The burn a `burn_file` request asks for; `ControlError` (bad-args, bad-image) when it
        is malformed or the agent cannot read the image."""
        from appliance.control import ControlError

        def bad(message: str) -> ControlError:
            return ControlError("bad-args", f"burn_file: {message}")

        if not targets or not all(isinstance(t, str) and t.strip() for t in targets):
            raise bad("'targets' must be a non-empty list of device paths")
        if len(set(targets)) != len(targets):
            raise bad("the same target was given twice")
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise bad(f"unknown option {', '.join(map(repr, unknown))}")
        flags = {k: options.get(k, default) for k, default in _FLAGS.items()}
        for key, value in flags.items():
            if not isinstance(value, bool):
                raise bad(f"{key!r} must be true or false")
        digests = {k: options.get(k) for k in ("sha256", "extracted_sha256", "md5")}
        for key, value in digests.items():
            digits = 32 if key == "md5" else 64
            if value is not None and not (
                isinstance(value, str) and re.fullmatch(f"[0-9a-f]{{{digits}}}", value)
            ):
                raise bad(f"{key!r} must be {digits} lowercase hex digits")
        extracted = options.get("extracted_size")
        if extracted is not None and (
            not isinstance(extracted, int) or isinstance(extracted, bool) or extracted <= 0
        ):
            raise bad("'extracted_size' must be a positive number of bytes")
        bmap = options.get("bmap")
        if bmap is not None and not (isinstance(bmap, str) and os.path.isabs(bmap)):
            raise bad("'bmap' must be an absolute path")
        if not os.path.isabs(image):
            raise bad("'image' must be an absolute path")
        try:
            path, size = checked_image(image)
        except ImageUnreadable as exc:
            raise ControlError("bad-image", str(exc)) from exc
        return cls(
            image=SourceImage(
                path=path,
                size=size,
                sha256=digests["sha256"],
                md5=digests["md5"],
                name=path.name,
                encoding="raw" if flags["raw"] else "auto",
                extracted_size=extracted,
                extracted_sha256=digests["extracted_sha256"],
                bmap=None if bmap is None else Path(bmap),
            ),
            targets=tuple(targets),
            verify=flags["verify"],
            eject=flags["eject"],
            partition_ok=flags["partition_ok"],
        )


async def run_file_burn(
    burn: FileBurn,
    drives: Iterable[Drive],
    journal: Journal,
    emit: Callable[[dict[str, Any]], None],
    watch: Callable[[JobEvent], None] | None = None,
) -> list[dict[str, Any]]:
    """The agent's side: burn, push every job event through `emit` (and to `watch`, the agent's
    own view of its drives), answer with the results."""
    from appliance.burn.eventjson import to_wire
    from appliance.burn.job import burn_many

    def listener(event: JobEvent) -> None:
        if watch is not None:
            watch(event)
        emit({"event": BURN_EVENT, "job": to_wire(event)})

    results = await burn_many(
        drives,
        burn.image,
        journal=journal,
        verify=burn.verify,
        eject=burn.eject,
        listener=listener,
    )
    return [to_wire(r) for r in results]


async def burn_through_agent(
    socket: Path, burn: FileBurn, listener: Callable[[JobEvent], None]
) -> list[JobResult] | None:
    """The CLI's side: run `burn` in the agent listening on `socket`, feeding `listener` the
    job events as they come. None when no agent answers there (the CLI then burns by itself).
    Cancelling this task cancels the burn in the agent and waits (bounded) for it to end, so
    the targets are left as a local cancel leaves them, then raises CancelledError."""
    import asyncio

    from appliance.burn.eventjson import from_wire
    from appliance.burn.job import JobResult
    from appliance.control import STREAM_CANCEL_WAIT, AgentUnavailable, ControlClient, RequestFailed

    client = ControlClient(socket, timeout=5.0)
    try:
        await client.connect()
    except AgentUnavailable:
        return None

    def on_event(event: dict[str, Any]) -> None:
        if event.get("event") == BURN_EVENT:
            listener(from_wire(event["job"]))

    try:
        task = asyncio.create_task(client.stream("burn_file", on_event, **burn.to_request()))
        try:
            raw = await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                await client.end_input()
                await asyncio.wait({task}, timeout=STREAM_CANCEL_WAIT + 5)
            if task.done() and not task.cancelled():
                task.exception()  # the agent's "cancelled" reply: retrieved, nothing to tell
            else:
                task.cancel()
            raise
    except RequestFailed as exc:
        raise AgentRefused(exc.code, exc.message) from exc
    except AgentUnavailable as exc:
        raise AgentRefused("agent-gone", f"lost the agent during the burn: {exc}") from exc
    finally:
        await client.close()
    results = [from_wire(r) for r in raw]
    return [r for r in results if isinstance(r, JobResult)]
