"""Media sense on the kiosk: a disk image is offered on USB/SD only, a plain ISO on discs only,
a hybrid ISO on both; "fits on" uses the unpacked size; and an image card says why a burner
here is not offered."""

from __future__ import annotations

from kiosk_helpers import screen_text
from textual.app import App

from appliance.agent import Take
from appliance.control import DriveView, ImageView, fits, media_for_size
from appliance.kiosk.model import KioskModel
from appliance.kiosk.screens.pick_image import PickImageScreen

GB = 1_000_000_000
SHA = "ab" * 32


def drive(uid: str, name: str, caps: list[str], capacity: int | None = None) -> DriveView:
    return {
        "uid": uid,
        "name": name,
        "path": f"/dev/{uid}",
        "kind": "block" if caps == ["BLOCK"] else "optical",
        "capabilities": caps,
        "capacity": capacity,
        "state": "idle",
        "job": None,
        "last_result": None,
    }


DVD = drive("sr0", "Left burner", ["CDR", "DVDR"])
USB = drive("sda", "USB slot", ["BLOCK"], 8 * GB)


def image(content: str | None, *, size: int = GB, extracted: int | None = None) -> ImageView:
    take = Take.from_payload(
        {
            "sha256": SHA,
            "md5": "cd" * 16,
            "size": size,
            "name": f"{content}.img",
            "extracted_size": extracted,
            "media": content,
        }
    )
    return take.view()


def test_media_follow_what_the_image_is():
    assert media_for_size(GB, "disk") == ["BLOCK"]
    assert media_for_size(GB, "iso") == ["DVDR", "BDR"]
    assert media_for_size(GB, "hybrid") == ["DVDR", "BDR", "BLOCK"]
    assert media_for_size(GB, None) == ["DVDR", "BDR", "BLOCK"]


def test_fits_on_uses_the_unpacked_size():
    # 600 MB of xz that unpacks to 3 GB: not a CD, and not a 2 GB stick.
    packed = image("hybrid", size=600_000_000, extracted=3 * GB)
    assert "CDR" not in packed["media"]
    assert not fits(drive("sdb", "small stick", ["BLOCK"], 2 * GB), packed)
    assert fits(USB, packed)


class _Cards(App[None]):
    CSS_PATH = "../../../appliance/kiosk/kiosk.tcss"

    def __init__(self, model: KioskModel) -> None:
        super().__init__()
        self.model = model

    def on_mount(self) -> None:
        self.push_screen(PickImageScreen(self.model))


async def test_image_cards_say_why_a_burner_is_not_offered():
    model = KioskModel(
        connected=True,
        drives={"sr0": DVD, "sda": USB},
        images=[image("disk", size=400_000_000, extracted=2 * GB), image("iso")],
    )
    app = _Cards(model)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        text = screen_text(pilot)
    assert "2.0 GB (400.0 MB compressed) · fits on USB/SD" in text
    assert "Not on Left burner: a disk image boots from USB sticks and SD cards" in text
    assert "Not on USB slot: this ISO has no partition table, so it boots from discs only" in text
    assert "Burners: USB slot" in text
    assert "Burners: Left burner" in text
