"""The dashboard's live display and command view in a real browser, with burners burning.

The stand: the demo seeds a show, a contributor creates a session through REST, then the
coordinator runs as `burnstand-coordinator serve` with its burn-protocol listener admitting two
fake burners (`stand.FakeBurner`) into that session, and two kiosks (`stand.KioskFleet`,
enrolled and accepted like real ones) link into it with one drive each. The page is driven as an
operator would: join the session, watch both burners appear, queue a take and see it burned and
verified, clear the queue, open a tray and rename a burner; then the coordinator restarts under
the open page. The kiosks show as groups with their burners, version, link state and disc
cache; a kiosk whose connection is cut shows "reconnecting" and then "online" again, one whose
agent stops shows "offline since".
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_pages import Console, open_live_view, screenshot
from playwright.sync_api import Page, expect
from stand import (
    FakeBurner,
    FakeKiosk,
    KioskFleet,
    Process,
    Rest,
    demo,
    enroll_kiosk,
    free_port,
    serve,
)

TOKEN = "e2e-fleet-token-4f9c2a7be1d03865a0c4"  # strong enough for serve (128 bits)
RESTART_WAIT_MS = 30_000


@dataclass
class LiveStand:
    url: str
    data: Path
    port: int
    state: dict[str, Any]
    session: str
    burners: list[FakeBurner]
    process: Process
    serve_args: tuple[str, ...]
    kiosks: list[FakeKiosk]
    fleet: KioskFleet

    def restart(self) -> None:
        self.process.stop()
        self.process = serve(self.data, self.port, *self.serve_args)
        self.process.start()


def _uid(n: int) -> str:
    return hashlib.md5(f"b8:27:eb:00:00:0{n}/dev/sr0".encode(), usedforsecurity=False).hexdigest()


@pytest.fixture(scope="module")
def live_stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStand]:
    data = tmp_path_factory.mktemp("live") / "data"
    data.mkdir()
    port = free_port()
    seeding = demo(data, port)
    seeding.start()
    try:
        state = json.loads((data / "demo.json").read_text(encoding="utf-8"))
        rest = Rest(f"http://127.0.0.1:{port}")
        cleo = rest.join(state["contributor"], state["show_id"])
        session = rest.call("POST", "/sessions", cleo, {"name": "Saturday booth", "episode_id": 1})
        md5s = tuple(
            rest.call("GET", f"/shots/{shot}/takes", cleo)["items"][0]["md5"] for shot in (1, 2, 3)
        )
        sam = rest.join(state["show_admin"], state["show_id"])
        kiosks = [
            # Their cache holds only the third take, which the burning tests never queue.
            FakeKiosk(
                enroll_kiosk(rest, sam, state["show_id"], code, name), _uid(n), md5s[2:], "9.1"
            )
            for n, code, name in (
                (3, "HALL-2345", "Hall A kiosk"),
                (4, "HALL-3456", "Hall B kiosk"),
            )
        ]
    finally:
        seeding.stop()
    burn_port = free_port()
    args = ("--burn-port", str(burn_port), "--burn-token", TOKEN, "--burn-session", session["id"])
    process = serve(data, port, *args)
    process.start()
    burners = [FakeBurner(burn_port, TOKEN, _uid(n), md5s) for n in (1, 2)]
    fleet = KioskFleet(port, session["id"], kiosks)
    stand = LiveStand(
        f"http://127.0.0.1:{port}",
        data,
        port,
        state,
        session["id"],
        burners,
        process,
        args,
        kiosks,
        fleet,
    )
    for b in burners:
        b.start()
    fleet.begin()
    try:
        yield stand
    finally:
        fleet.stop()
        for b in burners:
            b.stop()
        stand.process.stop()
        for b in burners:
            b.join(timeout=5)


def _open_live_view(page: Page, stand: LiveStand) -> None:
    open_live_view(page, stand.url, stand.state, "Saturday booth")


def test_operator_watches_and_commands_two_burners(
    page: Page, live_stand: LiveStand, console: Console
) -> None:
    _open_live_view(page, live_stand)
    # The two burn-protocol burners belong to no kiosk: they are the "Other burners".
    cards = page.locator('#wall .kiosk[data-kiosk="other"] .burner')
    expect(cards).to_have_count(2)
    first, second = (page.locator(f'.burner[data-uid="{b.uid}"]') for b in live_stand.burners)
    expect(first.locator(".link")).to_have_text("online")
    expect(second.locator(".link")).to_have_text("online")

    # Queue the first take twice from the command view and watch both copies get verified.
    page.get_by_role("link", name="Command").click()
    take = live_stand.state["takes"][0]["name"]
    queue_form = page.locator("#queue-form")
    queue_form.get_by_label("Image (take)").select_option(label=f"{take} (3.1 MB)")
    queue_form.get_by_label("Copies").fill("2")
    queue_form.get_by_role("button", name="Queue").click()
    expect(page.locator("#total-burned")).to_have_text("2", timeout=20_000)
    for card in (first, second):
        expect(card.locator(".bar")).to_have_attribute("aria-valuenow", "100")
        expect(card.locator(".state")).to_have_text("Verified")
        expect(card.locator(".facts dd.ok")).to_contain_text(f"✓ Verified — {take}")
    assert [b.burned for b in live_stand.burners] == [[b.images[0]] for b in live_stand.burners]

    # A long queue shows in the side panel and "Clear queue" empties it.
    queue_form.get_by_label("Copies").fill("500")
    queue_form.get_by_role("button", name="Queue").click()
    expect(page.locator("#queue li").first).to_contain_text(take)
    screenshot(page, "dashboard-command.png")
    page.get_by_role("link", name="Display").click()
    # A burner takes new work once it reports idle again (every IDLE_EVERY seconds, seed 004).
    expect(page.locator(".burner[data-state=burning]").first).to_be_visible(timeout=15_000)
    screenshot(page, "dashboard-display.png")
    page.get_by_role("link", name="Command").click()

    # "Burn next": a take queued after the long run moves to the front of the queue.
    other = live_stand.state["takes"][1]["name"]
    label = queue_form.locator("option", has_text=other).text_content()
    assert label is not None
    queue_form.get_by_label("Image (take)").select_option(label=label)
    queue_form.get_by_label("Copies").fill("1")
    queue_form.get_by_role("button", name="Queue").click()
    expect(page.locator("#queue li").last).to_contain_text(other)
    page.get_by_role("button", name=f"Burn {other} next").click()
    expect(page.locator("#queue li").first).to_contain_text(other)

    # Cancelling a burn on a TCP burner is refused with the reason (seed 004 has no cancel verb).
    burning = page.locator(".burner[data-state=burning]").first
    burning.get_by_role("button", name="Cancel the burn on").click(timeout=15_000)
    expect(page.locator(".toast.error").last).to_contain_text("no verb to stop a burn")

    # "Common images only" on the first burner: the box stays ticked and survives a restart.
    first.get_by_role("checkbox", name="common images only").check()
    expect(page.locator(".toast").last).to_contain_text("common images only")
    expect(first.get_by_role("checkbox", name="common images only")).to_be_checked()

    page.get_by_role("button", name="Clear queue").click()
    expect(page.locator("#queue li")).to_have_count(0)

    # "Which one is this?": open the first burner's tray.
    first.get_by_role("button", name="Open the tray of").click()
    assert live_stand.burners[0].tray_opened.wait(5)
    expect(first.locator(".state")).to_have_text("Tray open")

    # Rename the second burner; every view of it follows.
    second.get_by_role("textbox").fill("Booth 1 left")
    second.get_by_role("button", name="Rename").click()
    expect(second.locator(".name")).to_have_text("Booth 1 left")
    expect(page.locator("#stats tbody")).to_contain_text("Booth 1 left")

    # Wall mode for the big screen: commands hidden, burners still there.
    page.get_by_role("button", name="Wall mode").click()
    expect(page.locator("#queue-form")).to_be_hidden()
    expect(cards).to_have_count(2)
    screenshot(page, "dashboard-wall.png")
    page.get_by_role("button", name="Wall mode").click()

    # The coordinator restarts under the open page: the view reconnects by itself. While it is
    # down the browser logs the refused connection attempts; nothing else may appear.
    console.expect(r"WebSocket connection to .* failed")
    console.expect(r"ERR_CONNECTION_REFUSED")
    # Burns started before the queue was cleared run to their end (a TCP burner cannot be
    # stopped); the totals to survive the restart are those once every burner is idle again.
    expect(page.locator(".burner[data-state=burning]")).to_have_count(0, timeout=15_000)
    burned = str(sum(len(b.burned) for b in live_stand.burners))
    expect(page.locator("#total-burned")).to_have_text(burned)
    live_stand.restart()
    expect(page.locator("#conn")).to_have_text("Live", timeout=RESTART_WAIT_MS)
    expect(second.locator(".name")).to_have_text("Booth 1 left", timeout=RESTART_WAIT_MS)
    expect(first.locator(".link")).to_have_text("online", timeout=RESTART_WAIT_MS)
    expect(page.locator("#total-burned")).to_have_text(burned)
    expect(first.get_by_role("checkbox", name="common images only")).to_be_checked()

    # On a phone the same view fits the screen's width, burners stacked.
    page.set_viewport_size({"width": 390, "height": 844})
    expect(cards).to_have_count(2)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "dashboard-phone.png")


def test_kiosks_group_their_burners_and_show_link_state_and_cache(
    page: Page, live_stand: LiveStand
) -> None:
    _open_live_view(page, live_stand)
    first, second = live_stand.kiosks
    hall_a = page.locator("#wall .kiosk", has_text="Hall A kiosk")
    hall_b = page.locator("#wall .kiosk", has_text="Hall B kiosk")
    other = page.locator('#wall .kiosk[data-kiosk="other"]')
    # Each kiosk is one group holding its own drive; the TCP burners are in "Other burners",
    # which comes last.
    for group, kiosk in ((hall_a, first), (hall_b, second)):
        expect(group.locator(".burner")).to_have_count(1)
        expect(group.locator(f'.burner[data-uid="{kiosk.uid}"]')).to_be_visible()
        expect(group.locator(".kiosk-version")).to_have_text("version 9.1")
        expect(group.locator(".kiosk-link")).to_have_text("online")
    expect(other.get_by_role("heading", name="Other burners")).to_be_visible()
    expect(other.locator(".burner")).to_have_count(2)
    expect(page.locator("#wall .kiosk").last).to_have_attribute("data-kiosk", "other")

    # The disc cache of each kiosk: the take it holds, by its catalog name and size.
    third = live_stand.state["takes"][2]["name"]
    cache = hall_a.get_by_role("list", name="Disc cache of Hall A kiosk")
    expect(cache.locator("li")).to_have_count(1)
    expect(cache.locator("li")).to_contain_text(third)
    expect(hall_a.locator(".cache-head")).to_have_text(
        "Disc cache: 1 image — 3.1 MB of 1.1 GB used"
    )

    # Hall A's connection is cut (agent and coordinator keep running): reconnecting, then
    # online again once the link resumes.
    live_stand.fleet.cut(first)
    expect(hall_a.locator(".kiosk-link")).to_have_text("reconnecting")
    expect(hall_a.locator(f'.burner[data-uid="{first.uid}"] .link')).to_have_text("reconnecting")
    expect(hall_b.locator(".kiosk-link")).to_have_text("online")
    screenshot(page, "dashboard-kiosks.png")
    live_stand.fleet.restore(first)
    expect(hall_a.locator(".kiosk-link")).to_have_text("online")

    # Hall B's agent stops: its link ends, the kiosk is offline since then, its drive stays
    # in its group, offline.
    live_stand.fleet.stop_agent(second)
    expect(hall_b.locator(".kiosk-link")).to_have_text(re.compile(r"^offline since \d"))
    expect(hall_b.locator(".burner")).to_have_attribute("data-state", "offline")
    expect(hall_a.locator(".kiosk-link")).to_have_text("online")


def _overlap(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    assert a is not None
    assert b is not None
    ax, ay, aw, ah = (float(a[k]) for k in ("x", "y", "width", "height"))
    bx, by, bw, bh = (float(b[k]) for k in ("x", "y", "width", "height"))
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


# One notice raised through the dashboard's own module, measured in the same task that raised it
# (so nothing depends on how long a notice stays up): its box, the statistics' box, the viewport.
_NOTICE_AND_STATS = """async () => {
  const app = document.querySelector('script[type=module]').src;
  const ui = await import(new URL('ui.js', app).href);
  const text = `Queued test disc ${Math.random()}.`;
  ui.toast(text);
  const raised = [...document.querySelectorAll('.toast')].filter((e) => e.textContent === text);
  const notice = raised[0].getBoundingClientRect();
  const stats = document.querySelector('section[aria-labelledby=stats-h]').getBoundingClientRect();
  const box = (r) => ({x: r.x, y: r.y, width: r.width, height: r.height});
  return [box(notice), box(stats)];
}"""

# A notice in the page's corner (as "Joined …" is, raised on the sessions page) when a view
# makes its own place for notices: it moves there. Counted in the same task, so no time passes.
_NOTICE_MOVES_IN = """async () => {
  const app = document.querySelector('script[type=module]').src;
  const ui = await import(new URL('ui.js', app).href);
  const corner = document.getElementById('toast');
  corner.append(ui.h('div', {class: 'toast info'}, 'Joined a test session.'));
  const host = ui.toastHost();
  return [corner.querySelectorAll('.toast').length, host.querySelectorAll('.toast').length];
}"""

# Whether the statistics table fits its card: inside the card's padding, and no cell's text
# wider than its cell.
_STATS_FIT = r"""() => {
  const card = document.querySelector('section[aria-labelledby=stats-h]');
  const table = document.getElementById('stats');
  const c = card.getBoundingClientRect(), t = table.getBoundingClientRect();
  const pad = parseFloat(getComputedStyle(card).paddingRight);
  const cells = [...table.querySelectorAll('th, td')].filter((e) => e.offsetParent !== null);
  const wide = cells.filter((e) => e.scrollWidth > e.clientWidth + 1).map((e) => e.textContent);
  // A heading split inside a word takes more lines than it has words.
  const lines = (e) => {
    const r = document.createRange();
    r.selectNodeContents(e);
    return r.getClientRects().length;
  };
  const broken = [...table.querySelectorAll('thead th')]
    .filter((e) => lines(e) > e.textContent.trim().split(/\s+/).length)
    .map((e) => e.textContent);
  return {inside: t.left >= c.left - 0.5 && t.right <= c.right - pad + 0.5, wide, broken};
}"""


@pytest.mark.parametrize("size", [(1280, 860), (390, 844)], ids=["desktop", "phone"])
def test_notices_leave_the_statistics_alone_and_wall_mode_fits_them(
    page: Page, live_stand: LiveStand, size: tuple[int, int]
) -> None:
    page.set_viewport_size({"width": size[0], "height": size[1]})
    _open_live_view(page, live_stand)
    stats = page.locator("section[aria-labelledby=stats-h]")
    expect(page.locator("#stats tbody tr")).not_to_have_count(0)

    # The operator queues a disc: the "Queued" notice shows on screen, clear of the statistics.
    page.get_by_role("link", name="Command").click()
    take = live_stand.state["takes"][2]["name"]
    queue_form = page.locator("#queue-form")
    label = queue_form.locator("option", has_text=take).text_content()
    assert label is not None
    queue_form.get_by_label("Image (take)").select_option(label=label)
    queue_form.get_by_label("Copies").fill("1")
    queue_form.get_by_role("button", name="Queue").click()
    notice = page.locator(".toast", has_text=f"Queued 1 \u00d7 {take}")
    expect(notice).to_be_in_viewport()
    assert not _overlap(notice.bounding_box(), stats.bounding_box())
    page.get_by_role("button", name="Clear queue").click()
    expect(page.locator("#queue li")).to_have_count(0)

    # Looking at the statistics when a notice comes: it still does not cover them.
    stats.scroll_into_view_if_needed()
    raised, card = page.evaluate(_NOTICE_AND_STATS)
    assert not _overlap(raised, card)

    # What was in the corner before the live view opened moves in with it, off the statistics.
    left, moved = page.evaluate(_NOTICE_MOVES_IN)
    assert (left, moved) == (0, 1)

    # The statistics stay inside their card, headings whole, and so in wall mode's big type.
    assert page.evaluate(_STATS_FIT) == {"inside": True, "wide": [], "broken": []}
    page.get_by_role("button", name="Wall mode").click()
    expect(page.locator("body.wall")).to_have_count(1)
    fit = page.evaluate(_STATS_FIT)
    assert fit == {"inside": True, "wide": [], "broken": []}
    page.get_by_role("button", name="Wall mode").click()
    expect(page.locator("body.wall")).to_have_count(0)
