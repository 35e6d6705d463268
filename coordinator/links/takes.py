"""What an appliance link reads from the store: the live session an agent joins, and the show's
takes as `wire.agentmsg` takes (each with the URL its image is fetched from: the take's own, or
this coordinator's image store for an uploaded one, with the store's block map where it made
one). Every function here runs on the store's reader threads."""

from __future__ import annotations

from coordinator.images.blobs import BMAP_SUFFIX, ImageStore
from coordinator.store.sql import Conn, Row
from wire import agentmsg as am

_LIVE_SQL = """
SELECT id FROM sessions WHERE show_id = ? AND state = 'live' {extra}
ORDER BY created_at DESC, seq DESC LIMIT 1
"""


def live_session(conn: Conn, show_id: int, wanted: str | None) -> str | None:
    if wanted is None:
        row = conn.execute(_LIVE_SQL.format(extra=""), (show_id,)).fetchone()
    else:
        row = conn.execute(
            _LIVE_SQL.format(extra="AND id = ?"), (show_id, wanted.lower())
        ).fetchone()
    return None if row is None else str(row["id"])


IMAGE_PATH = "/api/v1/images/"


def _url(row: Row, images: ImageStore) -> str:
    """Where an agent fetches a take's image: this coordinator's image store once it holds the
    image (uploaded, or fetched from the take's URL: proven, cut into chunks the kiosks share),
    relative (the agent joins it to the coordinator's URL); until then the take's own URL, or
    "" while the upload of a take without one is pending (a stat: the store's reader threads)."""
    sha256 = str(row["sha256"]).lower()
    if images.has(sha256):
        return IMAGE_PATH + sha256
    return str(row["url"] or "")


def _bmap_url(row: Row, images: ImageStore) -> str | None:
    """The block map the image store made for the take's image, if it made one (a stat)."""
    sha256 = str(row["sha256"]).lower()
    return IMAGE_PATH + sha256 + BMAP_SUFFIX if images.has_bmap(sha256) else None


def show_takes(conn: Conn, show_id: int, images: ImageStore) -> list[am.Take]:
    rows = conn.execute(
        f"SELECT {_TAKE_COLUMNS} FROM takes WHERE show_id = ? ORDER BY id LIMIT ?",  # noqa: S608
        (show_id, am.MAX_TAKES),
    ).fetchall()
    seen: set[str] = set()
    out = []
    for row in rows:
        md5 = row["md5"].lower()
        if md5 in seen:
            continue  # several takes of one image: the oldest describes it
        seen.add(md5)
        out.append(_as_take(row, images))
    return out


def show_take(conn: Conn, show_id: int, md5: str, images: ImageStore) -> am.Take | None:
    row = conn.execute(
        f"SELECT {_TAKE_COLUMNS} FROM takes "  # noqa: S608 - a constant column list
        "WHERE show_id = ? AND lower(md5) = ? ORDER BY id LIMIT 1",
        (show_id, md5.lower()),
    ).fetchone()
    return None if row is None else _as_take(row, images)


_TAKE_COLUMNS = "md5, sha256, size, name, notes, url, extracted_size, extracted_sha256, media"


def _as_take(row: Row, images: ImageStore) -> am.Take:
    sha256 = str(row["sha256"]).lower()
    return am.Take(
        row["md5"].lower(),
        sha256,
        row["size"],
        row["name"],
        row["notes"],
        _url(row, images),
        row["extracted_size"],
        None if row["extracted_sha256"] is None else row["extracted_sha256"].lower(),
        row["media"],
        _bmap_url(row, images),
        # Kiosks share an image only when the store holds it and cut it into chunks.
        images.manifest_digest(sha256) if images.has(sha256) else None,
    )
