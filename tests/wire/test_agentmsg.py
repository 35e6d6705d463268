"""Agent messages on the appliance link: every type round-trips through JSON, each malformed
payload gives its typed error naming the field at fault (and leaves the payload untouched), and
each side refuses the other side's message types."""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import agentmsg as am
from wire import burnproto as bp
from wire.agentmsg import (
    AgentMessageError,
    ApplianceInfo,
    BadField,
    Burn,
    Catalog,
    Drive,
    DriveGone,
    Error,
    ErrorCode,
    Hello,
    MissingField,
    Name,
    NotAnObject,
    Open,
    Result,
    Status,
    Take,
    UnknownType,
    Welcome,
    encode,
    parse_from_agent,
    parse_from_coordinator,
)
from wire.burnproto import Capability, StatusKind, StatusValue
from wire.imageformat import Media

Parser = Callable[[object], am.AgentMessage]

UID = "3f2b9c1d0e4a5b6c7d8e9f0a1b2c3d4e"
UID2 = "00000000000000000000000000000001"
MD5 = "0123456789abcdef0123456789abcdef"
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
URL = "https://images.example.org/ubuntu-26.04-desktop-amd64.iso"

DRIVE: dict[str, Any] = {
    "uid": UID,
    "name": "left tray",
    "capabilities": ["BURNCDR", "BURNDVDR"],
    "images": [MD5],
    "status": "IDLE",
}
TAKE: dict[str, Any] = {
    "md5": MD5,
    "sha256": SHA,
    "size": 4683595776,
    "name": "ubuntu.iso",
    "notes": "DVD, label A",
    "url": URL,
}
VALID_FROM_AGENT: dict[str, dict[str, Any]] = {
    "hello": {
        "type": "hello",
        "appliance": {"name": "kiosk-1", "version": "1.0"},
        "drives": [DRIVE],
    },
    "status": {"type": "status", "uid": UID, "status": "42%"},
    "result": {
        "type": "result",
        "job": "j-2026-0042",
        "uid": UID,
        "md5": MD5,
        "ok": True,
        "reason": None,
        "bytes": 4683595776,
        "seconds": 612.4,
    },
    "drive_gone": {"type": "drive_gone", "uid": UID},
    "extracted": {
        "type": "extracted",
        "sha256": SHA,
        "extracted_size": 2759852032,
        "extracted_sha256": SHA,
    },
    "have": {
        "type": "have",
        "sha256": SHA,
        "count": 12,
        "chunks": "8AA=",
        "fetching": "DAA=",
        "address": "192.168.10.21:8765",
        "origin_bytes": 4194304,
        "peer_bytes": 12582912,
    },
    "want": {"type": "want", "sha256": SHA},
    "bad_peer": {
        "type": "bad_peer",
        "sha256": SHA,
        "address": "192.168.10.22:8765",
        "reason": "chunk 3 has SHA-256 0a1b..., the manifest says 9f8e...",
    },
}
VALID_FROM_COORDINATOR: dict[str, dict[str, Any]] = {
    "welcome": {"type": "welcome", "session": "1bbec6d9a475cbd0", "show": 1, "name": "kiosk-1"},
    "burn": {
        "type": "burn",
        "uid": UID,
        "md5": MD5,
        "sha256": SHA,
        "size": 4683595776,
        "url": URL,
        "name": "ubuntu.iso",
    },
    "open": {"type": "open", "uid": UID},
    "cancel": {"type": "cancel", "uid": UID},
    "name": {"type": "name", "uid": UID, "name": "left tray"},
    "catalog": {"type": "catalog", "takes": [TAKE]},
    "error": {"type": "error", "code": "BAD_MESSAGE", "message": "drives[0].status: nope"},
    "peers": {
        "type": "peers",
        "sha256": SHA,
        "count": 12,
        "peers": [{"address": "192.168.10.21:8765", "chunks": "8AA=", "fetching": "DAA="}],
    },
    "peer_token": {
        "type": "peer_token",
        "show": 1,
        "token": "1.7.1796000000.0f3c",
        "key": SHA,
        "expires": 1796000000,
    },
}


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out.update(changes)
    return out


def _without(base: dict[str, Any], key: str) -> dict[str, Any]:
    out = copy.deepcopy(base)
    del out[key]
    return out


def _hello(*drives: object, **changes: Any) -> dict[str, Any]:
    return _with(VALID_FROM_AGENT["hello"], drives=list(drives), **changes)


