"""What the kiosk knows, outside the widgets: drives, catalog, agent status, the visitor's burn.

The app's link worker loads a snapshot from the agent and then feeds every pushed event to
`KioskModel.apply`; screens only read the model and re-render when its `revision` moves. The
helpers here also hold the wording a visitor sees for sizes, speeds, times and failure reasons,
so every screen says things the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from appliance.control import (
    AgentStatus,
    DriveView,
    ImageView,
    ResultView,
    fits,
    unpacked_size,
    why_not_offered,
)
from appliance.kiosk.i18n import N_, _
from plumbing import units
from wire import failures


@dataclass
class VisitorBurn:
    """The burn the person at the screen started; the progress screen follows it."""

    job_id: str
    drive: str
    image: ImageView
    result: ResultView | None = None


@dataclass
class KioskModel:
    connected: bool = False
    drives: dict[str, DriveView] = field(default_factory=dict)
    images: list[ImageView] = field(default_factory=list)
    status: AgentStatus | None = None
    burn: VisitorBurn | None = None
    # Shown while the agent is not enrolled (appliance.kiosk.enrollment); None once it is.
    enrollment_code: str | None = None
    revision: int = 0

    def load(
        self, drives: list[DriveView], images: list[ImageView], status: AgentStatus
    ) -> ResultView | None:
        """Take a fresh snapshot (after a (re)connect). Returns the visitor's result if their
        burn ended while the kiosk was not connected, so the screen can still tell them."""
        self.drives = {d["uid"]: d for d in drives}
        self.images = list(images)
        self.status = status
        self.connected = True
        self.revision += 1
        return self.missed_result()

    def missed_result(self) -> ResultView | None:
        if self.burn is None or self.burn.result is not None:
            return None
        drive = self.drives.get(self.burn.drive)
        if drive is None:
            return None
        last = drive["last_result"]
        if last is not None and last["job_id"] == self.burn.job_id:
            self.burn.result = last
            return last
        return None

    def apply(self, event: dict[str, Any]) -> ResultView | None:
        """Apply one pushed event; returns the visitor's result when this event ends their burn."""
        kind = event.get("event")
        found: ResultView | None = None
        if kind == "drive":
            view: DriveView = event["drive"]
            self.drives[view["uid"]] = view
        elif kind == "progress":
            drive = self.drives.get(event["drive"])
            if drive is not None:
                drive["job"] = event["job"]
        elif kind == "finished":
            result: ResultView = event["result"]
            drive = self.drives.get(event["drive"])
            if drive is not None:
                drive["job"] = None
                drive["last_result"] = result
            if (
                self.burn is not None
                and self.burn.result is None
                and self.burn.job_id == result["job_id"]
            ):
                self.burn.result = result
                found = result
        elif kind == "status":
            self.status = event["status"]
        self.revision += 1
        return found

    def disconnected(self) -> None:
        self.connected = False
        self.revision += 1

    def drives_for(self, image: ImageView) -> list[DriveView]:
        return [d for d in self.drives.values() if fits(d, image)]

    def drives_refused(self, image: ImageView) -> list[tuple[DriveView, str]]:
        """Burners here that the image is not offered on because of what it is, and why."""
        out = []
        for d in self.drives.values():
            why = why_not_offered(d, image)
            if why is not None:
                out.append((d, why))
        return out

    def image(self, sha256: str) -> ImageView | None:
        return next((i for i in self.images if i["sha256"] == sha256), None)

    def busy_drives(self) -> list[DriveView]:
        return [d for d in self.drives.values() if d["job"] is not None]


# --- wording ---------------------------------------------------------------------------------

MEDIA_NAMES = {"CDR": N_("CD"), "DVDR": N_("DVD"), "BDR": N_("Blu-ray"), "BLOCK": N_("USB/SD")}

STATE_NAMES = {
    "idle": N_("ready"),
    "empty": N_("no disc"),
    "trayopen": N_("tray open"),
    "busy": N_("busy"),
    "gone": N_("unplugged"),
}


def state_name(state: str) -> str:
    """A drive state as the visitor reads it, in the kiosk's language."""
    return _(STATE_NAMES[state]) if state in STATE_NAMES else state


def reason_text(result: ResultView) -> str:
    """What happened and what to do, in one sentence (the table in `wire.failures`)."""
    return _(failures.sentence(result["reason"]))


# Decimal units, the same rule as the dashboard and the CLIs (plumbing/units.py says why).
human_size = units.size_text


def human_eta(seconds: float | None) -> str:
    if seconds is None:
        return _("estimating…")
    s = max(0, round(seconds))
    if s >= 3600:
        return _("{time} left").format(time=f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}")
    return _("{time} left").format(time=f"{s // 60}:{s % 60:02d}")


def size_text(image: ImageView) -> str:
    """The unpacked size (what must fit), and the download's size when it is compressed."""
    unpacked = unpacked_size(image)
    if unpacked == image["size"]:
        return human_size(unpacked)
    return _("{size} ({compressed} compressed)").format(
        size=human_size(unpacked), compressed=human_size(image["size"])
    )


def media_text(image: ImageView) -> str:
    return " · ".join(_(MEDIA_NAMES[m]) if m in MEDIA_NAMES else m for m in image["media"])
