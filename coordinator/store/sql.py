"""What a store operation may rely on from a connection, whichever engine is behind it.

Store operations are plain functions ``fn(conn)`` written in SQL that SQLite and PostgreSQL both
run: ``?`` placeholders, ``COLLATE NOCASE`` (a collation of that name exists in both), rows that
answer by index and by column name, ``RETURNING``, ``ON CONFLICT``. SQLite's own connection
already has this shape; PostgreSQL's is wrapped by `coordinator.store.pg`. The few facts the two
engines report differently (a UNIQUE violation, a lost server) are asked of the helpers here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import psycopg

Params = Sequence[Any]


class Row(Protocol):
    """One result row: ``row[0]`` and ``row["name"]`` both work, like ``sqlite3.Row``."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """The part of a DB-API connection the store operations use."""

    def execute(self, sql: str, parameters: Params = (), /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Any, /) -> Cursor: ...


INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, psycopg.IntegrityError)
"""Catch these where a constraint of the schema may refuse a write."""


def is_unique_violation(exc: BaseException) -> bool:
    """A UNIQUE constraint (or unique index) refused the write."""
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return True
    return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)


def is_check_violation(exc: BaseException) -> bool:
    """A CHECK constraint refused the write."""
    if isinstance(exc, psycopg.errors.CheckViolation):
        return True
    return isinstance(exc, sqlite3.IntegrityError) and "CHECK constraint failed" in str(exc)


def is_postgres(target: object) -> bool:
    """Does ``target`` (a path or a URL given as --database) name a PostgreSQL database?"""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))
