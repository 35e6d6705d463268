"""Fixtures of the dashboard's browser tests: Debian's Chromium driven by Playwright (sync API).

Sync Playwright runs its own loop on the main thread, so every coordinator under test is a
subprocess (`stand.Process`). Each test gets a fresh browser context and page whose console is
recorded; a test fails if the page logged an error or threw, unless the test says which
messages it expects (`console.expect`). What the tests import (page helpers, `Console`, `Demo`)
is in `e2e_pages`, not here: a test module importing from `conftest` would get another
package's conftest when several test folders run in one session.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest
from e2e_pages import WAIT_MS, Console, Demo
from playwright.sync_api import Browser, Page, Playwright, sync_playwright
from stand import Rest, demo, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


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
