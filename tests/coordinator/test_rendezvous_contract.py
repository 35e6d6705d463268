"""The REST API keeps the contract its OpenAPI document states, case by case (issue 21)."""

from __future__ import annotations

import re
from typing import Any

from rv_helpers import Client, FakeClock, bearer, call, new_admin

from coordinator.errors import Invalid
from coordinator.rendezvous.validation import validate


async def doc(client: Client) -> dict[str, Any]:
    out: dict[str, Any] = await call(client, "GET", "/openapi.json", expect=200)
    return out


async def test_every_405_says_which_methods_are_allowed(client: Client) -> None:
    spec = await doc(client)
    for path, ops in spec["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        resp = await client.request("TRACE", concrete)
        assert resp.status == 405, path
        allowed = {m.strip() for m in resp.headers["Allow"].split(",")}
        assert {m.upper() for m in ops} <= allowed, (path, allowed)
        assert resp.content_type == "application/problem+json"


async def test_an_integral_number_is_an_integer(client: Client, clock: FakeClock) -> None:
    admin = await new_admin(client, clock)
    body = {"name": "m1", "url": "wss://m1.example.org/relay", "capacity": 159.0}
    master = await call(client, "POST", "/pool", admin, body, expect=201)
    assert master["capacity"] == 159
    assert isinstance(master["capacity"], int)
    refused = await call(client, "POST", "/pool", admin, {**body, "capacity": 1.5}, expect=422)
    assert refused["field"] == "capacity"


async def test_huge_numbers_are_too_large_not_negative(client: Client, clock: FakeClock) -> None:
    admin = await new_admin(client, clock)
    resp = await client.get(
        "/api/v1/shows", params={"offset": "59381812183163142144"}, headers=bearer(admin)
    )
    problem = await resp.json(content_type=None)
    assert resp.status == 400
    assert problem["detail"].startswith("offset is too large")
    body = {"name": "m", "url": "wss://m.example.org", "capacity": 1e300}
    too = await call(client, "POST", "/pool", admin, body, expect=422)
    assert "too large" in too["detail"]


async def test_what_is_enforced_is_declared(client: Client) -> None:
    spec = await doc(client)
    [sha] = [p for p in spec["paths"]["/api/v1/images/{sha256}"]["get"]["parameters"]]
    assert re.fullmatch(sha["schema"]["pattern"], "00") is None
    assert re.fullmatch(sha["schema"]["pattern"], "ab" * 32)
    for path in ("/api/v1/images/{sha256}", "/api/v1/takes/{take_id}/image"):
        body = spec["paths"][path]["put"]["requestBody"]["content"]["application/octet-stream"]
        assert body["schema"]["minLength"] == 1  # an empty upload is refused, and says so
    email = spec["paths"]["/api/v1/join"]["post"]["requestBody"]["content"]["application/json"]
    user = email["schema"]["properties"]["user"]
    # The served pattern reads the same in JSON Schema's regex dialect and in Python's: a C0
    # separator is refused by both (Python's \s matched it, JSON Schema's does not).
    assert "\\s" not in user["pattern"]
    for address, ok in (("a@b", True), ("a\x1e@b", False), ("a b@c", False)):
        try:
            validate(address, user)
        except Invalid:
            assert not ok, address
        else:
            assert ok, address