def _drive(**changes: Any) -> dict[str, Any]:
    return _with(DRIVE, **changes)


def _catalog(*takes: object) -> dict[str, Any]:
    return {"type": "catalog", "takes": list(takes)}


def _take(**changes: Any) -> dict[str, Any]:
    return _with(TAKE, **changes)


A = VALID_FROM_AGENT
C = VALID_FROM_COORDINATOR

# -- the documented examples and the type tables


def test_valid_examples_parse_to_the_expected_values() -> None:
    hello = parse_from_agent(A["hello"])
    assert hello == Hello(
        ApplianceInfo("kiosk-1", "1.0"),
        (
            Drive(
                UID,
                "left tray",
                (Capability.BURNCDR, Capability.BURNDVDR),
                (MD5,),
                StatusValue(StatusKind.IDLE),
            ),
        ),
    )
    assert parse_from_agent(A["status"]) == Status(UID, StatusValue.progress(42))
    assert parse_from_agent(A["result"]) == Result(
        "j-2026-0042", UID, MD5, True, None, 4683595776, 612.4
    )
    assert parse_from_agent(A["drive_gone"]) == DriveGone(UID)
    assert parse_from_coordinator(C["welcome"]) == Welcome("1bbec6d9a475cbd0", 1, "kiosk-1")
    assert parse_from_coordinator(C["burn"]) == Burn(UID, MD5, SHA, 4683595776, URL, "ubuntu.iso")
    assert parse_from_coordinator(C["open"]) == Open(UID)
    assert parse_from_coordinator(C["name"]) == Name(UID, "left tray")
    assert parse_from_coordinator(C["catalog"]) == Catalog(
        (Take(MD5, SHA, 4683595776, "ubuntu.iso", "DVD, label A", URL),)
    )
    assert parse_from_coordinator(C["error"]) == Error("BAD_MESSAGE", "drives[0].status: nope")
    packed = {**C["catalog"]["takes"][0], "extracted_size": 9, "extracted_sha256": SHA}
    assert parse_from_coordinator({"type": "catalog", "takes": [{**packed, "media": "disk"}]}) == (
        Catalog((Take(MD5, SHA, 4683595776, "ubuntu.iso", "DVD, label A", URL, 9, SHA, "disk"),))
    )
    with pytest.raises(AgentMessageError, match=r"takes\[0\]\.media"):
        parse_from_coordinator({"type": "catalog", "takes": [{**packed, "media": "floppy"}]})
    # Encoding gives back exactly what was received.
    for payload in A.values():
        assert encode(parse_from_agent(payload)) == payload
    for payload in C.values():
        assert encode(parse_from_coordinator(payload)) == payload


