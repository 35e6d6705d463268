"""What the kiosk screen says while its agent is not enrolled yet: the code, and where it stands.

A flashed kiosk makes its own enrollment code on first boot (image-build's
`burnstand-enrollment-code`, into the agent's state directory); the agent asks the coordinator
with it and reports `connecting`, `pending` or `rejected` as its link state. The show admin
compares the code and the confirmation phrase in the dashboard's *Pending kiosks* list with the
ones on this screen before accepting, so the kiosk reads the same files and shows them (the
agent writes the phrase once the coordinator answered its first ask). Once the agent holds a
credential (the `credential` file next to the code) the code is spent and nothing is shown.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Final

from appliance.config import DEFAULT_STATE_DIR, SAVED_CREDENTIAL, normalize_enrollment_code
from appliance.kiosk.i18n import _

log = logging.getLogger(__name__)

CODE_FILE: Final = "enrollment-code"
PHRASE_FILE: Final = "enrollment-phrase"  # written by the agent (appliance/enroll.py)
DEFAULT_CODE_PATH: Final = DEFAULT_STATE_DIR / CODE_FILE


def read_enrollment_code(state_dir: Path) -> str | None:
    """The code as the screen shows it (``ABCD-2345``), or None when there is none to show.

    None when the agent is enrolled, when first boot has not made a code yet, and when the file
    cannot be read or holds no valid code (logged: the operator then finds the reason in the
    kiosk's journal instead of a blank where the code should be).
    """
    if (state_dir / SAVED_CREDENTIAL).exists():
        return None
    path = state_dir / CODE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("cannot read the enrollment code", extra={"path": str(path), "error": str(exc)})
        return None
    code = normalize_enrollment_code(text)
    if code is None:
        log.warning("the enrollment code file holds no valid code", extra={"path": str(path)})
        return None
    shown = f"{code[:4]}-{code[4:]}"
    phrase = _read_phrase(state_dir)
    return shown if phrase is None else f"{shown} · confirm: {phrase}"


def _read_phrase(state_dir: Path) -> str | None:
    try:
        text = (state_dir / PHRASE_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    # Three lower-case words joined by dashes; anything else is not shown.
    return text if re.fullmatch(r"[a-z]{3,10}(-[a-z]{3,10}){2}", text) else None


def enrollment_notice(link: str | None, code: str | None) -> str | None:
    """The line for the attract screen, or None when the kiosk is enrolled (or has no code)."""
    if code is None or link == "online":
        return None
    if link == "pending":
        return _(
            "Waiting for acceptance · enrollment code {code}\n"
            "A show admin accepts this kiosk in the dashboard under Pending kiosks."
        ).format(code=code)
    if link == "rejected":
        return _(
            "Enrollment {code} was refused (rejected, or the code is already used).\n"
            "This kiosk burns offline; the operator gives it a new code."
        ).format(code=code)
    return _("Not enrolled yet · enrollment code {code}\nConnecting to the coordinator…").format(
        code=code
    )
