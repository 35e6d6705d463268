"""Image formats told by their first bytes, never by a file name."""

from __future__ import annotations

import pytest

from wire.imageformat import Encoding, Media, media_of, sniff


@pytest.mark.parametrize(
    ("head", "encoding"),
    [
        (b"\xfd7zXZ\x00\x00\x04", Encoding.XZ),
        (b"\x1f\x8b\x08\x00", Encoding.GZIP),
        (b"\x28\xb5\x2f\xfd\x24", Encoding.ZSTD),
        (b"\x50\x2a\x4d\x18\x04\x00\x00\x00", Encoding.ZSTD),  # skippable frame first
        (b"BZh91AY&SY", Encoding.BZIP2),
        (b"PK\x03\x04\x14\x00", Encoding.ZIP),
        (b"PK\x05\x06" + bytes(18), Encoding.ZIP),  # an empty zip: refused later, by name
    ],
)
def test_packed_formats_are_recognised(head: bytes, encoding: Encoding):
    assert sniff(head) is encoding


@pytest.mark.parametrize(
    "head",
    [
        b"BZh9 then not a bzip2 block",  # a raw image may start with these letters
        b"\x1f\x8b\x00",  # gzip's magic with a method gzip never defined
        bytes(4096),  # an image that starts with zeros (most do)
        b"",
    ],
)
def test_raw_heads_stay_raw(head: bytes):
    assert sniff(head) is None


def test_media_sense():
    head = bytearray(36 * 1024)
    assert media_of(bytes(head)) is Media.UNKNOWN
    head[510:512] = b"\x55\xaa"
    assert media_of(bytes(head)) is Media.DISK
    head[32769:32774] = b"CD001"
    assert media_of(bytes(head)) is Media.HYBRID
    head[510:512] = b"\0\0"
    assert media_of(bytes(head)) is Media.ISO
    gpt = bytearray(36 * 1024)
    gpt[512:520] = b"EFI PART"
    assert media_of(bytes(gpt)) is Media.DISK
