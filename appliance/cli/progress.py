"""How `burn` shows its jobs: JSON-lines events with `--json`, bars redrawn in place on a terminal,
or one plain line per 10 % step when piped to a file."""

from __future__ import annotations

import json
import sys

from appliance.cli.common import TYPE_CHECKING, human

if TYPE_CHECKING:
    from typing import Any, TextIO

    from appliance.burn.job import JobEvent


class View:
    def event(self, event: JobEvent) -> None:
        raise NotImplementedError

    def note(self, text: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        return None


class JsonView(View):
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def event(self, event: JobEvent) -> None:
        from appliance.burn.eventjson import event_json

        self.emit(event_json(event))

    def note(self, text: str) -> None:
        self.emit({"event": "note", "message": text})

    def emit(self, obj: dict[str, Any]) -> None:
        self.out.write(json.dumps(obj) + "\n")
        self.out.flush()


# Plain classes, not dataclasses: `dataclasses` pulls in `inspect`, and this module is loaded
# before `burn --json` prints its first event.
class _Line:
    def __init__(self) -> None:
        self.text = "queued"
        self.last_step = -1
        self.last_phase = ""


class TextView(View):
    """Bars redrawn in place on a terminal; one line per 10 % step when piped to a file."""

    def __init__(self, out: TextIO, targets: list[str]) -> None:
        self.out = out
        self.targets = targets
        self.drawn = False
        self.last_draw = 0.0
        self.tty = out.isatty()
        self.width = max(len(t) for t in targets)
        self.lines = {t: _Line() for t in targets}

    def event(self, event: JobEvent) -> None:
        from appliance.burn.job import JobProgress, JobResult, JobStateChanged

        line = self.lines.setdefault(event.target, _Line())
        if isinstance(event, JobProgress):
            eta = "--" if event.eta is None else f"{event.eta:.0f}s"
            bar = "#" * int(event.percent / 5)
            line.text = (
                f"{event.phase:<6} [{bar:<20}] {event.percent:5.1f}% "
                f"{human(event.speed)}/s eta {eta}"
            )
            step = int(event.percent // 10)
            if not self.tty and (step != line.last_step or line.last_phase != event.phase):
                line.last_step, line.last_phase = step, str(event.phase)
                self._plain(event.target, line.text)
        elif isinstance(event, JobStateChanged):
            line.text = str(event.state)
            if not self.tty:
                self._plain(event.target, str(event.state))
        elif isinstance(event, JobResult):
            # A failure's message is printed once, on stderr at the end (with its target and
            # reason); the target's own line only says that it failed and why in one word.
            line.text = f"PASS: {event.message}" if event.ok else f"FAIL ({event.reason})"
            if not self.tty:
                self._plain(event.target, line.text)
        if self.tty:
            # Redraw at most 10 times a second, but never skip a finished phase or a new state.
            finished = isinstance(event, JobProgress) and event.done >= event.total
            self._draw(force=finished or not isinstance(event, JobProgress))

    def note(self, text: str) -> None:
        print(f"note: {text}", file=sys.stderr)

    def _plain(self, target: str, text: str) -> None:
        self.out.write(f"{target}: {text}\n")
        self.out.flush()

    def _draw(self, *, force: bool) -> None:
        import time

        now = time.monotonic()
        if not force and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        if self.drawn:
            self.out.write(f"\x1b[{len(self.lines)}F")
        for target, line in self.lines.items():
            self.out.write(f"\x1b[2K{target:<{self.width}}  {line.text}\n")
        self.drawn = True
        self.out.flush()

    def close(self) -> None:
        if self.tty:
            self._draw(force=True)