def test_the_type_tables_match_the_protocol_document() -> None:
    assert am.AGENT_TYPES == (
        "hello",
        "status",
        "result",
        "drive_gone",
        "extracted",
        "have",
        "want",
        "bad_peer",
    )
    assert am.COORDINATOR_TYPES == (
        "welcome",
        "burn",
        "open",
        "name",
        "catalog",
        "error",
        "cancel",
        "peers",
        "peer_token",
    )
    assert am.TYPES == am.AGENT_TYPES + am.COORDINATOR_TYPES
    doc = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
    section = doc.split("## Agent messages on the link", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| (→|←) \|", section, flags=re.MULTILINE))
    assert rows == {t: "→" for t in am.AGENT_TYPES} | {t: "←" for t in am.COORDINATOR_TYPES}
    # Every example in the section is a message its sender may send.
    block = section.split("```json\n", 1)[1].split("```", 1)[0]
    decoder = json.JSONDecoder()
    seen: list[str] = []
    at = 0
    for _ in range(len(block)):  # bounded: each pass consumes at least one character
        while at < len(block) and block[at].isspace():
            at += 1
        if at == len(block):
            break
        payload, at = decoder.raw_decode(block, at)
        parse = parse_from_agent if payload["type"] in am.AGENT_TYPES else parse_from_coordinator
        assert encode(parse(payload)) == payload
        seen.append(payload["type"])
    assert sorted(seen) == sorted(am.TYPES)


# -- round trips


hex_digits = "0123456789abcdef"
hex32 = st.text(alphabet=hex_digits, min_size=32, max_size=32)
hex64 = st.text(alphabet=hex_digits, min_size=64, max_size=64)
texts = st.text(max_size=am.MAX_TEXT)  # unicode, empty included
statuses = st.one_of(
    st.sampled_from([k for k in StatusKind if k is not StatusKind.PROGRESS]).map(StatusValue),
    st.integers(min_value=0, max_value=100).map(StatusValue.progress),
)
counts = st.integers(min_value=0, max_value=2**63)
drives = st.builds(
    Drive,
    uid=hex32,
    name=texts,
    capabilities=st.lists(st.sampled_from(Capability), max_size=len(Capability)).map(tuple),
    images=st.lists(hex32, max_size=4).map(tuple),
    status=statuses,
)
takes = st.builds(
    Take,
    md5=hex32,
    sha256=hex64,
    size=st.integers(min_value=1, max_value=2**63),
    name=texts,
    notes=st.text(max_size=300),
    url=st.text(max_size=300),
    extracted_size=st.none() | st.integers(min_value=1, max_value=2**63),
    extracted_sha256=st.none() | hex64,
    media=st.none() | st.sampled_from([m.value for m in Media]),
    bmap=st.none() | st.text(max_size=300),
    manifest=st.none() | hex64,
)
addresses = st.builds(
    "{}:{}".format,
    st.sampled_from(["192.168.10.21", "[fe80::1]", "kiosk-3.local"]),
    st.integers(min_value=1, max_value=65535),
)
chunk_maps = st.binary(max_size=16).map(lambda b: base64.b64encode(b).decode())
STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "hello": st.builds(
        Hello,
        appliance=st.builds(
            ApplianceInfo, texts, st.text(max_size=64), st.none() | counts, st.none() | counts
        ),
        drives=st.lists(drives, max_size=4, unique_by=lambda d: d.uid).map(tuple),
    ),
    "status": st.builds(Status, hex32, statuses),
    "result": st.builds(
        Result,
        job=st.text(min_size=1, max_size=am.MAX_JOB),
        uid=hex32,
        md5=hex32,
        ok=st.booleans(),
        reason=st.none() | st.text(max_size=300),
        bytes=counts,
        seconds=st.floats(min_value=0, allow_nan=False, allow_infinity=False),
        detail=st.none() | st.text(max_size=300),
    ),
    "drive_gone": st.builds(DriveGone, hex32),
    "extracted": st.builds(am.Extracted, hex64, st.integers(min_value=1, max_value=2**63), hex64),
    "have": st.builds(
        am.Have,
        sha256=hex64,
        count=st.integers(min_value=1, max_value=128),
        chunks=chunk_maps,
        fetching=chunk_maps,
        address=st.none() | addresses,
        origin_bytes=counts,
        peer_bytes=counts,
    ),
    "want": st.builds(am.Want, hex64),
    "bad_peer": st.builds(am.BadPeer, hex64, addresses, st.text(max_size=300)),
    "peers": st.builds(
        am.Peers,
        hex64,
        st.integers(min_value=1, max_value=128),
        st.lists(st.builds(am.Peer, addresses, chunk_maps, chunk_maps), max_size=3).map(tuple),
    ),
    "peer_token": st.builds(
        am.PeerToken, st.integers(min_value=0), st.text(min_size=1, max_size=80), hex64, counts
    ),
    "welcome": st.builds(
        Welcome, st.none() | st.text(max_size=64), st.integers(min_value=0), texts
    ),
    "burn": st.builds(
        Burn,
        uid=hex32,
        md5=hex32,
        sha256=st.none() | hex64,
        size=st.none() | st.integers(min_value=1),
        url=st.none() | st.text(max_size=300),
        name=texts,
    ),
    "open": st.builds(Open, hex32),
    "cancel": st.builds(am.Cancel, hex32),
    "name": st.builds(Name, hex32, texts),
    "catalog": st.builds(Catalog, st.lists(takes, max_size=3).map(tuple)),
    "error": st.builds(
        Error, st.text(min_size=1, max_size=64), st.text(max_size=am.MAX_NOTES // 20)
    ),
}


def test_every_type_has_a_strategy() -> None:
    assert set(STRATEGIES) == set(am.TYPES)


def _parsers(kind: str) -> tuple[Parser, Parser]:
    """The parser for the side that receives `kind`, and the other side's."""
    if kind in am.AGENT_TYPES:
        return parse_from_agent, parse_from_coordinator
    return parse_from_coordinator, parse_from_agent


@pytest.mark.parametrize("kind", am.TYPES)
@settings(max_examples=60)  # per type: 600 messages in all, and the file stays fast
@given(data=st.data())
def test_every_message_round_trips_through_json(kind: str, data: st.DataObject) -> None:
    message = data.draw(STRATEGIES[kind])
    payload = encode(message)
    assert payload["type"] == kind == message.TYPE
    # It travels as JSON text, so it must survive that too.
    received = json.loads(json.dumps(payload))
    parse, wrong_side = _parsers(kind)
    assert parse(received) == message
    assert encode(parse(received)) == payload
    with pytest.raises(UnknownType):
        wrong_side(received)


def _any_case(data: st.DataObject, text: str) -> str:
    upper = data.draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if u else c for c, u in zip(text, upper, strict=True))


