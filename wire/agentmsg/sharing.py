"""The messages of kiosks sharing images (`wire.swarm`): the agent tells the tracker what it holds
(`have`), asks who holds what (`want`, answered by `peers`) and reports a peer that lied
(`bad_peer`); the coordinator sends each link its peer token and its show's key (`peer_token`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from wire.agentmsg.fields import (
    MAX_NOTES,
    BadField,
    JsonObject,
    MissingField,
    Reader,
    shown,
)
from wire.swarm import MAX_CHUNKS

MAX_ADDRESS = 300
_HEX64 = re.compile(r"[0-9A-Fa-f]{64}")
MAX_PEERS = 256
MAX_MAP = (MAX_CHUNKS + 7) // 8 * 4 // 3 + 4  # base64 of the largest chunk bitmap


def _address(r: Reader, key: str) -> str | None:
    value = r.optional_text(key, limit=MAX_ADDRESS)
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadField(r.at(key), f"must be HOST:PORT, not {shown(value)}")
    return value


def _sha256(r: Reader, key: str) -> str:
    value = r.optional_sha256(key)
    if value is None:
        raise MissingField(r.at(key), "required field is missing")
    return value


def _map(r: Reader, key: str) -> str:
    return r.text(key, limit=MAX_MAP)


@dataclass(frozen=True, slots=True)
class Have:
    """Which chunks of an image the agent holds (`chunks`, a `wire.swarm.encode_have` bitmap of
    `count` chunks) and is fetching (`fetching`), where other kiosks reach its peer server
    (`address`, `None` when it does not serve), and how many bytes of it came from the origin
    (coordinator or URL) and from peers."""

    TYPE: ClassVar[str] = "have"
    sha256: str
    count: int
    chunks: str
    fetching: str
    address: str | None
    origin_bytes: int = 0
    peer_bytes: int = 0

    @classmethod
    def from_json(cls, r: Reader) -> Have:
        return cls(
            sha256=_sha256(r, "sha256"),
            count=r.integer("count", minimum=1),
            chunks=_map(r, "chunks"),
            fetching=_map(r, "fetching"),
            address=_address(r, "address"),
            origin_bytes=r.integer("origin_bytes"),
            peer_bytes=r.integer("peer_bytes"),
        )

    def to_json(self) -> JsonObject:
        return {
            "type": self.TYPE,
            "sha256": self.sha256,
            "count": self.count,
            "chunks": self.chunks,
            "fetching": self.fetching,
            "address": self.address,
            "origin_bytes": self.origin_bytes,
            "peer_bytes": self.peer_bytes,
        }


@dataclass(frozen=True, slots=True)
class Want:
    """Ask the tracker which kiosks of the show hold chunks of an image (answered by `peers`)."""

    TYPE: ClassVar[str] = "want"
    sha256: str

    @classmethod
    def from_json(cls, r: Reader) -> Want:
        return cls(_sha256(r, "sha256"))

    def to_json(self) -> JsonObject:
        return {"type": self.TYPE, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class BadPeer:
    """A peer served something that is not the chunk the manifest names; the agent banned it."""

    TYPE: ClassVar[str] = "bad_peer"
    sha256: str
    address: str
    reason: str

    @classmethod
    def from_json(cls, r: Reader) -> BadPeer:
        address = _address(r, "address")
        if address is None:
            raise MissingField(r.at("address"), "required field is missing")
        return cls(_sha256(r, "sha256"), address, r.text("reason", limit=MAX_NOTES))

    def to_json(self) -> JsonObject:
        return {
            "type": self.TYPE,
            "sha256": self.sha256,
            "address": self.address,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Peer:
    """One kiosk of the show as the tracker knows it, for one image."""

    address: str
    chunks: str
    fetching: str

    def to_json(self) -> JsonObject:
        return {"address": self.address, "chunks": self.chunks, "fetching": self.fetching}


@dataclass(frozen=True, slots=True)
class Peers:
    """The tracker's answer to `want`: the other kiosks of the show that hold or fetch chunks
    of the image (bitmaps of `count` chunks)."""

    TYPE: ClassVar[str] = "peers"
    sha256: str
    count: int
    peers: tuple[Peer, ...]

    @classmethod
    def from_json(cls, r: Reader) -> Peers:
        peers = []
        for p in r.objects("peers", MAX_PEERS):
            address = _address(p, "address")
            if address is None:
                raise MissingField(p.at("address"), "required field is missing")
            peers.append(Peer(address, _map(p, "chunks"), _map(p, "fetching")))
        return cls(_sha256(r, "sha256"), r.integer("count", minimum=1), tuple(peers))

    def to_json(self) -> JsonObject:
        return {
            "type": self.TYPE,
            "sha256": self.sha256,
            "count": self.count,
            "peers": [p.to_json() for p in self.peers],
        }


@dataclass(frozen=True, slots=True)
class PeerToken:
    """The agent's peer token (sent to other kiosks of its show when it fetches from them) and
    its show's key (to check the tokens other kiosks send it), good until `expires`."""

    TYPE: ClassVar[str] = "peer_token"
    show: int
    token: str
    key: str
    expires: int

    @classmethod
    def from_json(cls, r: Reader) -> PeerToken:
        key = r.get("key")
        if not isinstance(key, str) or _HEX64.fullmatch(key) is None:
            raise BadField(r.at("key"), "must be 64 hex digits")
        return cls(
            r.integer("show"),
            r.text("token", empty=False),
            key.lower(),
            r.integer("expires"),
        )

    def to_json(self) -> JsonObject:
        return {
            "type": self.TYPE,
            "show": self.show,
            "token": self.token,
            "key": self.key,
            "expires": self.expires,
        }
