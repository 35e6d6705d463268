"""Pending kiosks in a real browser: a show admin sees a new kiosk's code and accepts it.

A kiosk asks to enroll through the REST API (as the agent does); the show admin opens "Pending
kiosks", finds the code the kiosk shows, accepts it with the keyboard, and the kiosk's next poll
carries a working appliance credential. Rejecting asks for a confirmation first.
"""

from __future__ import annotations

from typing import Any

import pytest
from e2e_pages import Demo, enter_system, screenshot
from playwright.sync_api import Page, expect


def ask(demo: Demo, code: str, name: str) -> dict[str, Any]:
    body = {"code": code, "name": name, "show": demo.state["show_id"]}
    return dict(demo.rest.call("POST", "/enroll", body=body))


def test_show_admin_accepts_a_pending_kiosk(page: Page, demo_stand: Demo) -> None:
    asked = ask(demo_stand, "KQRS-7788", "Hall B kiosk")
    enter_system(page, demo_stand.url, demo_stand.state["show_admin"], demo_stand.state["show_id"])
    page.get_by_role("link", name="Pending kiosks").click()
    row = page.locator("#pending-kiosks li", has_text="KQRS-7788")
    expect(row).to_contain_text("Hall B kiosk")
    screenshot(page, "dashboard-pending-kiosks.png")

    accept = row.get_by_role("button", name="Accept Hall B kiosk (KQRS-7788)")
    accept.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#toast")).to_contain_text("Accepted kiosk KQRS-7788 as “Hall B kiosk”")
    expect(page.locator("#pending-kiosks li", has_text="KQRS-7788")).to_have_count(0)

    got = demo_stand.rest.call("POST", "/enroll/poll", body={"poll_token": asked["poll_token"]})
    assert got["status"] == "accepted"
    me = demo_stand.rest.call("GET", "/credentials/me", got["credential"])
    assert (me["role"], me["name"]) == ("appliance", "Hall B kiosk")


def test_rejecting_a_kiosk_asks_to_confirm(page: Page, demo_stand: Demo) -> None:
    asked = ask(demo_stand, "MNPQ-2345", "Stranger")
    enter_system(page, demo_stand.url, demo_stand.state["show_admin"], demo_stand.state["show_id"])
    page.get_by_role("link", name="Pending kiosks").click()
    row = page.locator("#pending-kiosks li", has_text="MNPQ-2345")
    reject = row.get_by_role("button", name="Reject Stranger (MNPQ-2345)")
    reject.click()
    expect(reject).to_have_text("Confirm: reject")
    poll = {"poll_token": asked["poll_token"]}
    assert demo_stand.rest.call("POST", "/enroll/poll", body=poll)["status"] == "pending"
    reject.click()
    expect(page.locator("#toast")).to_contain_text("Rejected kiosk MNPQ-2345.")
    expect(page.locator("#pending-kiosks li", has_text="MNPQ-2345")).to_have_count(0)
    assert demo_stand.rest.call("POST", "/enroll/poll", body=poll)["status"] == "rejected"


def test_pending_kiosk_shows_its_phrase_and_a_second_asker_as_a_conflict(
    page: Page, demo_stand: Demo
) -> None:
    """Issue 23 case 3 in the dashboard: the phrase the kiosk shows, and a conflict warning."""
    asked = ask(demo_stand, "WXYZ-3456", "Hall C kiosk")
    with pytest.raises(AssertionError, match=": 409 "):  # Rest.call's way of saying 4xx
        ask(demo_stand, "WXYZ-3456", "Impostor")
    enter_system(page, demo_stand.url, demo_stand.state["show_admin"], demo_stand.state["show_id"])
    page.get_by_role("link", name="Pending kiosks").click()
    row = page.locator("#pending-kiosks li", has_text="WXYZ-3456")
    expect(row).to_contain_text(f"confirm: {asked['phrase']}")
    expect(row).to_contain_text("Hall C kiosk")
    expect(row.locator(".conflict")).to_contain_text("asked 1\u00d7 more by another device")