@settings(max_examples=50)
@given(data=st.data(), uid=hex32, md5=hex32, sha=hex64)
def test_hex_fields_in_any_case_are_read_as_lower_case(
    data: st.DataObject, uid: str, md5: str, sha: str
) -> None:
    wire_uid, wire_md5 = _any_case(data, uid), _any_case(data, md5)
    burn = parse_from_coordinator(
        _with(C["burn"], uid=wire_uid, md5=wire_md5, sha256=_any_case(data, sha))
    )
    assert isinstance(burn, Burn)
    assert (burn.uid, burn.md5, burn.sha256) == (uid, md5, sha)
    hello = parse_from_agent(_hello(_drive(uid=wire_uid, images=[wire_md5])))
    assert isinstance(hello, Hello)
    assert (hello.drives[0].uid, hello.drives[0].images) == (uid, (md5,))
    # Re-encoded, they go out lower case, as the protocol says.
    assert (encode(burn)["uid"], encode(burn)["md5"]) == (uid, md5)


def test_optional_fields_may_be_null_or_absent() -> None:
    no_take = Burn(UID, MD5, None, None, None, "cached.iso")
    for payload in (
        _with(C["burn"], sha256=None, size=None, url=None, name="cached.iso"),
        {"type": "burn", "uid": UID, "md5": MD5, "name": "cached.iso"},
    ):
        assert parse_from_coordinator(payload) == no_take
    assert encode(no_take)["sha256"] is None
    assert parse_from_coordinator({"type": "welcome", "show": 3, "name": ""}) == Welcome(
        None, 3, ""
    )
    result = parse_from_agent(_without(_with(A["result"], ok=False), "reason"))
    assert isinstance(result, Result)
    assert (result.ok, result.reason) == (False, None)


def test_the_cache_fields_of_hello_are_optional_for_older_agents() -> None:
    old = parse_from_agent(A["hello"])
    assert isinstance(old, Hello)
    assert (old.appliance.cache_used, old.appliance.cache_max) == (None, None)
    assert "cache_used" not in encode(old)["appliance"]
    appliance = {"name": "k", "version": "1", "cache_used": 0, "cache_max": 20 * 2**30}
    new = parse_from_agent(_with(A["hello"], appliance=appliance))
    assert isinstance(new, Hello)
    assert new.appliance == ApplianceInfo("k", "1", 0, 20 * 2**30)
    assert encode(new)["appliance"] == appliance
    nulls = parse_from_agent(
        _with(A["hello"], appliance={"name": "k", "version": "1", "cache_used": None})
    )
    assert isinstance(nulls, Hello)
    assert nulls.appliance.cache_used is None


def test_empty_name_clears_and_integer_seconds_read_as_float() -> None:
    assert parse_from_coordinator(_with(C["name"], name="")) == Name(UID, "")
    result = parse_from_agent(_with(A["result"], seconds=7, bytes=0))
    assert isinstance(result, Result)
    assert type(result.seconds) is float
    assert (result.seconds, result.bytes) == (7.0, 0)


def test_limits_are_inclusive() -> None:
    hello = parse_from_agent(
        _hello(
            _drive(
                name="ü" * am.MAX_TEXT,
                capabilities=[c.value for c in Capability],
                images=[MD5] * am.MAX_IMAGES,
                status="100%",
            ),
            appliance={"name": "", "version": "v" * 64},
        )
    )
    assert isinstance(hello, Hello)
    assert len(hello.drives[0].images) == am.MAX_IMAGES
    assert str(hello.drives[0].status) == "100%"
    many = _hello(*(_drive(uid=f"{i:032x}") for i in range(am.MAX_DRIVES)))
    assert len(parse_from_agent(many).drives) == am.MAX_DRIVES  # type: ignore[union-attr]
    job = parse_from_agent(_with(A["result"], job="j" * am.MAX_JOB, reason="r" * am.MAX_NOTES))
    assert isinstance(job, Result)
    assert len(job.job) == am.MAX_JOB


