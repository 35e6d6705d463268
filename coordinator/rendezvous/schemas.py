"""JSON Schemas of the rendezvous request and response bodies (OpenAPI 3.1 dialect).

Handlers validate request bodies against these, and the OpenAPI document serves the same objects,
so what is documented is exactly what is enforced.
"""

from __future__ import annotations

from coordinator.rendezvous.validation import Schema

MAX_ID = 2**63 - 1

NAME: Schema = {"type": "string", "minLength": 1, "maxLength": 200}
SHA256_HEX: Schema = {
    "type": "string",
    "pattern": r"^[0-9a-fA-F]{64}$",
    "description": "64 hex digits",
}
PATH_TEXT: Schema = {"type": "string", "minLength": 1}
# Path parameters that are not numeric ids, by name, with what the handlers enforce.
PATH_PARAMS: dict[str, Schema] = {"sha256": SHA256_HEX}
# Patterns spell out the characters they refuse instead of \s / \S: Python's \s also matches
# the C0 separators \x1c-\x1f and JSON Schema's (ECMA-262) does not, so the served pattern
# and the enforced one would disagree on them.
_NO_SPACE = r"[^\x00-\x20\x7f@]"
_VISIBLE = r"[^\x00-\x20\x7f]"
EMAIL: Schema = {
    "type": "string",
    "maxLength": 254,
    "pattern": rf"^{_NO_SPACE}+@{_NO_SPACE}+$",
    "description": "an email address (name@host)",
}
TAGS: Schema = {
    "type": "array",
    "maxItems": 32,
    "items": {"type": "string", "minLength": 1, "maxLength": 64},
}
META: Schema = {"type": "object", "description": "free-form JSON object"}
ID: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
TEXT: Schema = {"type": "string", "maxLength": 10_000}
MASTER_URL: Schema = {
    "type": "string",
    "maxLength": 2000,
    "pattern": rf"^(https?|wss?)://{_VISIBLE}+$",
    "description": "an http(s):// or ws(s):// URL",
}
IMAGE_URL: Schema = {
    "type": "string",
    "maxLength": 2000,
    "pattern": rf"^https?://{_VISIBLE}+$",
    "description": "an http(s):// URL",
}


def _obj(props: dict[str, Schema], required: list[str], **extra: object) -> Schema:
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
        **extra,
    }


MASTER_IN = _obj(
    {
        "name": NAME,
        "url": MASTER_URL,
        "capacity": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
    },
    ["name", "url"],
)
SHOW_IN = _obj(
    {
        "name": NAME,
        "asset_root": {"type": "string", "minLength": 1, "maxLength": 2000},
        "meta": META,
        "tags": TAGS,
    },
    ["name", "asset_root"],
)
PERSON_IN = _obj({"name": NAME, "email": EMAIL, "tags": TAGS}, ["name", "email"])
PERSON_EDIT = _obj(
    {"name": NAME, "email": EMAIL, "tags": TAGS, "reset_secret": {"type": "boolean"}},
    [],
    minProperties=1,
)
EPISODE_IN = _obj({"name": NAME, "meta": META, "tags": TAGS}, ["name"])
SEQUENCE_IN = _obj({"name": NAME, "tags": TAGS}, ["name"])
SHOT_IN = _obj({"name": NAME, "direction_notes": TEXT, "tags": TAGS}, ["name"])
TAKE_IN = _obj(
    {
        "name": NAME,
        "size": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_ID,
            "description": "image size in bytes",
        },
        "sha256": SHA256_HEX,
        "md5": {"type": "string", "pattern": r"^[0-9a-fA-F]{32}$", "description": "32 hex digits"},
        "url": IMAGE_URL
        | {
            "description": "an http(s):// URL kiosks download the image from; leave it out to "
            "upload the image to this coordinator (PUT /takes/{take_id}/image) instead: until "
            "then the take is pending and no kiosk is offered it"
        },
        "extracted_size": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_ID,
            "description": "for a compressed image (xz, gzip, bzip2, zstd, zip): the size it "
            "unpacks to; the image store fills it in on upload when left out",
        },
        "extracted_sha256": {
            "type": "string",
            "pattern": r"^[0-9a-fA-F]{64}$",
            "description": "for a compressed image: SHA-256 of the image it unpacks to; the "
            "upload is refused and kiosks refuse to burn when the stream does not match",
        },
        "notes": TEXT,
        "tags": TAGS,
    },
    ["name", "size", "sha256", "md5"],
)
JOIN_IN = _obj(
    {
        "user": EMAIL,
        "show": ID,
        "duration": {
            "type": "integer",
            "minimum": 1,
            "maximum": 10_000_000,
            "description": "seconds; capped by the coordinator's maximum",
        },
        "secret": {"type": "string", "minLength": 1, "maxLength": 200},
    },
    ["user", "show", "duration", "secret"],
)
REFRESH_IN = _obj(
    {"duration": {"type": "integer", "minimum": 1, "maximum": 10_000_000}}, ["duration"]
)
SESSION_IN = _obj(
    {"name": NAME, "episode_id": ID, "sequence_id": ID, "shot_id": ID, "take_id": ID},
    ["name", "episode_id"],
)

# --- responses ------------------------------------------------------------------------------

PROBLEM: Schema = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "field": {"type": "string"},
    },
}
OBJECT: Schema = {"type": "object"}


def page_of(item: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["items", "total", "limit", "offset"],
        "properties": {
            "items": {"type": "array", "items": item},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    }


def record(*required: str) -> Schema:
    return {"type": "object", "required": list(required)}


MASTER = record("id", "name", "url", "capacity", "embedded", "live_sessions")
SHOW = record("id", "name", "asset_root", "meta", "tags", "created_at")
ADMIN = record("id", "name", "email", "created_at")
APPLIANCE = record("id", "show_id", "name", "created_at")
SHOW_ADMIN = record("id", "show_id", "name", "email", "tags")
CONTRIBUTOR = record("id", "name", "email", "tags", "shows")
EPISODE = record("id", "show_id", "name")
SEQUENCE = record("id", "show_id", "episode_id", "name")
SHOT = record("id", "show_id", "episode_id", "sequence_id", "name", "direction_notes")
TAKE = record("id", "shot_id", "name", "size", "sha256", "md5", "url")
SESSION = record("id", "name", "show_id", "episode_id", "state", "master", "members")
CREDENTIAL = record("credential", "role", "show_id", "expires_at")
WHOAMI = record("role", "name", "person_id", "show_id", "expires_at", "sessions")
HEALTH = record("status", "role", "version")
