"""What the coordinator sends the agent: `welcome`, `burn`, `open`, `name`, `cancel`, `catalog`
(its takes) and `error`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from wire.agentmsg.fields import (
    MAX_NOTES,
    MAX_TAKES,
    AgentMessageError,
    BadField,
    DriveMessage,
    JsonObject,
    MissingField,
    Reader,
    shown,
)
from wire.imageformat import Media


@dataclass(frozen=True, slots=True)
class Welcome:
    """Which session the link's burners joined (`None`: no live session of the show yet)."""

    TYPE: ClassVar[str] = "welcome"
    session: str | None
    show: int
    name: str

    @classmethod
    def from_json(cls, r: Reader) -> Welcome:
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
    def from_json(cls, r: Reader) -> Burn:
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
class Open(DriveMessage):
    """Open a drive's tray, so a person can see which box it is."""

    TYPE: ClassVar[str] = "open"


@dataclass(frozen=True, slots=True)
class Name:
    """A drive's friendly name as the operators set it (empty clears it)."""

    TYPE: ClassVar[str] = "name"
    uid: str
    name: str

    @classmethod
    def from_json(cls, r: Reader) -> Name:
        return cls(r.hex32("uid", "a drive uid"), r.text("name"))

    def to_json(self) -> JsonObject:
        return {"type": self.TYPE, "uid": self.uid, "name": self.name}


@dataclass(frozen=True, slots=True)
class Cancel(DriveMessage):
    """Stop the burn running on a drive; an operator cancelled it, so it is not a failure."""

    TYPE: ClassVar[str] = "cancel"


@dataclass(frozen=True, slots=True)
class Take:
    """One catalog image. `sha256`/`size` are the file as delivered; a compressed image also
    says what it unpacks to (`extracted_size`, `extracted_sha256`) and, once the image store
    looked inside, which media it suits (`media`: a `wire.imageformat.Media` value) and, for an
    image with empty space, where its block map is (`bmap`: a URL like `url`)."""

    md5: str
    sha256: str
    size: int
    name: str
    notes: str
    url: str
    extracted_size: int | None = None
    extracted_sha256: str | None = None
    media: str | None = None
    bmap: str | None = None
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
        if self.bmap is not None:
            out["bmap"] = self.bmap
        if self.manifest is not None:
            out["manifest"] = self.manifest
        return out


def _media(r: Reader) -> str | None:
    value = r.optional_text("media", limit=16)
    if value is not None and value not in set(Media):
        raise BadField(r.at("media"), f"must be one of {', '.join(Media)}, not {shown(value)}")
    return value


@dataclass(frozen=True, slots=True)
class Catalog:
    """The images of the appliance's show it may be asked to burn."""

    TYPE: ClassVar[str] = "catalog"
    takes: tuple[Take, ...]

    @classmethod
    def from_json(cls, r: Reader) -> Catalog:
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
                    bmap=t.optional_text("bmap", limit=2048),
                    manifest=t.optional_sha256("manifest"),
                )
            )
        return cls(tuple(takes))

    def to_json(self) -> JsonObject:
        return {"type": self.TYPE, "takes": [t.to_json() for t in self.takes]}


@dataclass(frozen=True, slots=True)
class Error:
    """The coordinator refused or could not read a message; the link stays up."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str

    @classmethod
    def from_json(cls, r: Reader) -> Error:
        return cls(r.text("code", limit=64, empty=False), r.text("message", limit=MAX_NOTES))

    def to_json(self) -> JsonObject:
        return {"type": self.TYPE, "code": self.code, "message": self.message}

    @classmethod
    def of(cls, exc: AgentMessageError) -> Error:
        return cls(exc.code.value, str(exc))