# -- malformed payloads


def _long(n: int) -> str:
    return "x" * n


BAD_FROM_AGENT: list[tuple[dict[str, Any], type[AgentMessageError], str]] = [
    # hello: the appliance
    (_without(A["hello"], "appliance"), MissingField, "appliance"),
    (_with(A["hello"], appliance="kiosk-1"), BadField, "appliance"),
    (_with(A["hello"], appliance={"version": "1"}), MissingField, "appliance.name"),
    (_with(A["hello"], appliance={"name": 1, "version": "1"}), BadField, "appliance.name"),
    (
        _with(A["hello"], appliance={"name": "k", "version": _long(65)}),
        BadField,
        "appliance.version",
    ),
    (_with(A["hello"], appliance={"name": _long(201), "version": "1"}), BadField, "appliance.name"),
    (
        _with(A["hello"], appliance={"name": "k", "version": "1", "cache_used": -1}),
        BadField,
        "appliance.cache_used",
    ),
    (
        _with(A["hello"], appliance={"name": "k", "version": "1", "cache_max": "20G"}),
        BadField,
        "appliance.cache_max",
    ),
    # hello: the drive list
    (_without(A["hello"], "drives"), MissingField, "drives"),
    (_with(A["hello"], drives={"0": DRIVE}), BadField, "drives"),
    (_hello(*[DRIVE] * (am.MAX_DRIVES + 1)), BadField, "drives"),
    (_hello(DRIVE, "drive"), BadField, "drives[1]"),
    (_hello(DRIVE, _drive(uid=UID.upper())), BadField, "drives"),  # the same uid twice
    # hello: one drive's fields
    (_hello(_without(DRIVE, "uid")), MissingField, "drives[0].uid"),
    (_hello(DRIVE, _drive(uid=UID[:-1])), BadField, "drives[1].uid"),
    (_hello(_drive(uid=UID[:-1] + "g")), BadField, "drives[0].uid"),
    (_hello(_drive(uid=int(UID, 16))), BadField, "drives[0].uid"),
    (_hello(_without(DRIVE, "name")), MissingField, "drives[0].name"),
    (_hello(_drive(name=None)), BadField, "drives[0].name"),
    (_hello(_drive(name=_long(am.MAX_TEXT + 1))), BadField, "drives[0].name"),
    (_hello(_without(DRIVE, "capabilities")), MissingField, "drives[0].capabilities"),
    (_hello(_drive(capabilities="BURNCDR")), BadField, "drives[0].capabilities"),
    (_hello(_drive(capabilities=["BURNCDR", 7])), BadField, "drives[0].capabilities[1]"),
    (_hello(_drive(capabilities=["DVD"])), BadField, "drives[0].capabilities[0]"),
    (_hello(_drive(capabilities=["BLOCK"] * 5)), BadField, "drives[0].capabilities"),
    (_hello(_without(DRIVE, "images")), MissingField, "drives[0].images"),
    (_hello(_drive(images=MD5)), BadField, "drives[0].images"),
    (_hello(_drive(images=[MD5, "not-an-md5"])), BadField, "drives[0].images[1]"),
    (_hello(_drive(images=[None])), BadField, "drives[0].images[0]"),
    (_hello(_drive(images=[MD5] * (am.MAX_IMAGES + 1))), BadField, "drives[0].images"),
    (_hello(_without(DRIVE, "status")), MissingField, "drives[0].status"),
    (_hello(_drive(status="HALFWAY")), BadField, "drives[0].status"),
    (_hello(_drive(status="PROGRESS")), BadField, "drives[0].status"),
    (_hello(_drive(status="101%")), BadField, "drives[0].status"),
    (_hello(_drive(status="%")), BadField, "drives[0].status"),
    (_hello(_drive(status="idle")), BadField, "drives[0].status"),
    (_hello(_drive(status=_long(17))), BadField, "drives[0].status"),
    (_hello(_drive(status=42)), BadField, "drives[0].status"),
    # status
    (_without(A["status"], "uid"), MissingField, "uid"),
    (_with(A["status"], uid=UID + "0"), BadField, "uid"),
    (_with(A["status"], uid=None), BadField, "uid"),
    (_without(A["status"], "status"), MissingField, "status"),
    (_with(A["status"], status="-1%"), BadField, "status"),
    (_with(A["status"], status=["IDLE"]), BadField, "status"),
    # result
    (_without(A["result"], "job"), MissingField, "job"),
    (_with(A["result"], job=""), BadField, "job"),
    (_with(A["result"], job=_long(am.MAX_JOB + 1)), BadField, "job"),
    (_with(A["result"], job=42), BadField, "job"),
    (_with(A["result"], uid="uid"), BadField, "uid"),
    (_without(A["result"], "md5"), MissingField, "md5"),
    (_with(A["result"], md5=MD5 + MD5), BadField, "md5"),
    (_without(A["result"], "ok"), MissingField, "ok"),
    (_with(A["result"], ok="true"), BadField, "ok"),
    (_with(A["result"], ok=1), BadField, "ok"),
    (_with(A["result"], reason=False), BadField, "reason"),
    (_with(A["result"], reason=_long(am.MAX_NOTES + 1)), BadField, "reason"),
    (_without(A["result"], "bytes"), MissingField, "bytes"),
    (_with(A["result"], bytes=-1), BadField, "bytes"),
    (_with(A["result"], bytes=1.5), BadField, "bytes"),
    (_with(A["result"], bytes=1.0), BadField, "bytes"),
    (_with(A["result"], bytes=True), BadField, "bytes"),
    (_with(A["result"], bytes="4683595776"), BadField, "bytes"),
    (_without(A["result"], "seconds"), MissingField, "seconds"),
    (_with(A["result"], seconds=-0.5), BadField, "seconds"),
    (_with(A["result"], seconds=-1), BadField, "seconds"),
    (_with(A["result"], seconds=float("nan")), BadField, "seconds"),
    (_with(A["result"], seconds=float("inf")), BadField, "seconds"),
    (_with(A["result"], seconds=True), BadField, "seconds"),
    (_with(A["result"], seconds="612.4"), BadField, "seconds"),
    (_with(A["result"], seconds=None), BadField, "seconds"),
    # drive_gone
    (_without(A["drive_gone"], "uid"), MissingField, "uid"),
    (_with(A["drive_gone"], uid=" " + UID[1:]), BadField, "uid"),
]

