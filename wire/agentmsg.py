"""The messages an appliance agent and the coordinator exchange over their link, as typed values.

The token-merge link (`wire.link`) carries opaque JSON payloads; this module says what those
payloads are. Every payload is a JSON object with a `"type"`: the agent sends `hello` (its whole
state, after every (re)connect), `status`, `result` and `drive_gone`; the coordinator sends
`welcome`, `burn`, `open`, `name`, `catalog`, `error` and `cancel`. `parse_from_agent` and
`parse_from_coordinator` turn a received payload into one frozen dataclass or raise an
`AgentMessageError` subclass whose `field` names the offending field (a dotted path such as
`drives[1].status`) and whose `code` travels back in an `error` message; `encode` turns a value
back into the JSON object. Values are checked where they cross the link (parsing), so the
receiving side refuses what a buggy sender built; senders build from values they already
validated (drive uids, catalog hashes). No I/O here: the coordinator's `/link` shell and the agent's
client shell both use it.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias, TypeVar

from wire import burnproto as bp
from wire.imageformat import Media
from wire.swarm import MAX_CHUNKS

MAX_DRIVES = 64
MAX_IMAGES = 4096
MAX_TAKES = 10_000
MAX_TEXT = 200
MAX_JOB = 128
MAX_NOTES = 10_000

_HEX32 = re.compile(r"[0-9A-Fa-f]{32}")
_HEX64 = re.compile(r"[0-9A-Fa-f]{64}")

JsonObject: TypeAlias = dict[str, Any]


class ErrorCode(enum.StrEnum):
    """Codes of the coordinator's `error` message (room refusals reuse the burn-protocol codes)."""

    BAD_MESSAGE = "BAD_MESSAGE"  # not an object, a field missing or of the wrong kind
    UNKNOWN_TYPE = "UNKNOWN_TYPE"  # "type" names no message this side accepts
    NO_SESSION = "NO_SESSION"  # no live session for the appliance's show


# --------------------------------------------------------------------------------------------
# Errors


class AgentMessageError(ValueError):
    """A payload that is not a valid message; `field` names the part at fault."""

    code: ClassVar[ErrorCode] = ErrorCode.BAD_MESSAGE

    def __init__(self, field: str, text: str) -> None:
        super().__init__(f"{field}: {text}" if field else text)
        self.field = field
        self.text = text


class NotAnObject(AgentMessageError):
    """The payload is not a JSON object."""


class UnknownType(AgentMessageError):
    code = ErrorCode.UNKNOWN_TYPE


class MissingField(AgentMessageError):
    """A required field is absent."""


class BadField(AgentMessageError):
    """A field is present with a value of the wrong kind or out of range."""


