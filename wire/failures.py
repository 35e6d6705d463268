"""Failures a person can act on: one plain sentence per failure code of a burn.

Each sentence says what happened and what to do next, in words a visitor at the kiosk or an
operator at the dashboard can act on; the tool's own detail (cdrskin's stderr, the byte where a
verify differed) stays one tap away. The codes are the stable `code` of the appliance's burn
errors and the agent's job reasons. This table is the one place those sentences live: the kiosk
shows them (through its translations) and the session master hands them to the dashboard. A
backend that learns a new way to fail adds its code and sentence here.
"""

from __future__ import annotations

from typing import Final

# The code of a failure nobody named more precisely.
UNKNOWN: Final = "burn-failed"

SENTENCES: Final[dict[str, str]] = {
    "no-media": "There is no blank disc in the burner. Put one in and close the tray.",
    "media-too-small": "The disc is too small for this image. Take a larger one.",
    "write-protected": "The disc or stick is write-protected. Take another one.",
    "target-busy": "Another program is using the stick. Take it out and plug it in again.",
    "drive-pulled": "The burner or stick was unplugged. Plug it back in and start again.",
    "verify-mismatch": "The disc did not read back correctly. Take another blank and try again.",
    "corrupt-image": "The image on the kiosk is damaged. An operator has to load it again.",
    "disk-full": "The kiosk ran out of space. Please call an operator.",
    "tool-failed": "The burner reported an error. Take another blank and try again.",
    "tool-missing": "The kiosk is missing its burning program. Please call an operator.",
    "download-failed": "The image could not be downloaded. Try again in a minute.",
    "image-changed": (
        "The image changed on the kiosk during the burn. Take another blank and try again."
    ),
    "journal-error": "The kiosk could not record the burn. Please call an operator.",
    "system-disk": "That is the kiosk's own system disk. Choose another stick or card.",
    "partition": "That is one partition, not a whole stick or card. Choose the whole device.",
    "compressed-image": (
        "This image is compressed and cannot go on a disc as it is. Call an operator."
    ),
    "unsupported-image": (
        "The kiosk cannot read this image's format. An operator has to load another."
    ),
    "bad-bmap": "The image's block map does not match the image. An operator has to load it again.",
    "cancelled": "The burn was cancelled. The disc is still blank.",
    UNKNOWN: "The burn failed. Take another blank and try again.",
}


def sentence(code: str | None) -> str:
    """The sentence for failure `code`; an unknown or missing code gets the general one."""
    return SENTENCES.get(code or UNKNOWN, SENTENCES[UNKNOWN])
