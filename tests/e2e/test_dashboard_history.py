"""The live session's history in a real browser: the throughput chart, the totals and "discs per
hour" come from the master's database, so a reload and a second operator's browser show what
the first one saw; the queue's ETA follows the burners' measured speed and grows when a burner
goes offline; the statistics export as CSV.

The stand: the demo seeds a show, a contributor creates a session, and the coordinator runs as
`burnstand-coordinator serve` with two fake burn-protocol burners (`stand.FakeBurner`) in it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_pages import WAIT_MS, open_live_view, screenshot, sign_in_with_credential
from playwright.sync_api import Browser, Page, expect
from stand import FakeBurner, Process, Rest, demo, free_port, serve

TOKEN = "e2e-history-token-7d41b9c02fa8e6153b2d"  # strong enough for serve (128 bits)
SESSION = "Sunday booth"
BURN_WAIT_MS = 30_000  # a fake burner takes new work when it next says IDLE (every 10 s)


@dataclass
class HistoryStand:
    url: str
    state: dict[str, Any]
    session: str
    burners: list[FakeBurner]
    process: Process


def _uid(n: int) -> str:
    return hashlib.md5(f"b8:27:eb:00:01:0{n}/dev/sr0".encode(), usedforsecurity=False).hexdigest()


@pytest.fixture(scope="module")
def stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HistoryStand]:
    data = tmp_path_factory.mktemp("history") / "data"
    data.mkdir()
    port = free_port()
    seeding = demo(data, port)
    seeding.start()
    try:
        state = json.loads((data / "demo.json").read_text(encoding="utf-8"))
        rest = Rest(f"http://127.0.0.1:{port}")
        cleo = rest.join(state["contributor"], state["show_id"])
        session = rest.call("POST", "/sessions", cleo, {"name": SESSION, "episode_id": 1})
        md5 = rest.call("GET", "/shots/1/takes", cleo)["items"][0]["md5"]
    finally:
        seeding.stop()
    burn_port = free_port()
    process = serve(
        data, port, "--burn-port", str(burn_port), "--burn-token", TOKEN,
        "--burn-session", session["id"],
    )  # fmt: skip
    process.start()
    burners = [FakeBurner(burn_port, TOKEN, _uid(n), (md5,)) for n in (1, 2)]
    for b in burners:
        b.start()
    try:
        yield HistoryStand(f"http://127.0.0.1:{port}", state, session["id"], burners, process)
    finally:
        for b in burners:
            b.stop()
        process.stop()
        for b in burners:
            b.join(timeout=5)


def _queue(page: Page, stand: HistoryStand, copies: int) -> None:
    take = stand.state["takes"][0]["name"]
    form = page.locator("#queue-form")
    form.get_by_label("Image (take)").select_option(label=f"{take} (3.1 MB)")
    form.get_by_label("Copies").fill(str(copies))
    form.get_by_role("button", name="Queue").click()


def _figures(page: Page) -> tuple[str, str, str, str]:
    """What a person reads off the statistics: chart caption, burned, failed, discs per hour."""
    return (
        page.locator("#chart-cap").inner_text(),
        page.locator("#total-burned").inner_text(),
        page.locator("#total-failed").inner_text(),
        page.locator("#discs-per-hour").inner_text(),
    )


def _eta_minutes(text: str) -> float:
    match = re.search(r"done in about ([\d.]+) (s|min|h)", text)
    assert match, text
    value = float(match.group(1))
    return {"s": value / 60, "min": value, "h": value * 60}[match.group(2)]


def test_chart_and_totals_survive_a_reload_and_match_a_second_browser(
    page: Page, browser: Browser, stand: HistoryStand
) -> None:
    open_live_view(page, stand.url, stand.state, SESSION)
    # The session's name heads the page and names the browser tab; the id is small print.
    expect(page).to_have_title(f"{SESSION} · burnstand dashboard")
    expect(page.locator(".live-head h1")).to_contain_text(SESSION)
    expect(page.locator("#session-id")).to_have_text(stand.session)
    page.get_by_role("link", name="Command").click()
    _queue(page, stand, 2)
    expect(page.locator("#total-burned")).to_have_text("2", timeout=BURN_WAIT_MS)
    caption = "Throughput: 2 discs burned in the last 20 minutes (per minute; failures in red)."
    expect(page.locator("#chart-cap")).to_have_text(caption)
    expect(page.locator("#discs-per-hour")).to_have_text("2")
    expect(page.locator("#throughput rect.ok")).not_to_have_count(0)
    first = _figures(page)
    bars = page.locator("#throughput svg").inner_html()

    page.reload()
    expect(page.locator("#conn")).to_have_text("Live")
    expect(page.locator("#chart-cap")).to_have_text(caption)
    assert _figures(page) == first
    assert page.locator("#throughput svg").inner_html() == bars

    # The admin, on the wall screen's browser, opens the session by its link: same name, same
    # numbers (an admin watches without joining).
    other = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
    other.set_default_timeout(WAIT_MS)
    try:
        sign_in_with_credential(other, stand.url, stand.state["admin_credential"])
        expect(other.locator("#who")).to_contain_text("admin")
        other.goto(f"{stand.url}/#/live/{stand.session}/display")
        expect(other.locator("#conn")).to_have_text("Live")
        expect(other).to_have_title(f"{SESSION} · burnstand dashboard")
        expect(other.locator("#chart-cap")).to_have_text(caption)
        assert _figures(other) == first
        assert other.locator("#throughput svg").inner_html() == bars
    finally:
        other.context.close()

    # The statistics as a CSV file: one line per minute and burner.
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    path = download.value.path()
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
    assert {r["id"] for r in rows} == {b.uid for b in stand.burners}
    assert sum(int(r["burned"]) for r in rows) == 2
    assert {r["kind"] for r in rows} == {"burner"}


def test_queue_eta_appears_and_grows_when_a_burner_goes_offline(
    page: Page, stand: HistoryStand
) -> None:
    open_live_view(page, stand.url, stand.state, SESSION)
    expect(page.locator("#total-burned")).to_have_text("2")  # both burners have a measured speed
    page.get_by_role("link", name="Command").click()
    _queue(page, stand, 500)
    eta = page.locator("#queue-eta")
    expect(eta).to_contain_text("done in about")
    both = eta.inner_text()
    page.locator("#throughput").scroll_into_view_if_needed()
    screenshot(page, "dashboard-history.png")

    stand.burners[1].stop()
    expect(page.locator(f'.burner[data-uid="{stand.burners[1].uid}"] .link')).not_to_have_text(
        "online"
    )
    expect(eta).not_to_have_text(both)
    # One burner left, at about the speed of each: the same discs take about twice as long.
    assert _eta_minutes(eta.inner_text()) >= 1.5 * _eta_minutes(both), (both, eta.inner_text())
    page.get_by_role("button", name="Clear queue").click()
    expect(page.locator("#queue li")).to_have_count(0)


def test_a_failed_disc_reads_as_a_sentence_with_the_detail_one_tap_away(
    page: Page, stand: HistoryStand
) -> None:
    open_live_view(page, stand.url, stand.state, SESSION)
    for burner in stand.burners:
        burner.failing.set()  # the disc fails again when it is retried: the card keeps saying so
    try:
        page.get_by_role("link", name="Command").click()
        _queue(page, stand, 1)
        sentence = "✗ The disc did not read back correctly. Take another blank and try again."
        shown = page.locator(".burner .sentence").first
        expect(shown).to_have_text(sentence, timeout=BURN_WAIT_MS)
        page.get_by_role("button", name="Clear queue").click()
        card = page.locator(".burner", has=page.locator(".sentence")).first
        expect(card.locator(".tool code")).to_be_hidden()
        card.locator(".tool summary").click()
        expect(card.locator(".tool code")).to_have_text("verify-mismatch")
        expect(page.locator("#total-failed")).not_to_have_text("0")
        expect(page.locator("#throughput rect.bad")).not_to_have_count(0)  # failures, in red
        page.get_by_role("link", name="Display").click()
        card.scroll_into_view_if_needed()
        screenshot(page, "dashboard-failure.png")
    finally:
        for burner in stand.burners:
            burner.failing.clear()
