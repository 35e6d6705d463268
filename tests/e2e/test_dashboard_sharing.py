"""Image sharing on the fleet overview, in a real browser: a kiosk of the demo's show reports over
its real link which chunks of an image it holds and where its bytes came from, and a peer it
banned; the operator sees both on the session's card without reloading, and in the session's
live view beside that kiosk's burners."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_pages import Demo, sign_in_with_credential
from playwright.sync_api import Page, expect
from stand import FakeKiosk, KioskFleet, Rest, demo, enroll_kiosk, free_port

from wire import swarm as sw

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
COUNT = 16
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def sharing_stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Demo, Any, Any]]:
    data = tmp_path_factory.mktemp("sharing") / "data"
    data.mkdir()
    port = free_port()
    proc = demo(data, port)
    proc.start()
    try:
        state = json.loads((data / "demo.json").read_text(encoding="utf-8"))
        url = f"http://127.0.0.1:{port}"
        rest = Rest(url)
        sam = rest.join(state["show_admin"], state["show_id"])
        credential = enroll_kiosk(rest, sam, state["show_id"], "SHAR-2345", "Foyer kiosk")
        kiosk = FakeKiosk(credential, "0" * 31 + "7", (), "9.2")
        fleet = KioskFleet(port, state["session_id"], [kiosk])
        fleet.begin()
        try:
            yield Demo(url, data, state, rest, proc), fleet, kiosk
        finally:
            fleet.stop()
    finally:
        proc.stop()


async def report(kiosk: Any) -> None:
    """The kiosk tells the tracker (over its real link) what it holds, and a peer it banned."""
    await kiosk.link.send(
        {
            "type": "have",
            "sha256": SHA,
            "count": COUNT,
            "chunks": sw.encode_have(range(12), COUNT),
            "fetching": sw.encode_have({12, 13}, COUNT),
            "address": "192.168.10.21:8765",
            "origin_bytes": 16 * MiB,
            "peer_bytes": 32 * MiB,
        }
    )
    await kiosk.link.send(
        {
            "type": "bad_peer",
            "sha256": SHA,
            "address": "192.168.10.66:8765",
            "reason": "chunk 3: wrong SHA-256",
        }
    )


def test_the_fleet_shows_where_a_kiosks_bytes_came_from(
    page: Page, sharing_stand: tuple[Demo, Any, Any]
) -> None:
    stand, fleet, kiosk = sharing_stand
    sign_in_with_credential(page, stand.url, stand.admin)
    card = page.locator(f".fleet-session[data-session='{stand.state['session_id']}']")
    expect(card).to_be_visible()
    expect(card.locator(".fleet-share")).to_have_count(0)  # nobody shares yet

    fleet._call(lambda: report(kiosk))
    share = card.locator(".fleet-share", has_text="Foyer kiosk")
    expect(share.locator(".share-progress")).to_contain_text("12 of 16 chunks", timeout=15_000)
    expect(share.locator(".share-sources")).to_contain_text("from kiosks")
    expect(share.locator(".share-sources")).to_contain_text("from the coordinator")
    expect(card.locator(".fleet-share-report")).to_contain_text(
        "Foyer kiosk banned the peer at 192.168.10.66:8765: chunk 3: wrong SHA-256"
    )


def test_the_live_view_shows_each_kiosks_sharing_beside_its_burners(
    page: Page, sharing_stand: tuple[Demo, Any, Any]
) -> None:
    stand, fleet, kiosk = sharing_stand
    fleet._call(lambda: report(kiosk))
    sign_in_with_credential(page, stand.url, stand.admin)
    session = stand.state["session_id"]
    page.locator(f".fleet-session[data-session='{session}'] h2 a").click()
    expect(page.locator("#conn")).to_have_text("Live")
    group = page.locator(".kiosk", has_text="Foyer kiosk")
    share = group.locator(".kiosk-sharing .kiosk-share")
    expect(share).to_contain_text("12 of 16 chunks", timeout=15_000)
    expect(share.locator(".share-sources")).to_have_text(
        "33.6 MB from kiosks, 16.8 MB from the coordinator"
    )
