"""Issue 23 in the dashboard: removing a kiosk or an admin, and signing out, take the credential
back on the coordinator (not only in the tab), in a real browser against the demo coordinator."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

from e2e_pages import Demo, enter_system, sign_in_with_credential
from playwright.sync_api import Page, expect


def _cli(demo: Demo, *args: str) -> str:
    done = subprocess.run(  # our own CLI, an argument list
        [sys.executable, "-m", "coordinator.cli", *args, "--data", str(demo.data)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def _status(demo: Demo, token: str) -> int:
    req = urllib.request.Request(
        demo.url + "/api/v1/credentials/me", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def test_admin_removes_a_kiosk_and_an_admin_from_the_people_page(
    page: Page, demo_stand: Demo
) -> None:
    show = str(demo_stand.state["show_id"])
    spare = _cli(demo_stand, "appliance", "create", "--show", show, "--name", "spare kiosk")
    other = _cli(demo_stand, "admin", "create", "--name", "Temp Admin", "--email", "t@demo.invalid")
    assert _status(demo_stand, spare) == _status(demo_stand, other) == 200
    sign_in_with_credential(page, demo_stand.url, demo_stand.admin)
    page.get_by_role("link", name="People").click()
    kiosks = page.locator("#kiosk-rows")
    expect(kiosks).to_contain_text("spare kiosk")
    remove = kiosks.get_by_role("button", name="Remove spare kiosk")
    remove.click()
    remove.click()  # the second click confirms
    expect(kiosks).not_to_contain_text("spare kiosk")
    assert _status(demo_stand, spare) == 401
    admins = page.locator("#admin-rows")
    remove = admins.get_by_role("button", name="Remove Temp Admin")
    remove.click()
    remove.click()
    expect(admins).not_to_contain_text("Temp Admin")
    assert _status(demo_stand, other) == 401
    assert _status(demo_stand, demo_stand.admin) == 200


def test_sign_out_revokes_the_credential_on_the_coordinator(page: Page, demo_stand: Demo) -> None:
    person = demo_stand.state["contributor"]
    enter_system(page, demo_stand.url, person, int(demo_stand.state["show_id"]))
    expect(page.locator("#who .role")).to_have_text("contributor")
    stored = page.evaluate("() => sessionStorage.getItem('burnstand.credential')")
    token = json.loads(stored)["token"]
    assert _status(demo_stand, token) == 200
    page.locator("#who").get_by_role("button", name="Sign out").click()
    expect(page.locator("#join-form")).to_be_visible()
    assert _status(demo_stand, token) == 401