BAD_FROM_COORDINATOR: list[tuple[dict[str, Any], type[AgentMessageError], str]] = [
    # welcome
    (_with(C["welcome"], session=5), BadField, "session"),
    (_with(C["welcome"], session=_long(65)), BadField, "session"),
    (_without(C["welcome"], "show"), MissingField, "show"),
    (_with(C["welcome"], show=-1), BadField, "show"),
    (_with(C["welcome"], show=True), BadField, "show"),
    (_with(C["welcome"], show=None), BadField, "show"),
    (_without(C["welcome"], "name"), MissingField, "name"),
    (_with(C["welcome"], name=_long(am.MAX_TEXT + 1)), BadField, "name"),
    # burn
    (_without(C["burn"], "uid"), MissingField, "uid"),
    (_with(C["burn"], uid=MD5[:16]), BadField, "uid"),
    (_without(C["burn"], "md5"), MissingField, "md5"),
    (_with(C["burn"], md5="z" * 32), BadField, "md5"),
    (_with(C["burn"], sha256=SHA[:-1]), BadField, "sha256"),
    (_with(C["burn"], sha256=MD5), BadField, "sha256"),
    (_with(C["burn"], sha256=5), BadField, "sha256"),
    (_with(C["burn"], size=0), BadField, "size"),
    (_with(C["burn"], size="1"), BadField, "size"),
    (_with(C["burn"], url=_long(2049)), BadField, "url"),
    (_with(C["burn"], url=["x"]), BadField, "url"),
    (_without(C["burn"], "name"), MissingField, "name"),
    # open, name
    (_without(C["open"], "uid"), MissingField, "uid"),
    (_with(C["open"], uid="g" * 32), BadField, "uid"),
    (_with(C["name"], uid=""), BadField, "uid"),
    (_without(C["name"], "name"), MissingField, "name"),
    (_with(C["name"], name=_long(am.MAX_TEXT + 1)), BadField, "name"),
    (_with(C["name"], name=None), BadField, "name"),
    # catalog
    (_without(C["catalog"], "takes"), MissingField, "takes"),
    (_with(C["catalog"], takes=TAKE), BadField, "takes"),
    (_catalog(*[{}] * (am.MAX_TAKES + 1)), BadField, "takes"),
    (_catalog(TAKE, [TAKE]), BadField, "takes[1]"),
    (_catalog(_without(TAKE, "sha256")), MissingField, "takes[0].sha256"),
    (_catalog(_take(sha256=None)), MissingField, "takes[0].sha256"),
    (_catalog(_take(sha256="sha")), BadField, "takes[0].sha256"),
    (_catalog(TAKE, _take(md5="md5")), BadField, "takes[1].md5"),
    (_catalog(_without(TAKE, "md5")), MissingField, "takes[0].md5"),
    (_catalog(_take(size=0)), BadField, "takes[0].size"),
    (_catalog(_take(size=None)), BadField, "takes[0].size"),
    (_catalog(_without(TAKE, "name")), MissingField, "takes[0].name"),
    (_catalog(_take(notes=_long(am.MAX_NOTES + 1))), BadField, "takes[0].notes"),
    (_catalog(_take(notes=None)), BadField, "takes[0].notes"),
    (_catalog(_without(TAKE, "url")), MissingField, "takes[0].url"),
    (_catalog(_take(url=_long(2049))), BadField, "takes[0].url"),
    # error
    (_without(C["error"], "code"), MissingField, "code"),
    (_with(C["error"], code=""), BadField, "code"),
    (_with(C["error"], code=_long(65)), BadField, "code"),
    (_without(C["error"], "message"), MissingField, "message"),
    (_with(C["error"], message=_long(am.MAX_NOTES + 1)), BadField, "message"),
    (_with(C["error"], message={"text": "x"}), BadField, "message"),
]


