"""Fixtures of the dashboard's browser tests: Debian's Chromium driven by Playwright (sync API).

Sync Playwright runs its own loop on the main thread, so every coordinator under test is a
subprocess (`stand.Process`). Each test gets a fresh browser context and page whose console is
recorded; a test fails if the page logged an error or threw, unless the test says which
messages it expects (`console.expect`). Screenshots for the docs go to docs/images/.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright
from stand import ROOT, Process, Rest, demo, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IMAGES = ROOT / "docs" / "images"
WAIT_MS = 10_000


# Module scope, not session: sync Playwright keeps its event loop running while open, which
# would break every asyncio test collected after tests/e2e.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield b
    b.close()


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


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    p = context.new_page()
    p.set_default_timeout(WAIT_MS)
    p.on("console", console.on_message)
    p.on("pageerror", console.on_page_error)
    yield p
    context.close()
    assert console.unexpected() == [], "the page logged errors"


@dataclass
class Demo:
    """A running `python -m coordinator.demo` and what it seeded."""

    url: str
    data: Path
    state: dict[str, Any]
    rest: Rest
    process: Process

    @property
    def admin(self) -> str:
        return str(self.state["admin_credential"])


@pytest.fixture(scope="module")
def demo_stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    data = tmp_path_factory.mktemp("demo") / "data"
    data.mkdir()
    port = free_port()
    proc = demo(data, port)
    proc.start()
    try:
        state = json.loads((data / "demo.json").read_text(encoding="utf-8"))
        url = f"http://127.0.0.1:{port}"
        yield Demo(url, data, state, Rest(url), proc)
    finally:
        proc.stop()


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


def screenshot(page: Page, name: str) -> Path:
    IMAGES.mkdir(parents=True, exist_ok=True)
    path = IMAGES / name
    # Notices fade by themselves; the docs' pictures show the page without them.
    page.evaluate("document.getElementById('toast').replaceChildren()")
    page.screenshot(path=str(path), full_page=False)
    return path
