"""The coordinator's side of kiosks sharing images, over real links to a real coordinator: every
link gets a peer token its show's key accepts and no other show's does, the tracker tells a kiosk
which other kiosks of its show hold chunks (never itself, never another show's), a bad-peer report
lands on the show's swarm view, an unreadable chunk map is refused on a link that stays up, and
the catalog names the chunk manifest of an image the store holds.
"""

from __future__ import annotations

import hashlib
import io
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import test_link_bridge
from rv_helpers import SHA, bearer, call
from test_link_bridge import Live, of_type, start_agent

from appliance.link import AgentLink
from coordinator.keys import STORE
from coordinator.store.catalog import LEVELS, add_child
from coordinator.store.people import create_appliance
from wire import swarm as sw

# The live coordinator of the bridge tests, with a session and a world of two shows.
live = test_link_bridge.live
inbox = test_link_bridge.inbox

COUNT = 12


def have(address: str | None, held: set[int], **extra: Any) -> dict[str, Any]:
    return {
        "type": "have",
        "sha256": SHA,
        "count": COUNT,
        "chunks": sw.encode_have(held, COUNT),
        "fetching": sw.encode_have(set(), COUNT),
        "address": address,
        "origin_bytes": 4 << 20,
        "peer_bytes": 8 << 20,
        **extra,
    }


@pytest.fixture
async def pair(
    live: Live,
) -> AsyncIterator[tuple[AgentLink, list[dict[str, Any]], AgentLink, list[dict[str, Any]]]]:
    inbox_a: list[dict[str, Any]] = []
    inbox_b: list[dict[str, Any]] = []
    a = await start_agent(live, inbox_a)
    b = await start_agent(live, inbox_b)
    await live.signal.until(
        lambda: bool(of_type(inbox_a, "peer_token") and of_type(inbox_b, "peer_token"))
    )
    try:
        yield a, inbox_a, b, inbox_b
    finally:
        await a.close()
        await b.close()


async def test_every_link_gets_a_token_its_show_accepts_and_no_other_show_does(
    live: Live, pair: tuple[AgentLink, list[dict[str, Any]], AgentLink, list[dict[str, Any]]]
) -> None:
    _, inbox_a, _, inbox_b = pair
    [token_a], [token_b] = of_type(inbox_a, "peer_token"), of_type(inbox_b, "peer_token")
    assert token_a["show"] == live.world.show
    assert token_a["key"] == token_b["key"]  # one key per show
    key = bytes.fromhex(token_a["key"])
    grant = sw.check_token(key, token_b["token"], live.world.show, time.time())
    assert grant.show == live.world.show
    assert grant.expires - time.time() > sw.TOKEN_SECONDS - 60
    # Another show's kiosk checks with its own show's key: refused.
    with pytest.raises(sw.TokenRefused) as info:
        sw.check_token(key, token_a["token"], live.world.other_show, time.time())
    assert info.value.reason == "show"


async def test_the_tracker_answers_with_the_other_kiosks_of_the_show_only(
    live: Live, pair: tuple[AgentLink, list[dict[str, Any]], AgentLink, list[dict[str, Any]]]
) -> None:
    a, inbox_a, b, inbox_b = pair
    await a.send(have("192.168.10.21:8765", {0, 1, 2}))
    await a.send({"type": "want", "sha256": SHA})
    await live.signal.until(lambda: bool(of_type(inbox_a, "peers")))
    assert of_type(inbox_a, "peers")[0]["peers"] == []  # never itself
    await b.send(have(None, {3}))  # fetching, not serving
    await b.send({"type": "want", "sha256": SHA})
    await live.signal.until(lambda: bool(of_type(inbox_b, "peers")))
    [answer] = of_type(inbox_b, "peers")
    assert answer["count"] == COUNT
    assert answer["peers"] == [
        {
            "address": "192.168.10.21:8765",
            "chunks": sw.encode_have({0, 1, 2}, COUNT),
            "fetching": sw.encode_have(set(), COUNT),
        }
    ]
    # A kiosk of another show asking for the same image hears of nobody.
    other = await live.client.app[STORE].write(
        lambda c: create_appliance(c, time.time(), "test", live.world.other_show, "far-kiosk")
    )
    inbox_c: list[dict[str, Any]] = []
    outsider = AgentLink(live.url, other["credential"], on_message=_collect(inbox_c, live))
    await outsider.start()
    try:
        await live.signal.until(lambda: bool(of_type(inbox_c, "peer_token")))
        await outsider.send({"type": "want", "sha256": SHA})
        await live.signal.until(lambda: bool(of_type(inbox_c, "peers")))
        assert of_type(inbox_c, "peers")[-1]["peers"] == []
    finally:
        await outsider.close()
    # The swarm view shows both kiosks of the show and where their bytes came from.
    view = await call(live.client, "GET", f"/shows/{live.world.show}/swarm", live.world.contributor)
    [image] = view["images"]
    assert image["sha256"] == SHA
    assert {(k["address"], k["chunks"]) for k in image["kiosks"]} == {
        ("192.168.10.21:8765", 3),
        (None, 1),
    }
    assert {k["origin_bytes"] for k in image["kiosks"]} == {4 << 20}
    # Once a link ends, its kiosk is no longer offered.
    await a.close()
    await b.send({"type": "want", "sha256": SHA})
    await live.signal.until(lambda: len(of_type(inbox_b, "peers")) == 2)
    assert of_type(inbox_b, "peers")[-1]["peers"] == []