def _check_refusal(
    parse: Parser, payload: object, error: type[AgentMessageError], field: str
) -> AgentMessageError:
    before = copy.deepcopy(payload)
    with pytest.raises(AgentMessageError) as info:
        parse(payload)
    exc = info.value
    assert type(exc) is error
    assert exc.field == field
    assert str(exc).startswith(f"{field}: ")
    assert exc.text
    # A huge bad value is cut short, so the error reply cannot be bloated by it.
    assert len(str(exc)) < 200
    # What goes back to the agent names the same field.
    reply = Error.of(exc)
    assert reply.code == exc.code.value
    assert reply.message.startswith(f"{field}: ")
    assert parse_from_coordinator(encode(reply)) == reply
    # Nothing of the payload was changed by reading it.
    assert payload == before
    return exc


@pytest.mark.parametrize(
    ("payload", "error", "field"),
    BAD_FROM_AGENT,
    ids=[f"{p['type']}-{f}" for p, _, f in BAD_FROM_AGENT],
)
def test_malformed_agent_messages_name_the_field(
    payload: dict[str, Any], error: type[AgentMessageError], field: str
) -> None:
    exc = _check_refusal(parse_from_agent, payload, error, field)
    assert exc.code is ErrorCode.BAD_MESSAGE


@pytest.mark.parametrize(
    ("payload", "error", "field"),
    BAD_FROM_COORDINATOR,
    ids=[f"{p['type']}-{f}" for p, _, f in BAD_FROM_COORDINATOR],
)
def test_malformed_coordinator_messages_name_the_field(
    payload: dict[str, Any], error: type[AgentMessageError], field: str
) -> None:
    exc = _check_refusal(parse_from_coordinator, payload, error, field)
    assert exc.code is ErrorCode.BAD_MESSAGE


def test_error_texts_say_what_was_wrong() -> None:
    cases: list[tuple[Parser, dict[str, Any], str]] = [
        (parse_from_agent, _hello(_drive(status="HALFWAY")), "'HALFWAY' is not a status"),
        (parse_from_agent, _hello(_drive(status="101%")), "0..100"),
        (parse_from_agent, _hello(_drive(capabilities=["DVD"])), "BURNCDR, BURNDVDR"),
        (parse_from_agent, _hello(DRIVE, DRIVE), "a drive uid appears twice"),
        (parse_from_agent, _without(A["status"], "uid"), "required field is missing"),
        (parse_from_agent, _with(A["result"], bytes=-1), "must be an integer >= 0"),
        (parse_from_agent, _with(A["result"], job=""), "must not be empty"),
        (parse_from_agent, _with(A["status"], uid="z" * 5000), "'zzzzzzz"),
        (parse_from_coordinator, _with(C["burn"], size=0), "must be an integer >= 1"),
        (parse_from_coordinator, _with(C["burn"], sha256="x"), "SHA-256 (64 hex digits)"),
        (parse_from_coordinator, _catalog(*[{}] * (am.MAX_TAKES + 1)), "at most 10000 entries"),
    ]
    for parse, payload, words in cases:
        with pytest.raises(AgentMessageError) as info:
            parse(payload)
        assert words in str(info.value)


