"""The kiosk's progress line says how much of the image the show's other kiosks gave when sharing
is on, in the visitor's language, and says nothing of it otherwise."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from appliance.control import DriveView, JobView
from appliance.kiosk import i18n
from appliance.kiosk.widgets.drive_progress import progress_line


@pytest.fixture
def english() -> Iterator[None]:
    i18n.set_language("en")
    yield
    i18n.set_language("en")


def drive(job: JobView) -> DriveView:
    return {
        "uid": "0" * 32,
        "name": "Left burner",
        "path": "sim:left",
        "kind": "optical",
        "capabilities": ["DVDR"],
        "capacity": None,
        "state": "burning",
        "job": job,
        "last_result": None,
    }


def job(**extra: int) -> JobView:
    view: JobView = {
        "job_id": "j",
        "image": "a" * 64,
        "image_name": "Ubuntu",
        "phase": "write",
        "done": 10,
        "total": 100,
        "percent": 10.0,
        "speed": 40_000_000.0,
        "eta": 45.0,
    }
    view.update(extra)  # type: ignore[typeddict-item]
    return view


def test_the_line_names_bytes_from_other_kiosks(english: None) -> None:
    line = progress_line(drive(job(from_peers=3_000_000_000, from_origin=1_000_000_000)))
    assert line.endswith("· 3.0 GB from other kiosks, 1.0 GB from the coordinator")
    i18n.set_language("de")
    assert "3.0 GB von anderen Kiosken, 1.0 GB vom Koordinator" in progress_line(
        drive(job(from_peers=3_000_000_000, from_origin=1_000_000_000))
    )


def test_without_sharing_the_line_is_as_before(english: None) -> None:
    assert "kiosks" not in progress_line(drive(job()))
    assert "kiosks" not in progress_line(drive(job(from_peers=0, from_origin=5)))


def test_a_download_from_other_kiosks_is_its_own_phase(english: None) -> None:
    """Before an optical drive writes, the image downloads: the line says so, with its sources."""
    view = job(from_peers=300_000_000, from_origin=100_000_000)
    view.update({"phase": "download", "percent": 40.0, "eta": None})
    line = progress_line(drive(view))
    assert line.startswith("Downloading 40% · ")
    assert line.endswith("· 300.0 MB from other kiosks, 100.0 MB from the coordinator")
    i18n.set_language("es")
    assert progress_line(drive(view)).startswith("Descargando 40 % · ")
