"""What the dashboard's browser tests share: the console recorder, the demo stand's record, and
the page steps several tests take (signing in, entering the system, screenshots for the docs).

Kept apart from `conftest.py` so test modules can import it by a name no other test folder uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import ConsoleMessage, Page, expect
from stand import ROOT, Process, Rest

IMAGES = ROOT / "docs" / "images"
WAIT_MS = 10_000


@dataclass
class Console:
    """What the page wrote to its console; errors fail the test unless expected."""

    errors: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def on_message(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.errors.append(msg.text)

    def on_page_error(self, exc: Exception) -> None:
        self.errors.append(f"uncaught: {exc}")

    def expect(self, pattern: str) -> None:
        """Allow console errors matching `pattern` (e.g. the 401 of a refused credential)."""
        self.expected.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.expected)]


@dataclass
class Demo:
    """A running `python -m demo` and what it seeded."""

    url: str
    data: Path
    state: dict[str, Any]
    rest: Rest
    process: Process

    @property
    def admin(self) -> str:
        return str(self.state["admin_credential"])


def sign_in_with_credential(page: Page, url: str, credential: str) -> None:
    page.goto(url + "/")
    form = page.locator("#paste-form")
    form.get_by_role("textbox", name="Credential").fill(credential)
    form.get_by_role("button", name="Sign in").click()


def enter_system(page: Page, url: str, person: dict[str, str], show: int) -> None:
    page.goto(url + "/")
    form = page.locator("#join-form")
    form.get_by_label("Email").fill(person["email"])
    form.get_by_label("Secret").fill(person["secret"])
    form.get_by_label("Show", exact=True).fill(str(show))
    form.get_by_role("button", name="Enter system").click()


def open_live_view(page: Page, url: str, state: dict[str, Any], session_name: str) -> None:
    """Enter as the demo's contributor, join the session named `session_name` and open it live."""
    enter_system(page, url, state["contributor"], state["show_id"])
    page.get_by_role("link", name="Sessions").click()
    row = page.locator("#sessions tbody tr", has_text=session_name)
    # A fresh credential is not a member yet: join, then open the live view.
    row.get_by_role("button", name="Join").click()
    row.get_by_role("link", name="Open").click()
    expect(page.locator("#conn")).to_have_text("Live")


def screenshot(page: Page, name: str) -> Path:
    IMAGES.mkdir(parents=True, exist_ok=True)
    path = IMAGES / name
    # Notices fade by themselves; the docs' pictures show the page without them.
    page.evaluate("document.querySelectorAll('.toasts').forEach((box) => box.replaceChildren())")
    page.screenshot(path=str(path), full_page=False)
    return path