def _collect(inbox: list[dict[str, Any]], live: Live) -> Any:
    async def on_message(payload: dict[str, Any]) -> None:
        inbox.append(payload)
        live.signal.pulse()

    return on_message


async def test_a_bad_peer_report_reaches_the_swarm_view_and_bad_maps_are_refused(
    live: Live, pair: tuple[AgentLink, list[dict[str, Any]], AgentLink, list[dict[str, Any]]]
) -> None:
    a, inbox_a, _, _ = pair
    await a.send(
        {
            "type": "bad_peer",
            "sha256": SHA,
            "address": "192.168.10.66:8765",
            "reason": "chunk 3: wrong SHA-256",
        }
    )
    await a.send(have("192.168.10.21:8765", set(), chunks="!!not base64!!"))
    await live.signal.until(lambda: bool(of_type(inbox_a, "error")))
    [error] = of_type(inbox_a, "error")
    assert error["code"] == "BAD_MESSAGE"
    assert "base64" in error["message"]
    view = await call(live.client, "GET", f"/shows/{live.world.show}/swarm", live.world.contributor)
    [report] = view["reports"]
    assert (report["peer"], report["reason"]) == ("192.168.10.66:8765", "chunk 3: wrong SHA-256")
    assert view["images"] == []  # the refused map was not recorded
    # The link is still up: the tracker still answers.
    await a.send({"type": "want", "sha256": SHA})
    await live.signal.until(lambda: bool(of_type(inbox_a, "peers")))
    # Another show's admin does not see this show's swarm.
    resp = await live.client.get(
        f"/api/v1/shows/{live.world.show}/swarm", headers=bearer(live.world.other_show_admin)
    )
    assert resp.status == 403
    missing = await live.client.get("/api/v1/shows/999999/swarm", headers=bearer(live.world.admin))
    assert missing.status == 404


async def test_the_catalog_names_the_manifest_of_a_stored_image(
    live: Live, inbox: list[dict[str, Any]]
) -> None:
    data = random.Random(5).randbytes(9 * 1024 * 1024 + 17)
    facts = {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),  # noqa: S324 - the catalog's name, not security
    }
    store = live.client.app[STORE]
    take = await store.write(
        lambda c: add_child(
            c, 1.0, "test", LEVELS["take"], live.world.shot, {**facts, "name": "big.iso", "url": ""}
        )
    )
    resp = await live.client.put(
        f"/api/v1/takes/{take['id']}/image",
        data=io.BytesIO(data),
        headers=bearer(live.world.contributor),
    )
    assert resp.status == 201
    manifest = await call(
        live.client, "GET", f"/images/{facts['sha256']}/manifest", live.world.appliance
    )
    parsed = sw.Manifest.from_json(manifest)
    parsed.check_take(facts["sha256"], len(data))
    assert parsed.count == 3
    agent = await start_agent(live, inbox)
    try:
        await live.signal.until(lambda: bool(of_type(inbox, "catalog")))
        takes = {t["sha256"]: t for t in of_type(inbox, "catalog")[0]["takes"]}
        assert takes[facts["sha256"]]["manifest"] == parsed.digest
        assert "manifest" not in takes[SHA]  # not in the store: nothing to share yet
    finally:
        await agent.close()


async def test_kiosks_hear_the_new_catalog_when_an_image_enters_the_store(
    live: Live, inbox: list[dict[str, Any]]
) -> None:
    """An image uploaded (or fetched from its take's URL) while kiosks are linked: they get the
    catalog again, now naming the store and the manifest, without a reconnect."""
    data = random.Random(6).randbytes(5 * 1024 * 1024)
    facts = {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),  # noqa: S324 - the catalog's name, not security
    }
    store = live.client.app[STORE]
    body = {**facts, "name": "later.iso", "url": "https://outside.example/later.iso"}
    take = await store.write(
        lambda c: add_child(c, 1.0, "test", LEVELS["take"], live.world.shot, body)
    )
    agent = await start_agent(live, inbox)
    try:
        await live.signal.until(lambda: bool(of_type(inbox, "catalog")))
        first = {t["sha256"]: t for t in of_type(inbox, "catalog")[0]["takes"]}
        assert first[facts["sha256"]]["url"] == "https://outside.example/later.iso"
        assert "manifest" not in first[facts["sha256"]]
        resp = await live.client.put(
            f"/api/v1/takes/{take['id']}/image",
            data=io.BytesIO(data),
            headers=bearer(live.world.contributor),
        )
        assert resp.status == 201
        await live.signal.until(lambda: len(of_type(inbox, "catalog")) == 2)
        again = {t["sha256"]: t for t in of_type(inbox, "catalog")[1]["takes"]}
        assert again[facts["sha256"]]["url"] == f"/api/v1/images/{facts['sha256']}"
        assert again[facts["sha256"]]["manifest"] is not None
    finally:
        await agent.close()
