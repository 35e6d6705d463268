"""What the catalog says about an image: lookups by MD5 (the burn protocol's name for an image) and
by SHA-256 (the image store's), for WHATIS/INFO and for deciding who may move which image.

The query functions are plain ``fn(conn, ...)`` for ``Store.read``; they also stat the image file,
which is fine there because reads run on the store's reader threads, never on the event loop.
When several takes carry the same image, the oldest take (lowest id) describes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.images.blobs import Expected, ImageStore, is_sha256
from coordinator.store import Store
from coordinator.store.sql import Conn, Row

IMAGES_DIRNAME = "images"

_TAKE_SQL = """
SELECT t.id, t.show_id, t.shot_id, t.name, t.size, t.sha256, t.md5, t.notes,
       t.extracted_size, t.extracted_sha256, t.url, s.direction_notes
FROM takes t JOIN shots s ON s.id = t.shot_id
"""


@dataclass(frozen=True)
class ImageInfo:
    """One image as the catalog describes it, and whether the coordinator holds its bytes."""

    name: str
    size: int
    description: str
    sha256: str
    md5: str
    present: bool
    take_id: int
    shot_id: int
    show_id: int
    extracted_size: int | None = None  # declared with the take, or found by the image store
    extracted_sha256: str | None = None
    url: str = ""  # the take's outside URL; "" for a take added for upload

    @property
    def expected(self) -> Expected:
        return Expected(self.size, self.sha256, self.md5)


def images_for(store: Store) -> ImageStore:
    """The image store of the coordinator whose database is ``store`` (``DIR/images``)."""
    return ImageStore(store.data_dir / IMAGES_DIRNAME)


def _info(row: Row, images: ImageStore) -> ImageInfo:
    parts = [row["direction_notes"].strip(), row["notes"].strip()]
    return ImageInfo(
        name=row["name"],
        size=row["size"],
        description="\n".join(p for p in parts if p),
        sha256=row["sha256"],
        md5=row["md5"],
        present=images.has(row["sha256"]),
        take_id=row["id"],
        shot_id=row["shot_id"],
        show_id=row["show_id"],
        extracted_size=row["extracted_size"],
        extracted_sha256=row["extracted_sha256"],
        url=row["url"] or "",
    )


def _first(
    conn: Conn, images: ImageStore, column: str, value: str, show_id: int | None
) -> ImageInfo | None:
    sql = _TAKE_SQL + f" WHERE t.{column} = ?"
    params: tuple[object, ...] = (value.lower(),)
    if show_id is not None:
        sql += " AND t.show_id = ?"
        params += (show_id,)
    row = conn.execute(sql + " ORDER BY t.id LIMIT 1", params).fetchone()
    return None if row is None else _info(row, images)


def find_by_md5(
    conn: Conn, images: ImageStore, md5: str, show_id: int | None = None
) -> ImageInfo | None:
    return _first(conn, images, "md5", md5, show_id)


def find_by_sha256(
    conn: Conn, images: ImageStore, sha256: str, show_id: int | None = None
) -> ImageInfo | None:
    return _first(conn, images, "sha256", sha256, show_id)


def find_take(conn: Conn, images: ImageStore, take_id: int) -> ImageInfo | None:
    row = conn.execute(_TAKE_SQL + " WHERE t.id = ?", (take_id,)).fetchone()
    return None if row is None else _info(row, images)


def missing_urls(conn: Conn, images: ImageStore, limit: int) -> list[ImageInfo]:
    """Takes that name an outside URL for an image the store does not hold yet, one per image
    (the oldest take of it describes it), at most `limit` (a stat each: reader threads)."""
    rows = conn.execute(
        _TAKE_SQL + " WHERE t.url IS NOT NULL AND t.url <> '' ORDER BY t.id"
    ).fetchall()
    out: dict[str, ImageInfo] = {}
    for row in rows:
        sha256 = str(row["sha256"]).lower()
        if sha256 in out or not is_sha256(sha256) or images.has(sha256):
            continue
        out[sha256] = _info(row, images)
        if len(out) >= limit:
            break
    return list(out.values())


def record_extracted(
    conn: Conn, show_id: int, sha256: str, extracted_size: int, extracted_sha256: str
) -> int:
    """What a kiosk of `show_id` found a take's image unpacks to, recorded on that show's takes
    of this SHA-256 that say nothing of it yet (never over what a take declared or the image
    store found); returns how many takes changed."""
    cur = conn.execute(
        "UPDATE takes SET extracted_size = ?, extracted_sha256 = ? "
        "WHERE show_id = ? AND lower(sha256) = ? "
        "AND extracted_size IS NULL AND extracted_sha256 IS NULL",
        (extracted_size, extracted_sha256, show_id, sha256.lower()),
    )
    return cur.rowcount


def record_contents(
    conn: Conn,
    sha256: str,
    extracted_size: int | None,
    extracted_sha256: str | None,
    media: str,
) -> int:
    """Fill in what the image with this SHA-256 unpacks to, on every take that carries it and
    did not declare it; returns how many takes changed."""
    cur = conn.execute(
        "UPDATE takes SET extracted_size = coalesce(extracted_size, ?), "
        "extracted_sha256 = coalesce(extracted_sha256, ?), media = ? WHERE sha256 = ?",
        (extracted_size, extracted_sha256, media, sha256),
    )
    return cur.rowcount


async def lookup_md5(
    store: Store, md5: str, *, show_id: int | None = None, images: ImageStore | None = None
) -> ImageInfo | None:
    """The image a burn-protocol MD5 names (optionally within one show), or None if none does."""
    where = images or images_for(store)
    return await store.read(lambda c: find_by_md5(c, where, md5, show_id))


async def lookup_sha256(
    store: Store, sha256: str, *, show_id: int | None = None, images: ImageStore | None = None
) -> ImageInfo | None:
    """The image with this SHA-256 (optionally within one show), or None if no take has it."""
    where = images or images_for(store)
    return await store.read(lambda c: find_by_sha256(c, where, sha256, show_id))
