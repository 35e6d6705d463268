"""What the agent sends the coordinator: `hello` (its whole state after every (re)connect),
`status`, `result`, `drive_gone` and `extracted`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from wire import burnproto as bp
from wire.agentmsg.fields import (
    MAX_DRIVES,
    MAX_IMAGES,
    MAX_JOB,
    MAX_NOTES,
    DriveMessage,
    JsonObject,
    MissingField,
    Reader,
    capabilities,
    check,
    hex_list,
)


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
        check("drives", len(set(uids)) == len(uids), "a drive uid appears twice")

    @classmethod
    def from_json(cls, r: Reader) -> Hello:
        a = r.obj_at("appliance")
        drives = tuple(
            Drive(
                uid=d.hex32("uid", "a drive uid"),
                name=d.text("name"),
                capabilities=capabilities(d, "capabilities"),
                images=hex_list(d, "images", MAX_IMAGES),
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
    def from_json(cls, r: Reader) -> Status:
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
    def from_json(cls, r: Reader) -> Result:
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
class Extracted:
    """A kiosk unpacked a compressed take whose catalog entry did not say what it unpacks to,
    and the burn passed (the file matched its `sha256`): the image inside it, so the take can
    carry `extracted_size`/`extracted_sha256` from now on."""

    TYPE: ClassVar[str] = "extracted"
    sha256: str  # the file as delivered, as the take names it
    extracted_size: int
    extracted_sha256: str

    @classmethod
    def from_json(cls, r: Reader) -> Extracted:
        sha, unpacked = r.optional_sha256("sha256"), r.optional_sha256("extracted_sha256")
        if sha is None:
            raise MissingField(r.at("sha256"), "required field is missing")
        if unpacked is None:
            raise MissingField(r.at("extracted_sha256"), "required field is missing")
        return cls(sha, r.integer("extracted_size", minimum=1), unpacked)

    def to_json(self) -> JsonObject:
        return {
            "type": self.TYPE,
            "sha256": self.sha256,
            "extracted_size": self.extracted_size,
            "extracted_sha256": self.extracted_sha256,
        }


@dataclass(frozen=True, slots=True)
class DriveGone(DriveMessage):
    """A drive was unplugged (or the agent stopped using it)."""

    TYPE: ClassVar[str] = "drive_gone"
