"""Kiosks of a show sharing images on their LAN: chunk manifests, held-chunk maps, peer tokens and
the choice of which chunk to fetch from whom, all without I/O.

A `Manifest` cuts an image into fixed chunks (`CHUNK_SIZE`, the last one shorter) and names each
by its SHA-256, next to the size and SHA-256 of the whole file; `ManifestBuilder` makes one from
the bytes fed to it. A downloader checks every chunk with `Manifest.check_chunk` before it
writes it anywhere (`BadChunk` says whether the length or the digest is wrong), and still checks
the whole file's SHA-256 at the end: chunks consistent with a manifest that describes another
file are caught there (`ManifestMismatch`). Which chunks a kiosk holds travels as a bitmap
(`encode_have`/`decode_have`). A peer token (`issue_token`/`check_token`) is an HMAC over the show,
the appliance it was issued to and its expiry, keyed with a per-show key (`show_key`) that only the
coordinator and the kiosks of that show know, so a kiosk can check a token without asking anyone;
an unknown, expired or other-show token is refused with `TokenRefused`. `Picker` decides which
missing chunk a source should send next: the rarest among the chunks the source has and nobody
is fetching already.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

CHUNK_SIZE = 4 * 1024 * 1024
MAX_CHUNKS = 1 << 20  # 4 TiB at the default chunk size: far above any image
TOKEN_SECONDS = 600  # how long a peer token is good for; the coordinator renews it before

_HEX64 = re.compile(r"[0-9a-f]{64}")


class SwarmError(ValueError):
    """Something about sharing is wrong; the text says what, for a log line or dashboard note."""


class ManifestError(SwarmError):
    """A manifest that cannot be right (bad digests, chunk count not matching the size...)."""


class ManifestMismatch(SwarmError):
    """A manifest that does not describe the take's file (other size or whole-file SHA-256)."""


class BadChunk(SwarmError):
    """Bytes that are not the chunk the manifest names: `reason` is `length` or `digest`."""

    def __init__(self, index: int, reason: str, text: str) -> None:
        super().__init__(text)
        self.index = index
        self.reason = reason


