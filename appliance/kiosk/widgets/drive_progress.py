"""One drive's live progress: its name, a bar, and "Writing 42% · 12.0 MB/s · 1:05 left"."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, ProgressBar

from appliance.control import DriveView
from appliance.kiosk.i18n import _
from appliance.kiosk.model import human_eta, human_size, state_name


def progress_line(drive: DriveView) -> str:
    job = drive["job"]
    if job is None:
        last = drive["last_result"]
        if last is not None:
            return _("Done — verified") if last["ok"] else _("Failed")
        return state_name(drive["state"]).capitalize()
    verbs = {
        "download": _("Downloading {percent}%"),
        "verify": _("Verifying {percent}%"),
    }
    verb = verbs.get(job["phase"], _("Writing {percent}%"))
    speed = f"{human_size(job['speed'])}/s"
    done = verb.format(percent=f"{job['percent']:.0f}")
    line = f"{done} · {speed} · {human_eta(job['eta'])}"
    shared = job.get("from_peers")
    if shared:
        # Sharing on: say how much of the image the show's other kiosks gave, beside the uplink.
        line += " · " + _("{peers} from other kiosks, {origin} from the coordinator").format(
            peers=human_size(shared), origin=human_size(job.get("from_origin", 0))
        )
    return line


class DriveProgress(Vertical):
    def __init__(self, drive: DriveView, *, mine: bool = False) -> None:
        super().__init__(id=f"drive-{drive['uid']}", classes="drive-progress")
        self.drive = drive
        self.set_class(mine, "mine")

    def compose(self) -> ComposeResult:
        title = self.drive["name"] + ("  " + _("(your disc)") if self.has_class("mine") else "")
        yield Label(title, classes="drive-name")
        # No built-in ETA: it reads the wall clock; the agent's ETA is what we show.
        yield ProgressBar(total=100, show_eta=False, show_percentage=False)
        yield Label(progress_line(self.drive), classes="drive-line")

    def on_mount(self) -> None:
        self.show(self.drive)

    def show(self, drive: DriveView) -> None:
        self.drive = drive
        job = drive["job"]
        bar = self.query_one(ProgressBar)
        if job is None:
            last = drive["last_result"]
            bar.update(progress=100 if last is not None and last["ok"] else 0)
        else:
            # Writing fills the first half of the bar and verifying the second, so it never
            # jumps back to zero between the phases.
            # A download (from the show's kiosks) is told by the line; the bar is the disc's.
            half = 50 if job["phase"] == "verify" else 0
            writing = job["phase"] != "download"
            bar.update(progress=half + job["percent"] / 2 if writing else 0)
        self.set_class(job is not None and job["phase"] == "verify", "verifying")
        self.query_one(".drive-line", Label).update(progress_line(drive))
