"""The `/link` shell and the agent's client shell over real loopback sockets: drops, stale
sockets, refused credentials and formal disconnects, with a recording handler on the server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from link_helpers import Transport

from appliance.link import AgentLink, LinkState


@pytest.fixture
async def received() -> list[Any]:
    return []


async def _agent(t: Transport, received: list[Any], url: str | None = None) -> AgentLink:
    async def on_message(payload: dict[str, Any]) -> None:
        received.append(payload)
        t.signal.pulse()

    link = AgentLink(
        url or t.proxied_url,
        t.credential,
        on_message=on_message,
        on_state=t.signal.pulse,
        backoff_initial=0.005,
        backoff_max=0.02,
        ack_interval=0.02,
    )
    await link.start()
    return link


@pytest.fixture
async def agent(transport: Transport, received: list[Any]) -> AsyncIterator[AgentLink]:
    link = await _agent(transport, received)
    yield link
    await link.close()


async def test_fifty_drops_during_ten_thousand_messages_each_way_lose_and_repeat_nothing(
    transport: Transport, agent: AgentLink, received: list[Any]
) -> None:
    t = transport
    total, drops = 10_000, 50
    per_round = total // drops
    cuts = 0
    for r in range(drops):
        # Cut only once both ends hold the link, so every drop is a resume, never a new link.
        await t.signal.until(
            lambda r=r: len(t.recorder.opens) > r and agent.state is LinkState.ONLINE
        )
        server_link = t.recorder.links[agent.token or ""]
        for i in range(r * per_round, (r + 1) * per_round):
            await agent.send({"n": i})
            server_link.send({"n": i})
        cuts += t.proxy.cut()
    await t.signal.until(lambda: len(t.recorder.payloads) >= total and len(received) >= total)

    assert cuts == drops
    # Each drop was reported as the link waiting for its agent, each return as a resume.
    await t.signal.until(lambda: len(t.recorder.suspends) == drops)
    assert set(t.recorder.suspends) == {agent.token}
    assert [p["n"] for p in t.recorder.payloads] == list(range(total))
    assert [p["n"] for p in received] == list(range(total))
    # Every reconnect resumed the one link: same merged token, nothing handed back as lost.
    assert len({token for token, _ in t.recorder.opens}) == 1
    assert all(resumed for _, resumed in t.recorder.opens[1:])
    assert t.recorder.ends == []


async def test_socket_presenting_a_live_links_token_is_closed_1008_and_the_link_keeps_working(
    transport: Transport, agent: AgentLink, received: list[Any]
) -> None:
    t = transport
    await t.signal.until(lambda: agent.state is LinkState.ONLINE and bool(t.recorder.links))
    token = agent.token
    assert token is not None
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(t.direct_url, headers={"Authorization": f"Bearer {t.credential}"}) as stale,
    ):
        fresh = await stale.receive_str(timeout=5)
        assert len(fresh) == 32
        await stale.send_str(token)
        closing = await stale.receive(timeout=5)
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert closing.data == 1008

    t.recorder.links[token].send({"still": "here"})
    await t.signal.until(lambda: {"still": "here"} in received)
    assert agent.token == token
    assert agent.state is LinkState.ONLINE


async def test_formal_disconnect_ends_the_link_on_the_coordinator(
    transport: Transport, received: list[Any]
) -> None:
    t = transport
    link = await _agent(t, received)
    await t.signal.until(lambda: link.state is LinkState.ONLINE and bool(t.recorder.links))
    token = link.token
    await link.close(formal=True)
    await t.signal.until(lambda: bool(t.recorder.ends))
    assert t.recorder.ends == [(token, True)]
    assert t.hub.links == {}
    assert link.state is LinkState.OFFLINE


def _bearer(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


async def _expire_appliance_credential(t: Transport, column: str) -> None:
    await t.store.write(
        lambda c: c.execute(f"UPDATE credentials SET {column} = 0 WHERE kind = 'appliance'")  # noqa: S608
    )


@pytest.mark.parametrize("case", ["missing", "unknown", "expired", "revoked", "not bearer"])
async def test_bad_credentials_get_401_with_a_problem_body_before_any_upgrade(
    transport: Transport, case: str
) -> None:
    t = transport
    token: str | None = t.credential
    headers = _bearer(token)
    if case == "missing":
        headers = {}
    elif case == "unknown":
        headers = _bearer("not-a-credential-we-issued")
    elif case == "expired":
        await _expire_appliance_credential(t, "expires_at")
    elif case == "revoked":
        await _expire_appliance_credential(t, "revoked_at")
    else:
        headers = {"Authorization": f"Basic {t.credential}"}

    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(t.direct_url, headers=headers)
        assert refused.value.status == 401
        async with http.get(t.direct_url.replace("ws:", "http:"), headers=headers) as resp:
            assert resp.status == 401
            assert resp.content_type == "application/problem+json"
            body = await resp.json(content_type=None)
    assert body["status"] == 401
    assert body["detail"]
    assert t.hub.server.handshaking == 0
    assert t.hub.links == {}


async def test_a_credential_that_is_not_an_appliances_is_forbidden(transport: Transport) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(transport.direct_url, headers=_bearer(transport.admin))
    assert refused.value.status == 403