class TokenRefused(SwarmError):
    """A peer token that does not grant access: `reason` is `unknown`, `expired` or `show`."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason


def chunk_count(size: int, chunk_size: int = CHUNK_SIZE) -> int:
    return -(-size // chunk_size)


@dataclass(frozen=True, slots=True)
class Manifest:
    """An image cut into chunks: `chunks[i]` is the SHA-256 of bytes `span(i)`."""

    size: int
    sha256: str
    chunk_size: int
    chunks: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ManifestError(f"size must be at least 1 byte, not {self.size}")
        if self.chunk_size < 1:
            raise ManifestError(f"chunk size must be at least 1 byte, not {self.chunk_size}")
        if _HEX64.fullmatch(self.sha256) is None:
            raise ManifestError(f"sha256 {self.sha256[:80]!r} is not 64 lowercase hex digits")
        wanted = chunk_count(self.size, self.chunk_size)
        if wanted > MAX_CHUNKS:
            raise ManifestError(f"{wanted} chunks is more than the {MAX_CHUNKS} allowed")
        if len(self.chunks) != wanted:
            raise ManifestError(
                f"a {self.size}-byte image in {self.chunk_size}-byte chunks has {wanted} chunks, "
                f"the manifest lists {len(self.chunks)}"
            )
        for i, digest in enumerate(self.chunks):
            if _HEX64.fullmatch(digest) is None:
                raise ManifestError(f"chunk {i}: {digest[:80]!r} is not 64 lowercase hex digits")

    @property
    def count(self) -> int:
        return len(self.chunks)

    def span(self, index: int) -> tuple[int, int]:
        """Offset and length of chunk `index`."""
        if not 0 <= index < self.count:
            raise IndexError(f"chunk {index} is not in 0..{self.count - 1}")
        start = index * self.chunk_size
        return start, min(self.chunk_size, self.size - start)

    def check_chunk(self, index: int, data: bytes | bytearray | memoryview) -> None:
        """Raise `BadChunk` unless `data` is exactly chunk `index`."""
        _, length = self.span(index)
        if len(data) != length:
            raise BadChunk(
                index, "length", f"chunk {index} has {len(data)} bytes, the manifest says {length}"
            )
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.chunks[index]:
            raise BadChunk(
                index,
                "digest",
                f"chunk {index} has SHA-256 {digest}, the manifest says {self.chunks[index]}",
            )

    def check_take(self, sha256: str, size: int) -> None:
        """Raise `ManifestMismatch` unless this manifest describes the take's file."""
        if self.sha256 != sha256.lower() or self.size != size:
            raise ManifestMismatch(
                f"the manifest describes {self.size} bytes with SHA-256 {self.sha256}, "
                f"the take is {size} bytes with SHA-256 {sha256.lower()}"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "sha256": self.sha256,
            "chunk_size": self.chunk_size,
            "chunks": list(self.chunks),
        }

    def encode(self) -> bytes:
        """The canonical bytes of the manifest (what `digest` hashes)."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()

    @property
    def digest(self) -> str:
        """SHA-256 of `encode()`: the catalog names a manifest by it."""
        return hashlib.sha256(self.encode()).hexdigest()

    @classmethod
    def from_json(cls, obj: object) -> Manifest:
        if not isinstance(obj, Mapping):
            raise ManifestError(f"a manifest is a JSON object, not {type(obj).__name__}")
        try:
            size, sha, chunk_size, chunks = (
                obj["size"],
                obj["sha256"],
                obj["chunk_size"],
                obj["chunks"],
            )
        except KeyError as exc:
            raise ManifestError(f"the manifest has no {exc.args[0]!r}") from None
        if type(size) is not int or type(chunk_size) is not int:
            raise ManifestError("size and chunk_size must be integers")
        if not isinstance(sha, str) or not isinstance(chunks, list):
            raise ManifestError("sha256 must be a string and chunks a list")
        if not all(isinstance(c, str) for c in chunks):
            raise ManifestError("every chunk digest must be a string")
        return cls(size, sha, chunk_size, tuple(chunks))


@dataclass(slots=True)
class ManifestBuilder:
    """Feed an image's bytes in any pieces; `finish()` returns its manifest."""

    chunk_size: int = CHUNK_SIZE
    size: int = 0
    _whole: Any = field(default_factory=hashlib.sha256)
    _chunk: Any = field(default_factory=hashlib.sha256)
    _in_chunk: int = 0
    _chunks: list[str] = field(default_factory=list)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        self._whole.update(view)
        self.size += len(view)
        while view:
            take = min(len(view), self.chunk_size - self._in_chunk)
            self._chunk.update(view[:take])
            self._in_chunk += take
            view = view[take:]
            if self._in_chunk == self.chunk_size:
                self._chunks.append(self._chunk.hexdigest())
                self._chunk, self._in_chunk = hashlib.sha256(), 0

    def finish(self) -> Manifest:
        chunks = list(self._chunks)
        if self._in_chunk:
            chunks.append(self._chunk.hexdigest())
        return Manifest(self.size, self._whole.hexdigest(), self.chunk_size, tuple(chunks))


# ---- which chunks a kiosk holds ------------------------------------------------------------


