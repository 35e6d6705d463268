"""Chunk manifests, chunk maps, peer tokens and the chunk picker of `wire.swarm`: a manifest made
from bytes fed in any pieces is the same, every chunk of the image passes its check and any other
bytes fail it with the reason, maps and manifests survive JSON, tokens are refused when forged,
expired or from another show, and the picker never hands one chunk to two sources at once."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import swarm as sw

SMALL = 64  # chunk size for the property tests: many chunks from little data


def _manifest(data: bytes, chunk_size: int = SMALL) -> sw.Manifest:
    builder = sw.ManifestBuilder(chunk_size)
    builder.feed(data)
    return builder.finish()


@given(data=st.binary(min_size=1, max_size=1000), cuts=st.lists(st.integers(0, 1000)))
def test_the_manifest_does_not_depend_on_how_the_bytes_were_fed(
    data: bytes, cuts: list[int]
) -> None:
    builder = sw.ManifestBuilder(SMALL)
    at = 0
    for cut in sorted(c for c in cuts if c <= len(data)):
        builder.feed(data[at:cut])
        at = cut
    builder.feed(data[at:])
    made = builder.finish()
    assert made == _manifest(data)
    assert made.sha256 == hashlib.sha256(data).hexdigest()
    assert made.size == len(data)
    assert made.count == -(-len(data) // SMALL)
    pieces = [data[start : start + length] for start, length in map(made.span, range(made.count))]
    assert b"".join(pieces) == data
    assert [hashlib.sha256(p).hexdigest() for p in pieces] == list(made.chunks)


@given(data=st.binary(min_size=1, max_size=600), flip=st.integers(0, 599))
def test_every_chunk_passes_and_a_changed_byte_fails_with_its_reason(
    data: bytes, flip: int
) -> None:
    manifest = _manifest(data)
    for i in range(manifest.count):
        start, length = manifest.span(i)
        manifest.check_chunk(i, data[start : start + length])
    flip %= len(data)
    index = flip // SMALL
    start, length = manifest.span(index)
    bad = bytearray(data[start : start + length])
    bad[flip - start] ^= 0xFF
    with pytest.raises(sw.BadChunk) as info:
        manifest.check_chunk(index, bad)
    assert (info.value.index, info.value.reason) == (index, "digest")
    with pytest.raises(sw.BadChunk, match="bytes, the manifest says") as short:
        manifest.check_chunk(index, bytes(bad[:-1]))
    assert short.value.reason == "length"
    with pytest.raises(sw.BadChunk) as long:
        manifest.check_chunk(index, bytes(bad) + b"x")
    assert long.value.reason == "length"


@given(data=st.binary(min_size=1, max_size=400))
def test_a_manifest_survives_json_and_its_digest_is_of_the_canonical_form(data: bytes) -> None:
    manifest = _manifest(data)
    back = sw.Manifest.from_json(json.loads(json.dumps(manifest.to_json())))
    assert back == manifest
    assert back.digest == hashlib.sha256(manifest.encode()).hexdigest()
    manifest.check_take(hashlib.sha256(data).hexdigest().upper(), len(data))


def test_a_manifest_of_another_file_is_a_mismatch() -> None:
    manifest = _manifest(b"a" * 200)
    with pytest.raises(sw.ManifestMismatch, match="SHA-256"):
        manifest.check_take(hashlib.sha256(b"b" * 200).hexdigest(), 200)
    with pytest.raises(sw.ManifestMismatch, match="199 bytes"):
        manifest.check_take(manifest.sha256, 199)


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"chunks": []}, "has 4 chunks, the manifest lists 0"),
        ({"size": 0}, "at least 1 byte"),
        ({"chunk_size": 0}, "chunk size"),
        ({"sha256": "XYZ"}, "not 64 lowercase hex"),
        ({"size": "200"}, "integers"),
        ({"chunks": "abc"}, "chunks a list"),
        ({"chunks": [1, 2, 3, 4]}, "must be a string"),
        ({"chunks": ["0" * 63] * 4}, "chunk 0"),
    ],
)
def test_malformed_manifests_say_what_is_wrong(change: dict[str, object], text: str) -> None:
    good = _manifest(b"z" * 200).to_json()
    with pytest.raises(sw.ManifestError, match=text):
        sw.Manifest.from_json({**good, **change})
    incomplete = dict(good)
    del incomplete["chunks"]
    with pytest.raises(sw.ManifestError, match="no 'chunks'"):
        sw.Manifest.from_json(incomplete)
    with pytest.raises(sw.ManifestError, match="JSON object"):
        sw.Manifest.from_json([good])


@given(count=st.integers(1, 300), data=st.data())
def test_chunk_maps_round_trip(count: int, data: st.DataObject) -> None:
    have = data.draw(st.frozensets(st.integers(0, count - 1)))
    assert sw.decode_have(sw.encode_have(have, count), count) == have


def test_bad_chunk_maps_are_refused() -> None:
    with pytest.raises(sw.SwarmError, match="base64"):
        sw.decode_have("not base64!", 8)
    with pytest.raises(sw.SwarmError, match="is 1 bytes, not 2"):
        sw.decode_have(sw.encode_have({1}, 16), 8)
    with pytest.raises(ValueError, match=r"not in 0\.\.7"):
        sw.encode_have({8}, 8)


SECRET = b"s" * 32


def test_a_token_of_the_show_is_granted_until_it_expires() -> None:
    key = sw.show_key(SECRET, 3)
    token = sw.issue_token(key, 3, 17, 1000)
    assert sw.check_token(key, token, 3, 999.5) == sw.PeerGrant(3, 17, 1000)
    with pytest.raises(sw.TokenRefused, match="expired") as info:
        sw.check_token(key, token, 3, 1000)
    assert info.value.reason == "expired"


def test_a_token_of_another_show_or_forged_or_garbage_is_refused() -> None:
    mine, theirs = sw.show_key(SECRET, 3), sw.show_key(SECRET, 4)
    assert mine != theirs
    other_show = sw.issue_token(theirs, 4, 9, 5000)
    with pytest.raises(sw.TokenRefused) as info:
        sw.check_token(mine, other_show, 3, 0)
    assert info.value.reason == "show"
    # Relabelled for show 3 but signed with show 4's key: the MAC gives it away.
    relabelled = "3" + other_show[1:]
    with pytest.raises(sw.TokenRefused) as forged:
        sw.check_token(mine, relabelled, 3, 0)
    assert forged.value.reason == "unknown"
    # A later expiry written into a real token breaks its MAC too.
    real = sw.issue_token(mine, 3, 9, 100)
    stretched = real.replace(".100.", ".999999.")
    with pytest.raises(sw.TokenRefused, match="not issued"):
        sw.check_token(mine, stretched, 3, 0)
    for garbage in ("", "abc", "1.2.3", "a.b.c.d", "1.2.3.4.5"):
        with pytest.raises(sw.TokenRefused) as refused:
            sw.check_token(mine, garbage, 3, 0)
        assert refused.value.reason == "unknown"


@settings(max_examples=60)
@given(
    count=st.integers(1, 40),
    seed=st.integers(0, 2**32),
    data=st.data(),
)
def test_the_picker_hands_each_chunk_once_and_spares_the_origin(
    count: int, seed: int, data: st.DataObject
) -> None:
    held = data.draw(st.frozensets(st.integers(0, count - 1)))
    picker = sw.Picker(count, seed=seed)
    picker.set_source("peer", held)
    picker.set_source("origin", None)
    handed: list[int] = []
    for _ in range(count):
        got = picker.next_for("origin")
        if got is None:
            break
        assert got not in held  # a peer has it: not worth the uplink
        handed.append(got)
    for _ in range(count):
        got = picker.next_for("peer")
        if got is None:
            break
        assert got in held
        handed.append(got)
    assert sorted(handed) == list(range(count))  # everything, each once
    assert picker.next_for("origin", eager=True) is None  # all busy
    first = handed[0]
    picker.failed(first)
    assert picker.next_for("origin", eager=True) == first  # a failed chunk is handed out again
    for i in handed:
        picker.finished(i)
    assert picker.done
    assert picker.missing() == 0


def test_kiosks_starting_together_ask_the_origin_for_different_chunks() -> None:
    firsts = set()
    for seed in range(8):
        picker = sw.Picker(64, seed=seed)
        picker.set_source("origin", None)
        firsts.add(picker.next_for("origin"))
    assert len(firsts) > 4


def test_the_origin_waits_for_chunks_others_fetch_unless_eager() -> None:
    picker = sw.Picker(3)
    picker.set_source("origin", None)
    picker.elsewhere = frozenset({0, 1, 2})
    assert picker.next_for("origin") is None
    assert picker.next_for("origin", eager=True) in {0, 1, 2}


def test_the_picker_stays_below_its_horizon() -> None:
    picker = sw.Picker(10)
    picker.set_source("origin", None)
    picker.set_source("peer", frozenset(range(1, 10)))
    picker.horizon = 2
    got = {picker.next_for("origin"), picker.next_for("peer")}
    assert got == {0, 1}
    assert picker.next_for("peer") is None
    assert picker.next_for("origin", eager=True) is None
    picker.horizon = 3
    assert picker.next_for("peer") == 2


def test_kiosks_fetching_together_ask_the_origin_for_their_own_share() -> None:
    picks = []
    for rank in range(3):
        picker = sw.Picker(9, seed=rank)
        picker.set_source("origin", None)
        picker.partition = (rank, 3)
        mine = [picker.next_for("origin") for _ in range(4)]
        assert mine[-1] is None  # three chunks each, then it waits for the others
        picks.append(set(mine[:3]))
        # Once nothing moves, it fetches what is missing itself.
        assert picker.next_for("origin", eager=True) is not None
    assert set.union(*picks) == set(range(9))
    assert sum(len(p) for p in picks) == 9  # nobody asked for another's chunk
