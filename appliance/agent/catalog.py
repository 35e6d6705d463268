"""The agent's catalog: the takes the coordinator offers, as `Take` values, and their copy on disk.

The coordinator's `catalog` and `burn` messages describe takes; `Take.from_payload` checks each one
(a bad entry is refused with a `ValueError`, never half-read). The agent keeps the last catalog in
its state directory, so an offline kiosk still offers what it can burn after a restart.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.control import ImageView, media_for_size

log = logging.getLogger("appliance.agent")

CATALOG_FILE = "catalog.json"


@dataclass(frozen=True)
class Take:
    """A catalog entry: what the coordinator's `catalog` and `burn` messages describe."""

    sha256: str
    md5: str
    size: int
    name: str
    notes: str = ""
    url: str = ""
    extracted_size: int | None = None  # a compressed image: what it unpacks to
    extracted_sha256: str | None = None
    content: str | None = None  # the catalog's `media`: disk, iso, hybrid, unknown
    bmap: str | None = None  # URL of the image's block map (USB/SD burns write only its ranges)
    manifest: str | None = None  # digest of its chunk manifest: kiosks of the show share it

    @classmethod
    def from_payload(cls, raw: dict[str, Any]) -> Take:
        sha = _sha256(raw["sha256"])
        size = int(raw["size"])
        if size <= 0:
            raise ValueError(f"size must be positive, not {size}")
        return cls(
            sha256=sha,
            md5=str(raw.get("md5") or "").lower(),
            size=size,
            name=str(raw.get("name") or sha[:12]),
            notes=str(raw.get("notes") or ""),
            url=str(raw.get("url") or ""),
            extracted_size=_positive_or_none(raw.get("extracted_size")),
            extracted_sha256=(
                None if raw.get("extracted_sha256") is None else _sha256(raw["extracted_sha256"])
            ),
            # "media" from the coordinator's catalog, "content" from the agent's saved copy.
            content=str(raw.get("media") or raw.get("content") or "") or None,
            bmap=str(raw["bmap"]) if raw.get("bmap") else None,
            manifest=None if raw.get("manifest") is None else _sha256(raw["manifest"]),
        )

    def view(self) -> ImageView:
        unpacked = self.extracted_size or self.size
        return {
            "sha256": self.sha256,
            "md5": self.md5,
            "name": self.name,
            "size": self.size,
            "notes": self.notes,
            "media": media_for_size(unpacked, self.content),
            "extracted_size": self.extracted_size,
            "content": self.content,
        }


def _positive_or_none(value: Any) -> int | None:
    if value is None:
        return None
    n = int(value)
    if n <= 0:
        raise ValueError(f"extracted_size must be positive, not {n}")
    return n


def _sha256(value: Any) -> str:
    sha = str(value).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ValueError(f"not a SHA-256: {sha!r}")
    return sha


def save_catalog(state_dir: Path, catalog: dict[str, Take]) -> None:
    """Write the catalog under `state_dir` in one atomic replace (blocking: run it in a thread)."""
    path = state_dir / CATALOG_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([dataclasses.asdict(t) for t in catalog.values()], indent=1))
    os.replace(tmp, path)


def load_catalog(state_dir: Path) -> dict[str, Take]:
    """The saved catalog, skipping entries that no longer read (blocking: run it in a thread)."""
    path = state_dir / CATALOG_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("saved catalog unreadable, starting empty path=%s error=%s", path, exc)
        return {}
    out: dict[str, Take] = {}
    for item in raw if isinstance(raw, list) else []:
        try:
            take = Take.from_payload(item)
        except (KeyError, ValueError, TypeError, AttributeError):
            continue
        out[take.sha256] = take
    return out