def _shown(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# --------------------------------------------------------------------------------------------
# Field readers: each takes the object, the key and the path for error messages


class _Reader:
    def __init__(self, obj: Mapping[str, Any], path: str) -> None:
        self.obj = obj
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> Any:
        if key not in self.obj:
            raise MissingField(self.at(key), "required field is missing")
        return self.obj[key]

    def text(self, key: str, *, limit: int = MAX_TEXT, empty: bool = True) -> str:
        value = self.get(key)
        if not isinstance(value, str):
            raise BadField(self.at(key), f"must be a string, not {_shown(value)}")
        if len(value) > limit:
            raise BadField(self.at(key), f"at most {limit} characters")
        if not empty and not value:
            raise BadField(self.at(key), "must not be empty")
        return value

    def optional_text(self, key: str, *, limit: int = MAX_TEXT) -> str | None:
        if self.obj.get(key) is None:
            return None
        return self.text(key, limit=limit)

    def integer(self, key: str, *, minimum: int = 0) -> int:
        value = self.get(key)
        if type(value) is not int or value < minimum:
            raise BadField(self.at(key), f"must be an integer >= {minimum}, not {_shown(value)}")
        return value

    def optional_integer(self, key: str, *, minimum: int = 0) -> int | None:
        return None if self.obj.get(key) is None else self.integer(key, minimum=minimum)

    def number(self, key: str) -> float:
        value = self.get(key)
        try:
            # JSON allows integers too large for a float; float() then raises OverflowError.
            number = float(value) if type(value) in (int, float) else math.nan
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or number < 0:
            raise BadField(self.at(key), f"must be a number >= 0, not {_shown(value)}")
        return number

    def boolean(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            raise BadField(self.at(key), f"must be true or false, not {_shown(value)}")
        return value

    def hex32(self, key: str, what: str) -> str:
        value = self.get(key)
        if not isinstance(value, str) or _HEX32.fullmatch(value) is None:
            raise BadField(self.at(key), f"must be {what} (32 hex digits), not {_shown(value)}")
        return value.lower()

    def optional_sha256(self, key: str) -> str | None:
        value = self.obj.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or _HEX64.fullmatch(value) is None:
            raise BadField(self.at(key), f"must be a SHA-256 (64 hex digits), not {_shown(value)}")
        return value.lower()

    def status(self, key: str) -> bp.StatusValue:
        value = self.text(key, limit=16)
        try:
            return bp.StatusValue.parse(value)
        except bp.ProtocolError as exc:
            raise BadField(self.at(key), exc.text) from None

    def objects(self, key: str, limit: int) -> list[_Reader]:
        value = self.get(key)
        if not isinstance(value, list):
            raise BadField(self.at(key), f"must be a list, not {_shown(value)}")
        if len(value) > limit:
            raise BadField(self.at(key), f"at most {limit} entries")
        out = []
        for i, item in enumerate(value):
            where = f"{self.at(key)}[{i}]"
            if not isinstance(item, dict):
                raise BadField(where, f"must be an object, not {_shown(item)}")
            out.append(_Reader(item, where))
        return out

    def obj_at(self, key: str) -> _Reader:
        value = self.get(key)
        if not isinstance(value, dict):
            raise BadField(self.at(key), f"must be an object, not {_shown(value)}")
        return _Reader(value, self.at(key))

    def strings(self, key: str, limit: int) -> list[str]:
        value = self.get(key)
        if not isinstance(value, list):
            raise BadField(self.at(key), f"must be a list, not {_shown(value)}")
        if len(value) > limit:
            raise BadField(self.at(key), f"at most {limit} entries")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise BadField(f"{self.at(key)}[{i}]", f"must be a string, not {_shown(item)}")
        return value


def _hex_list(r: _Reader, key: str, limit: int) -> tuple[str, ...]:
    items = r.strings(key, limit)
    for i, item in enumerate(items):
        if _HEX32.fullmatch(item) is None:
            raise BadField(
                f"{r.at(key)}[{i}]", f"must be an md5 (32 hex digits), not {_shown(item)}"
            )
    return tuple(m.lower() for m in items)


def _capabilities(r: _Reader, key: str) -> tuple[bp.Capability, ...]:
    out = []
    for i, word in enumerate(r.strings(key, len(bp.Capability))):
        try:
            out.append(bp.Capability(word))
        except ValueError:
            words = ", ".join(c.value for c in bp.Capability)
            raise BadField(f"{r.at(key)}[{i}]", f"{_shown(word)} is not one of {words}") from None
    return tuple(out)


def _check(field: str, ok: bool, text: str) -> None:
    if not ok:
        raise BadField(field, text)


# --------------------------------------------------------------------------------------------
# Agent → coordinator


@dataclass(frozen=True, slots=True)
class ApplianceInfo:
    """The box itself. `cache_used` and `cache_max` (bytes its image cache holds and may hold)
    are optional: agents before them leave them out, and they are left out when unknown."""

    name: str
    version: str
    cache_used: int | None = None
    cache_max: int | None = None

    def to_json(self) -> JsonObject:
        out: JsonObject = {"name": self.name, "version": self.version}
        if self.cache_used is not None:
            out["cache_used"] = self.cache_used
        if self.cache_max is not None:
            out["cache_max"] = self.cache_max
        return out


@dataclass(frozen=True, slots=True)
class Drive:
    """One drive as the agent announces it in `hello`."""

    uid: str
    name: str
    capabilities: tuple[bp.Capability, ...]
    images: tuple[str, ...]
    status: bp.StatusValue

    def to_json(self) -> JsonObject:
        return {
            "uid": self.uid,
            "name": self.name,
            "capabilities": [c.value for c in self.capabilities],
            "images": list(self.images),
            "status": str(self.status),
        }


@dataclass(frozen=True, slots=True)
class Hello:
    """The agent's whole state; sent after every (re)connect, so applying it twice is harmless."""

    TYPE: ClassVar[str] = "hello"
    appliance: ApplianceInfo
    drives: tuple[Drive, ...]

    def __post_init__(self) -> None:
        uids = [d.uid for d in self.drives]
        _check("drives", len(set(uids)) == len(uids), "a drive uid appears twice")

    @classmethod
    def from_json(cls, r: _Reader) -> Hello:
        a = r.obj_at("appliance")
        drives = tuple(
            Drive(
                uid=d.hex32("uid", "a drive uid"),
                name=d.text("name"),
                capabilities=_capabilities(d, "capabilities"),
                images=_hex_list(d, "images", MAX_IMAGES),
                status=d.status("status"),
            )
            for d in r.objects("drives", MAX_DRIVES)
        )
        info = ApplianceInfo(
            a.text("name"),
            a.text("version", limit=64),
            a.optional_integer("cache_used"),
            a.optional_integer("cache_max"),
        )
        return cls(info, drives)

    def to_json(self) -> JsonObject:
        return {
            "type": self.TYPE,
            "appliance": self.appliance.to_json(),
            "drives": [d.to_json() for d in self.drives],
        }


@dataclass(frozen=True, slots=True)
class Status:
    """One drive's status changed (`IDLE`, `42%`, `MD5PASS`, `TRAYOPEN`, ...)."""

    TYPE: ClassVar[str] = "status"
    uid: str
    status: bp.StatusValue

    @classmethod
    def from_json(cls, r: _Reader) -> Status:
        return cls(r.hex32("uid", "a drive uid"), r.status("status"))

    def to_json(self) -> JsonObject:
        return {"type": self.TYPE, "uid": self.uid, "status": str(self.status)}


@dataclass(frozen=True, slots=True)
class Result:
    """A burn finished; `job` is the agent's id for it, unique per burn, so a repeat is dropped."""

    TYPE: ClassVar[str] = "result"
    job: str
    uid: str
    md5: str
    ok: bool
    reason: str | None
    bytes: int
    seconds: float
    # What the burning tool said of a failure (an operator's detail; optional, newer agents).
    detail: str | None = None

    @classmethod
    def from_json(cls, r: _Reader) -> Result:
        return cls(
            job=r.text("job", limit=MAX_JOB, empty=False),
            uid=r.hex32("uid", "a drive uid"),
            md5=r.hex32("md5", "an md5"),
            ok=r.boolean("ok"),
            reason=r.optional_text("reason", limit=MAX_NOTES),
            bytes=r.integer("bytes"),
            seconds=r.number("seconds"),
            detail=r.optional_text("detail", limit=MAX_NOTES),
        )

    def to_json(self) -> JsonObject:
        out: JsonObject = {
            "type": self.TYPE,
            "job": self.job,
            "uid": self.uid,
            "md5": self.md5,
            "ok": self.ok,
            "reason": self.reason,
            "bytes": self.bytes,
            "seconds": self.seconds,
        }
        if self.detail is not None:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True, slots=True)
class DriveGone:
    """A drive was unplugged (or the agent stopped using it)."""

    TYPE: ClassVar[str] = "drive_gone"
    uid: str

    @classmethod
    def from_json(cls, r: _Reader) -> DriveGone:
        return cls(r.hex32("uid", "a drive uid"))

    def to_json(self) -> JsonObject:
        return {"type": self.TYPE, "uid": self.uid}


# --------------------------------------------------------------------------------------------
# Coordinator → agent


@dataclass(frozen=True, slots=True)
class Welcome:
    """Which session the link's burners joined (`None`: no live session of the show yet)."""

    TYPE: ClassVar[str] = "welcome"
    session: str | None
    show: int
    name: str

    @classmethod
    def from_json(cls, r: _Reader) -> Welcome:
        return cls(r.optional_text("session", limit=64), r.integer("show"), r.text("name"))

    def to_json(self) -> JsonObject:
        return {"type": self.TYPE, "session": self.session, "show": self.show, "name": self.name}


@dataclass(frozen=True, slots=True)
class Burn:
    """Burn an image on a drive. `sha256`, `size` and `url` are `None` when the catalog has no
    take for the md5 (the drive announced it holds the image, so it burns from its cache)."""

    TYPE: ClassVar[str] = "burn"
    uid: str
    md5: str
    sha256: str | None
    size: int | None
    url: str | None
    name: str

    @classmethod
    def from_json(cls, r: _Reader) -> Burn:
        return cls(
            uid=r.hex32("uid", "a drive uid"),
            md5=r.hex32("md5", "an md5"),
            sha256=r.optional_sha256("sha256"),
            size=r.optional_integer("size", minimum=1),
            url=r.optional_text("url", limit=2048),
            name=r.text("name"),
        )

    def to_json(self) -> JsonObject:
        return {
            "type": self.TYPE,
            "uid": self.uid,
            "md5": self.md5,
            "sha256": self.sha256,
            "size": self.size,
            "url": self.url,
            "name": self.name,
        }


@dataclass(frozen=True, slots=True)
class Open:
    """Open a drive's tray, so a person can see which box it is."""

    TYPE: ClassVar[str] = "open"
    uid: str

    @classmethod
    def from_json(cls, r: _Reader) -> Open:
        return cls(r.hex32("uid", "a drive uid"))

    def to_json(self) -> JsonObject:
        return {"type": self.TYPE, "uid": self.uid}


@dataclass(frozen=True, slots=True)
class Name:
    """A drive's friendly name as the operators set it (empty clears it)."""

    TYPE: ClassVar[str] = "name"
    uid: str
    name: str

    @classmethod
    def from_json(cls, r: _Reader) -> Name:
        return cls(r.hex32("uid", "a drive uid"), r.text("name"))

    def to_json(self) -> JsonObject:
        return {"type": self.TYPE, "uid": self.uid, "name": self.name}


@dataclass(frozen=True, slots=True)
class Cancel:
    """Stop the burn running on a drive; an operator cancelled it, so it is not a failure."""

    TYPE: ClassVar[str] = "cancel"
    uid: str

    @classmethod
    def from_json(cls, r: _Reader) -> Cancel:
        return cls(r.hex32("uid", "a drive uid"))

    def to_json(self) -> JsonObject:
        return {"type": self.TYPE, "uid": self.uid}


@dataclass(frozen=True, slots=True)
class Take:
    """One catalog image. `sha256`/`size` are the file as delivered; a compressed image also
    says what it unpacks to (`extracted_size`, `extracted_sha256`) and, once the image store
    looked inside, which media it suits (`media`: a `wire.imageformat.Media` value)."""

    md5: str
    sha256: str
    size: int
    name: str
    notes: str
    url: str
    extracted_size: int | None = None
    extracted_sha256: str | None = None
    media: str | None = None
    # SHA-256 of the image's chunk manifest (`wire.swarm.Manifest.digest`), once the image
    # store made one: kiosks of the show may then fetch it from each other.
    manifest: str | None = None

    def to_json(self) -> JsonObject:
        out: JsonObject = {
            "md5": self.md5,
            "sha256": self.sha256,
            "size": self.size,
            "name": self.name,
            "notes": self.notes,
            "url": self.url,
        }
        # Only when known, so an older agent's strict reader sees the message it always saw.
        if self.extracted_size is not None:
            out["extracted_size"] = self.extracted_size
        if self.extracted_sha256 is not None:
            out["extracted_sha256"] = self.extracted_sha256
        if self.media is not None:
            out["media"] = self.media
        if self.manifest is not None:
            out["manifest"] = self.manifest
        return out


def _media(r: _Reader) -> str | None:
    value = r.optional_text("media", limit=16)
    if value is not None and value not in set(Media):
        raise BadField(r.at("media"), f"must be one of {', '.join(Media)}, not {_shown(value)}")
    return value


@dataclass(frozen=True, slots=True)
class Catalog:
    """The images of the appliance's show it may be asked to burn."""

    TYPE: ClassVar[str] = "catalog"
    takes: tuple[Take, ...]

    @classmethod
    def from_json(cls, r: _Reader) -> Catalog:
        takes = []
        for t in r.objects("takes", MAX_TAKES):
            sha = t.optional_sha256("sha256")
            if sha is None:
                raise MissingField(t.at("sha256"), "required field is missing")
            takes.append(
                Take(
                    md5=t.hex32("md5", "an md5"),
                    sha256=sha,
                    size=t.integer("size", minimum=1),
                    name=t.text("name"),
                    notes=t.text("notes", limit=MAX_NOTES),
                    url=t.text("url", limit=2048),
                    extracted_size=t.optional_integer("extracted_size", minimum=1),
                    extracted_sha256=t.optional_sha256("extracted_sha256"),
                    media=_media(t),
                    manifest=t.optional_sha256("manifest"),
                )
            )
        return cls(tuple(takes))

    def to_json(self) -> JsonObject:
        return {"type": self.TYPE, "takes": [t.to_json() for t in self.takes]}


# --------------------------------------------------------------------------------------------
# Sharing images between the kiosks of a show (`wire.swarm`)

MAX_ADDRESS = 300
MAX_PEERS = 256
MAX_MAP = (MAX_CHUNKS + 7) // 8 * 4 // 3 + 4  # base64 of the largest chunk bitmap


def _address(r: _Reader, key: str) -> str | None:
    value = r.optional_text(key, limit=MAX_ADDRESS)
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadField(r.at(key), f"must be HOST:PORT, not {_shown(value)}")
    return value


def _sha256(r: _Reader, key: str) -> str:
    value = r.optional_sha256(key)
    if value is None:
        raise MissingField(r.at(key), "required field is missing")
    return value


def _map(r: _Reader, key: str) -> str:
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
    def from_json(cls, r: _Reader) -> Have:
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
    def from_json(cls, r: _Reader) -> Want:
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
    def from_json(cls, r: _Reader) -> BadPeer:
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
    def from_json(cls, r: _Reader) -> Peers:
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
    def from_json(cls, r: _Reader) -> PeerToken:
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


@dataclass(frozen=True, slots=True)
class Error:
    """The coordinator refused or could not read a message; the link stays up."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str

    @classmethod
    def from_json(cls, r: _Reader) -> Error:
        return cls(r.text("code", limit=64, empty=False), r.text("message", limit=MAX_NOTES))

    def to_json(self) -> JsonObject:
        return {"type": self.TYPE, "code": self.code, "message": self.message}

    @classmethod
    def of(cls, exc: AgentMessageError) -> Error:
        return cls(exc.code.value, str(exc))


FromAgent: TypeAlias = Hello | Status | Result | DriveGone | Have | Want | BadPeer
FromCoordinator: TypeAlias = (
    Welcome | Burn | Open | Name | Catalog | Error | Cancel | Peers | PeerToken
)
AgentMessage: TypeAlias = FromAgent | FromCoordinator

_FROM_AGENT: dict[str, Callable[[_Reader], FromAgent]] = {
    c.TYPE: c.from_json for c in (Hello, Status, Result, DriveGone, Have, Want, BadPeer)
}
_FROM_COORDINATOR: dict[str, Callable[[_Reader], FromCoordinator]] = {
    c.TYPE: c.from_json
    for c in (Welcome, Burn, Open, Name, Catalog, Error, Cancel, Peers, PeerToken)
}

AGENT_TYPES: tuple[str, ...] = tuple(_FROM_AGENT)
COORDINATOR_TYPES: tuple[str, ...] = tuple(_FROM_COORDINATOR)
TYPES: tuple[str, ...] = AGENT_TYPES + COORDINATOR_TYPES

M = TypeVar("M")


def _parse(payload: object, table: Mapping[str, Callable[[_Reader], M]], sender: str) -> M:
    if not isinstance(payload, dict):
        raise NotAnObject("", f"a message is a JSON object, not {type(payload).__name__}")
    kind = payload.get("type")
    if not isinstance(kind, str):
        raise MissingField("type", 'every message names its "type" as a string')
    build = table.get(kind)
    if build is None:
        raise UnknownType("type", f"{_shown(kind)} is not one of {', '.join(table)} ({sender})")
    return build(_Reader(payload, ""))


def parse_from_agent(payload: object) -> FromAgent:
    """A payload the agent sent, checked; raises an `AgentMessageError` naming the field."""
    return _parse(payload, _FROM_AGENT, "what an agent sends")


def parse_from_coordinator(payload: object) -> FromCoordinator:
    """A payload the coordinator sent, checked; raises an `AgentMessageError` naming the field."""
    return _parse(payload, _FROM_COORDINATOR, "what the coordinator sends")


def encode(message: AgentMessage) -> JsonObject:
    """The JSON object (link payload) of a message."""
    return message.to_json()
