"""The dashboard's sign-in and admin views in a real browser against the real demo coordinator.

Each test signs in the way a person would (pasting a credential, or entering the system with
email, secret and show), clicks through the page, and checks what the page shows and what the
REST API then holds.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from e2e_pages import Console, Demo, enter_system, screenshot, sign_in_with_credential
from playwright.sync_api import Page, expect

STEP = "\u203a"  # the separator the scope picker shows between catalog levels


def test_dashboard_files_are_served_with_types_and_cache_headers(demo_stand: Demo) -> None:
    expected = {
        "/": "text/html; charset=utf-8",
        "/static/app.js": "text/javascript; charset=utf-8",
        "/static/styles.css": "text/css; charset=utf-8",
    }
    for path, content_type in expected.items():
        with urllib.request.urlopen(demo_stand.url + path, timeout=5) as resp:
            assert resp.headers["Content-Type"] == content_type
            assert resp.headers["Cache-Control"] == "no-cache"
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            etag = resp.headers["ETag"]
            if path == "/":
                assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
        # A browser revalidating with the ETag gets 304 and no body.
        req = urllib.request.Request(demo_stand.url + path, headers={"If-None-Match": etag})
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(req, timeout=5)
        assert answer.value.code == 304
        answer.value.close()


def test_unknown_dashboard_file_is_404(demo_stand: Demo) -> None:
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(demo_stand.url + "/static/nope.js", timeout=5)
    assert answer.value.code == 404
    answer.value.close()


def test_admin_sees_the_demo_catalog_and_the_master_pool(page: Page, demo_stand: Demo) -> None:
    sign_in_with_credential(page, demo_stand.url, demo_stand.admin)
    expect(page.locator("#who")).to_contain_text("Demo Admin")
    expect(page.locator("#who .role")).to_have_text("admin")
    page.get_by_role("link", name="Shows").click()
    page.get_by_role("link", name="burnstand demo").click()
    catalog = page.locator("#catalog")
    expect(catalog).to_contain_text("1.0")
    expect(catalog).to_contain_text("Demo")
    for take in demo_stand.state["takes"]:
        expect(catalog.locator(".take", has_text=take["name"])).to_be_visible()
    # Adding episodes is the show admin's flow, not the admin's: no form for it here.
    expect(page.locator("#add-episode")).to_have_count(0)
    page.get_by_role("link", name="Masters").click()
    expect(page.locator("#pool")).to_contain_text("local")
    expect(page.locator("#pool")).to_contain_text("embedded")
    page.get_by_role("link", name="People").click()
    expect(page.locator("#people-rows")).to_contain_text("sam@demo.invalid")


def test_show_admin_adds_an_episode(page: Page, demo_stand: Demo) -> None:
    enter_system(page, demo_stand.url, demo_stand.state["show_admin"], demo_stand.state["show_id"])
    expect(page.locator("#who .role")).to_have_text("show admin")
    page.get_by_role("link", name="Catalog").click()
    form = page.locator("#add-episode")
    form.get_by_label("Name").fill("26.04 LTS")
    form.get_by_role("button", name="Add episode").click()
    expect(page.locator("#catalog .episode", has_text="26.04 LTS")).to_be_visible()
    cred = demo_stand.rest.join(demo_stand.state["show_admin"], demo_stand.state["show_id"])
    episodes = demo_stand.rest.call("GET", f"/shows/{demo_stand.state['show_id']}/episodes", cred)
    assert "26.04 LTS" in [e["name"] for e in episodes["items"]]
    screenshot(page, "dashboard-catalog.png")


def test_contributor_creates_suspends_and_resumes_a_session(page: Page, demo_stand: Demo) -> None:
    enter_system(page, demo_stand.url, demo_stand.state["contributor"], demo_stand.state["show_id"])
    expect(page.locator("#who .role")).to_have_text("contributor")
    page.get_by_role("link", name="Sessions").click()
    create = page.locator("#create-session")
    create.get_by_label("Name").fill("LinuxFest booth")
    take = demo_stand.state["takes"][0]["name"]
    create.get_by_label("Scope").select_option(label=f"   1.0 {STEP} Demo {STEP} {take}")
    create.get_by_role("button", name="Create session").click()
    row = page.locator("#sessions tbody tr", has_text="LinuxFest booth")
    expect(row.locator(".badge")).to_have_text("live")
    row.get_by_role("button", name="Suspend").click()
    expect(row.locator(".badge")).to_have_text("suspended")
    row.get_by_role("button", name="Resume").click()
    expect(row.locator(".badge")).to_have_text("live")
    screenshot(page, "dashboard-sessions.png")


def test_a_wrong_credential_is_refused_with_a_readable_message(
    page: Page, demo_stand: Demo, console: Console
) -> None:
    # The browser itself logs the refused requests; nothing else may appear.
    console.expect(r"status of 401")
    sign_in_with_credential(page, demo_stand.url, "not-a-credential")
    alert = page.locator("#paste-form .error")
    expect(alert).to_have_text("unknown credential (never issued, or its holder was removed)")
    expect(page.locator("#who")).to_be_empty()
    wrong = {**demo_stand.state["contributor"], "secret": "wrong secret"}
    enter_system(page, demo_stand.url, wrong, demo_stand.state["show_id"])
    expect(page.locator("#join-form .error")).to_contain_text("secret")


def test_the_credential_is_refreshed_before_it_expires_without_losing_the_view(
    page: Page, demo_stand: Demo
) -> None:
    rest = demo_stand.rest
    short = rest.join(demo_stand.state["contributor"], demo_stand.state["show_id"], duration=8)
    sign_in_with_credential(page, demo_stand.url, short)
    page.get_by_role("link", name="Catalog").click()
    expect(page.locator("#catalog")).to_contain_text("Demo")
    page.wait_for_function(
        "old => !(sessionStorage.getItem('burnstand.credential') || '').includes(old)",
        arg=short,
        timeout=15_000,
    )
    # Same view, still signed in, and the old credential was revoked by the refresh.
    expect(page.locator("#catalog")).to_contain_text("Demo")
    expect(page.locator("#who .role")).to_have_text("contributor")
    assert page.url.endswith("#/shows")
    with pytest.raises(AssertionError, match="401"):
        rest.call("GET", "/credentials/me", short)


def test_sign_in_and_navigate_with_the_keyboard_alone(page: Page, demo_stand: Demo) -> None:
    page.goto(demo_stand.url + "/")
    field = page.locator("#paste-form input[name=credential]")
    expect(field).to_be_visible()
    for _ in range(10):  # skip link, brand, then the first field of the form
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "credential":
            break
    expect(field).to_be_focused()
    # The focused control shows where the keyboard is.
    assert field.evaluate("e => getComputedStyle(e).outlineStyle") != "none"
    page.keyboard.type(demo_stand.admin)
    page.keyboard.press("Enter")
    expect(page.locator("#who .role")).to_have_text("admin")
    masters = page.get_by_role("link", name="Masters")
    masters.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#pool")).to_contain_text("local")


def test_contributor_adds_a_compressed_take_and_sees_its_unpacked_size(
    page: Page, demo_stand: Demo
) -> None:
    enter_system(page, demo_stand.url, demo_stand.state["contributor"], demo_stand.state["show_id"])
    expect(page.locator("#who .role")).to_have_text("contributor")
    page.goto(f"{demo_stand.url}/#/shows/{demo_stand.state['show_id']}")
    add = page.locator("details[id^=add-take-]").first
    add.locator("summary").click()
    add.get_by_label("File name").fill("raspios-lite.img.xz")
    add.get_by_label("Size (bytes)", exact=True).fill("500000000")
    add.get_by_label("SHA-256", exact=True).fill("a" * 64)
    add.get_by_label("MD5").fill("b" * 32)
    add.get_by_label("URL").fill("https://example.org/raspios-lite.img.xz")
    add.get_by_label("Unpacked size (bytes, compressed images)").fill("2500000000")
    add.get_by_label("Unpacked SHA-256 (compressed images)").fill("c" * 64)
    add.get_by_role("button", name="Add take").click()
    take = page.locator("#catalog .take", has_text="raspios-lite.img.xz")
    expect(take).to_contain_text("2.5 GB unpacked (500.0 MB compressed)")
