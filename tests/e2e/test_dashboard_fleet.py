"""The fleet overview in a real browser: the demo's admin signs in and, without another click,
sees the demo's kiosk, its burners at work and its session by name, on a laptop and on a phone.

The stand is the README's demo with its simulated kiosk (two simulated burners, plus a
`stdio:` pseudo-drive where cdrskin or xorriso is installed) and the demo burns it queues, so
the page has something moving to show.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from e2e_pages import Demo, screenshot, sign_in_with_credential
from playwright.sync_api import Browser, Page, expect
from stand import Rest, demo, free_port

KIOSK = "demo kiosk"
BURNERS = ("Left burner", "USB slot")
SESSION = "Demo booth"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def kiosk_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    data = tmp_path_factory.mktemp("fleet") / "data"
    data.mkdir()
    port = free_port()
    proc = demo(data, port, kiosk=True)
    proc.start()
    try:
        state = json.loads((data / "demo.json").read_text(encoding="utf-8"))
        url = f"http://127.0.0.1:{port}"
        yield Demo(url, data, state, Rest(url), proc)
    finally:
        proc.stop()


def _sees_the_fleet(page: Page, stand: Demo) -> None:
    sign_in_with_credential(page, stand.url, stand.admin)
    # The landing page: no click between signing in and the fleet.
    fleet = page.locator("#fleet")
    expect(fleet).to_be_visible()
    assert page.url.endswith("#/fleet")
    card = fleet.locator(f".fleet-session[data-session='{stand.state['session_id']}']")
    expect(card.get_by_role("heading", name=SESSION)).to_be_visible()
    expect(card.locator(".badge")).to_have_text("live")
    kiosk = card.locator(".fleet-kiosk", has_text=KIOSK)
    expect(kiosk.locator(".kiosk-link")).to_have_text("online")
    expect(kiosk).to_contain_text("version ")
    expect(kiosk).to_contain_text("cache: ")
    for name in BURNERS:
        expect(card.locator(".fleet-burner", has_text=name)).to_be_visible()
    # The demo queued discs of its first take: some burner shows it by name while it burns.
    first = stand.state["takes"][0]["name"]
    burning = card.locator(".fleet-burner[data-state='burning']", has_text=first)
    expect(burning.first).to_be_visible(timeout=30_000)
    # Nothing wider than the screen: the page never scrolls sideways.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than the window"


def test_admin_lands_on_the_fleet_and_sees_the_demo_kiosk_at_work(
    page: Page, kiosk_demo: Demo
) -> None:
    _sees_the_fleet(page, kiosk_demo)
    screenshot(page, "dashboard-fleet.png")
    # One click from the fleet: the session's live view, titled by its name, its kiosk in it.
    page.locator("#fleet").get_by_role("link", name=SESSION).click()
    expect(page.locator(".live-head h1")).to_contain_text(SESSION)  # the id is small print in it
    expect(page.locator(".kiosk-name", has_text=KIOSK)).to_be_visible()
    # Sessions lists the same session by name for the admin (no id to type).
    page.get_by_role("link", name="Sessions").click()
    expect(page.locator("#sessions")).to_contain_text(SESSION)


def test_fleet_fits_a_phone(browser: Browser, kiosk_demo: Demo) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        _sees_the_fleet(page, kiosk_demo)
        screenshot(page, "dashboard-fleet-phone.png")
        assert errors == []
    finally:
        context.close()