def test_built_hello_with_a_repeated_drive_uid_is_refused() -> None:
    drive = parse_from_agent(A["hello"]).drives[0]  # type: ignore[union-attr]
    with pytest.raises(BadField) as info:
        Hello(ApplianceInfo("kiosk-1", "1.0"), (drive, drive))
    assert info.value.field == "drives"


# -- payloads that are not messages, unknown types, the wrong direction


@pytest.mark.parametrize("parse", [parse_from_agent, parse_from_coordinator])
@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        ([A["status"]], "list"),
        ("hello", "str"),
        (None, "NoneType"),
        (42, "int"),
        (4.2, "float"),
        (True, "bool"),
    ],
)
def test_non_objects_are_refused(parse: Parser, payload: object, kind: str) -> None:
    with pytest.raises(NotAnObject) as info:
        parse(payload)
    assert info.value.field == ""
    assert info.value.code is ErrorCode.BAD_MESSAGE
    assert str(info.value) == f"a message is a JSON object, not {kind}"
    # With no field to name, the reply is just the reason.
    assert Error.of(info.value) == Error("BAD_MESSAGE", str(info.value))


@pytest.mark.parametrize("parse", [parse_from_agent, parse_from_coordinator])
@pytest.mark.parametrize(
    "payload", [{}, {"uid": UID}, {"type": None}, {"type": 1}, {"type": ["hello"]}]
)
def test_a_message_without_a_string_type_is_refused(parse: Parser, payload: object) -> None:
    with pytest.raises(AgentMessageError) as info:
        parse(payload)
    assert info.value.field == "type"
    assert info.value.code is ErrorCode.BAD_MESSAGE
    assert str(info.value).startswith("type: ")


@pytest.mark.parametrize("parse", [parse_from_agent, parse_from_coordinator])
@pytest.mark.parametrize("kind", ["", "HELLO", "Status", "bogus", "type", "x" * 1000])
def test_unknown_types_are_refused(parse: Parser, kind: str) -> None:
    with pytest.raises(UnknownType) as info:
        parse({"type": kind, "uid": UID})
    exc = info.value
    assert exc.field == "type"
    assert exc.code is ErrorCode.UNKNOWN_TYPE
    assert len(str(exc)) < 250
    assert Error.of(exc).code == "UNKNOWN_TYPE"


@pytest.mark.parametrize("kind", am.AGENT_TYPES)
def test_the_agent_cannot_be_sent_agent_messages(kind: str) -> None:
    with pytest.raises(UnknownType) as info:
        parse_from_coordinator(A[kind])
    assert "what the coordinator sends" in str(info.value)
    assert all(t in str(info.value) for t in am.COORDINATOR_TYPES)


@pytest.mark.parametrize("kind", am.COORDINATOR_TYPES)
def test_the_coordinator_cannot_be_sent_coordinator_messages(kind: str) -> None:
    with pytest.raises(UnknownType) as info:
        parse_from_agent(C[kind])
    assert "what an agent sends" in str(info.value)
    assert all(t in str(info.value) for t in am.AGENT_TYPES)


def test_status_values_are_the_burn_protocols() -> None:
    # The link reuses the burn protocol's words, so a status read here means the same there.
    for word in ("IDLE", "0%", "42%", "100%", "MD5PASS", "MD5FAIL", "TRAYOPEN", "AVAIL", "EMPTY"):
        status = parse_from_agent({"type": "status", "uid": UID, "status": word})
        assert isinstance(status, Status)
        assert status.status == bp.StatusValue.parse(word)
        assert encode(status)["status"] == word


def test_huge_integer_seconds_is_a_typed_error() -> None:
    # JSON carries integers of any size; one too big for a float must not crash the parser.
    payload = {
        "type": "result",
        "job": "j",
        "uid": UID,
        "md5": MD5,
        "ok": True,
        "reason": None,
        "bytes": 1,
        "seconds": 10**400,
    }
    with pytest.raises(am.BadField) as info:
        am.parse_from_agent(payload)
    assert info.value.field == "seconds"
