"""The show catalog: shows, and under each its episodes, sequences, shots and takes.

Removing anything refuses (409) while a live session is scoped to it or below it; otherwise the
removal cascades through foreign keys to everything that hangs under it, suspended sessions
included, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coordinator.store.errors import Conflict
from coordinator.store.records import (
    Page,
    Record,
    audit,
    dumps,
    insert,
    inserted,
    iso,
    loads,
    one,
    paged,
)
from coordinator.store.sql import Conn, Row

# --- rendering ------------------------------------------------------------------------------


def _show(row: Row) -> Record:
    return {
        "id": row["id"],
        "name": row["name"],
        "asset_root": row["asset_root"],
        "meta": loads(row["meta"]),
        "tags": loads(row["tags"]),
        "created_at": iso(row["created_at"]),
    }


def _episode(row: Row) -> Record:
    return {
        "id": row["id"],
        "show_id": row["show_id"],
        "name": row["name"],
        "meta": loads(row["meta"]),
        "tags": loads(row["tags"]),
        "created_at": iso(row["created_at"]),
    }


def _sequence(row: Row) -> Record:
    return {
        "id": row["id"],
        "show_id": row["show_id"],
        "episode_id": row["episode_id"],
        "name": row["name"],
        "tags": loads(row["tags"]),
        "created_at": iso(row["created_at"]),
    }


def _shot(row: Row) -> Record:
    return {
        "id": row["id"],
        "show_id": row["show_id"],
        "episode_id": row["episode_id"],
        "sequence_id": row["sequence_id"],
        "name": row["name"],
        "direction_notes": row["direction_notes"],
        "tags": loads(row["tags"]),
        "created_at": iso(row["created_at"]),
    }


def _take(row: Row) -> Record:
    return {
        "id": row["id"],
        "show_id": row["show_id"],
        "episode_id": row["episode_id"],
        "sequence_id": row["sequence_id"],
        "shot_id": row["shot_id"],
        "name": row["name"],
        "size": row["size"],
        "sha256": row["sha256"],
        "md5": row["md5"],
        "url": row["url"] or None,  # "" is a take added for upload
        "extracted_size": row["extracted_size"],
        "extracted_sha256": row["extracted_sha256"],
        "media": row["media"],
        "notes": row["notes"],
        "tags": loads(row["tags"]),
        "created_at": iso(row["created_at"]),
    }


# --- shows ----------------------------------------------------------------------------------


def list_shows(conn: Conn, show_id: int | None, page: Page) -> Record:
    """All shows (``show_id`` None, for admins) or just the one a credential is scoped to."""
    if show_id is None:
        return paged(conn, "SELECT * FROM shows ORDER BY id", (), page, _show)
    return paged(conn, "SELECT * FROM shows WHERE id = ? ORDER BY id", (show_id,), page, _show)


def get_show(conn: Conn, show_id: int) -> Record:
    return _show(
        one(conn, "SELECT * FROM shows WHERE id = ?", (show_id,), f"show {show_id} not found")
    )


def add_show(conn: Conn, now: float, actor: str, body: Record) -> Record:
    show_id = insert(
        conn,
        "shows",
        {
            "name": body["name"],
            "asset_root": body["asset_root"],
            "meta": dumps(body.get("meta", {})),
            "tags": dumps(body.get("tags", [])),
            "created_at": now,
        },
        what=f"show named {body['name']!r}",
    )
    audit(conn, now, actor, "show.add", f"show:{show_id}", {"name": body["name"]})
    return get_show(conn, show_id)


def _refuse_if_live(conn: Conn, column: str, value: int, what: str) -> None:
    (live,) = conn.execute(
        f"SELECT count(*) FROM sessions WHERE {column} = ? AND state = 'live'",  # noqa: S608
        (value,),
    ).fetchone()
    if live:
        raise Conflict(f"{what} has {live} live session(s); suspend them before removing it")


def remove_show(conn: Conn, now: float, actor: str, show_id: int) -> None:
    get_show(conn, show_id)
    _refuse_if_live(conn, "show_id", show_id, f"show {show_id}")
    conn.execute("DELETE FROM shows WHERE id = ?", (show_id,))  # its people cascade
    audit(conn, now, actor, "show.remove", f"show:{show_id}")


# --- episodes, sequences, shots, takes --------------------------------------------------------


class Level:
    """One level of the catalog below a show: its table, parent and columns."""

    def __init__(
        self,
        name: str,
        table: str,
        parent_table: str,
        ancestry: tuple[str, ...],
        render: Callable[[Row], Record],
        columns: Callable[[Record], dict[str, Any]],
    ) -> None:
        self.name = name
        self.table = table
        self.parent_table = parent_table
        # Columns copied from the parent row: the show and every level between.
        self.ancestry = ancestry
        self.render = render
        self.columns = columns

    @property
    def parent_name(self) -> str:
        return self.parent_table.rstrip("s")

    @property
    def parent_key(self) -> str:
        return f"{self.parent_name}_id"


LEVELS: dict[str, Level] = {
    "episode": Level(
        "episode",
        "episodes",
        "shows",
        (),
        _episode,
        lambda b: {
            "name": b["name"],
            "meta": dumps(b.get("meta", {})),
            "tags": dumps(b.get("tags", [])),
        },
    ),
    "sequence": Level(
        "sequence",
        "sequences",
        "episodes",
        ("show_id",),
        _sequence,
        lambda b: {"name": b["name"], "tags": dumps(b.get("tags", []))},
    ),
    "shot": Level(
        "shot",
        "shots",
        "sequences",
        ("show_id", "episode_id"),
        _shot,
        lambda b: {
            "name": b["name"],
            "direction_notes": b.get("direction_notes", ""),
            "tags": dumps(b.get("tags", [])),
        },
    ),
    "take": Level(
        "take",
        "takes",
        "shots",
        ("show_id", "episode_id", "sequence_id"),
        _take,
        lambda b: {
            "name": b["name"],
            "size": b["size"],
            "sha256": b["sha256"].lower(),
            "md5": b["md5"].lower(),
            "url": b.get("url", ""),
            "extracted_size": b.get("extracted_size"),
            "extracted_sha256": (b.get("extracted_sha256") or "").lower() or None,
            "notes": b.get("notes", ""),
            "tags": dumps(b.get("tags", [])),
        },
    ),
}


def show_of(conn: Conn, table: str, row_id: int) -> int:
    """The show a catalog row belongs to (404 if there is no such row)."""
    what = "show" if table == "shows" else table.rstrip("s")
    row = one(
        conn,
        f"SELECT {'id' if table == 'shows' else 'show_id'} FROM {table} WHERE id = ?",  # noqa: S608
        (row_id,),
        f"{what} {row_id} not found",
    )
    return int(row[0])


def list_children(conn: Conn, level: Level, parent_id: int, page: Page) -> Record:
    show_of(conn, level.parent_table, parent_id)
    return paged(
        conn,
        f"SELECT * FROM {level.table} WHERE {level.parent_key} = ? ORDER BY id",  # noqa: S608
        (parent_id,),
        page,
        level.render,
    )


def add_child(
    conn: Conn, now: float, actor: str, level: Level, parent_id: int, body: Record
) -> Record:
    parent = one(
        conn,
        f"SELECT * FROM {level.parent_table} WHERE id = ?",  # noqa: S608
        (parent_id,),
        f"{level.parent_name} {parent_id} not found",
    )
    values = {key: parent[key] for key in level.ancestry}
    values[level.parent_key] = parent_id
    values.update(level.columns(body))
    values["created_at"] = now
    row = inserted(
        conn,
        level.table,
        values,
        what=f"{level.name} named {body['name']!r} in {level.parent_name} {parent_id}",
    )
    audit(
        conn,
        now,
        actor,
        f"{level.name}.add",
        f"{level.name}:{row['id']}",
        {level.parent_key: parent_id, "name": body["name"]},
    )
    return level.render(row)


def remove_child(conn: Conn, now: float, actor: str, level: Level, row_id: int) -> None:
    show_of(conn, level.table, row_id)
    _refuse_if_live(conn, f"{level.name}_id", row_id, f"{level.name} {row_id}")
    conn.execute(f"DELETE FROM {level.table} WHERE id = ?", (row_id,))  # noqa: S608
    audit(conn, now, actor, f"{level.name}.remove", f"{level.name}:{row_id}")