def encode_have(have: Iterable[int], count: int) -> str:
    """A set of chunk indices as a base64 bitmap (chunk 0 is the first byte's high bit)."""
    bits = bytearray(-(-count // 8))
    for i in have:
        if not 0 <= i < count:
            raise ValueError(f"chunk {i} is not in 0..{count - 1}")
        bits[i >> 3] |= 0x80 >> (i & 7)
    return base64.b64encode(bytes(bits)).decode("ascii")


def decode_have(text: str, count: int) -> frozenset[int]:
    """The chunk indices of a bitmap from `encode_have`; `SwarmError` if it is not one."""
    try:
        bits = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise SwarmError(f"a chunk map is base64: {exc}") from None
    size = -(-count // 8)
    if len(bits) != size:
        raise SwarmError(f"a chunk map of {count} chunks is {size} bytes, not {len(bits)}")
    return frozenset(i for i in range(count) if bits[i >> 3] & (0x80 >> (i & 7)))


# ---- peer tokens ---------------------------------------------------------------------------


def show_key(secret: bytes, show: int) -> bytes:
    """The key that signs and checks the peer tokens of one show."""
    return hmac.new(secret, f"burnstand-peer-show:{show}".encode(), hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class PeerGrant:
    """What a valid token says: who it was issued to, for which show, until when."""

    show: int
    appliance: int
    expires: int


def _mac(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def issue_token(key: bytes, show: int, appliance: int, expires: int) -> str:
    """A token for `appliance` to fetch from the kiosks of `show` until `expires` (Unix s)."""
    body = f"{show}.{appliance}.{expires}"
    return f"{body}.{_mac(key, body)}"


def check_token(key: bytes, token: str, show: int, now: float) -> PeerGrant:
    """The grant a token carries, if `key` (the checking kiosk's show key) signed it for `show`
    and it has not expired; else `TokenRefused`."""
    parts = token.split(".")
    if len(parts) != 4 or not all(p.isdigit() for p in parts[:3]):
        raise TokenRefused("unknown", "not a peer token")
    body = ".".join(parts[:3])
    token_show, appliance, expires = (int(p) for p in parts[:3])
    if token_show != show:
        raise TokenRefused("show", f"the token is for show {token_show}, this kiosk serves {show}")
    if not hmac.compare_digest(_mac(key, body), parts[3]):
        raise TokenRefused("unknown", "the token was not issued by this show's coordinator")
    if expires <= now:
        raise TokenRefused("expired", f"the token expired at {expires}")
    return PeerGrant(token_show, appliance, expires)


# ---- which chunk next ----------------------------------------------------------------------


class Picker:
    """Hands out missing chunks to sources, each chunk to one source at a time.

    A source is a name (a peer's address, or the origin); `sources[name]` is the set of chunks it
    holds, `None` for one that holds all (the coordinator or the take's URL). A peer is asked for
    the rarest chunk it has. The origin is the scarce uplink the whole show shares, so it is asked
    only for chunks no peer holds and no other kiosk is fetching (`elsewhere`), unless `eager`
    (nothing else moves any more). Ties break in an order of this picker's own (`seed`), so the
    kiosks of a show starting together fetch different chunks from the origin.
    """

    def __init__(self, count: int, have: Iterable[int] = (), *, seed: int = 0) -> None:
        self.count = count
        self.have: set[int] = set(have)
        self.busy: set[int] = set()
        self.elsewhere: frozenset[int] = frozenset()
        self.sources: dict[str, frozenset[int] | None] = {}
        self.horizon = count  # only chunks below it are handed out (a window ahead of a reader)
        # (rank, n): this kiosk is the rank-th of n fetching the image; the origin is asked
        # for its share of the chunks (index % n == rank) first, so they do not all ask for the
        # same ones before the tracker tells them who fetches what.
        self.partition: tuple[int, int] | None = None
        order = list(range(count))
        random.Random(seed).shuffle(order)  # noqa: S311 - spreading load, not a secret
        self._rank = {chunk: rank for rank, chunk in enumerate(order)}

    @property
    def done(self) -> bool:
        return len(self.have) == self.count

    def missing(self) -> int:
        return self.count - len(self.have)

    def set_source(self, name: str, chunks: frozenset[int] | None) -> None:
        self.sources[name] = chunks

    def drop_source(self, name: str) -> None:
        self.sources.pop(name, None)

    def _holders(self, index: int) -> int:
        return sum(1 for held in self.sources.values() if held is not None and index in held)

    def _wanted(self, pool: Iterable[int]) -> list[int]:
        return [i for i in pool if i < self.horizon and i not in self.have and i not in self.busy]

    def next_for(self, name: str, *, eager: bool = False) -> int | None:
        """The chunk `name` should send next (now marked busy), or None if it has none we need."""
        held = self.sources.get(name, frozenset())
        if held is None:
            wanted = self._wanted(range(self.horizon))
            spare = [i for i in wanted if i not in self.elsewhere and self._holders(i) == 0]
            if self.partition is not None and not eager:
                rank, n = self.partition
                spare = [i for i in spare if i % n == rank]
            candidates = spare or (wanted if eager else [])
        else:
            candidates = self._wanted(held)
        if not candidates:
            return None
        best = min(candidates, key=lambda i: (self._holders(i), self._rank[i]))
        self.busy.add(best)
        return best

    def finished(self, index: int) -> None:
        self.busy.discard(index)
        self.have.add(index)

    def failed(self, index: int) -> None:
        """The chunk did not arrive (or was bad): someone may try it again."""
        self.busy.discard(index)
