"""Versioned schema migrations of the coordinator database, as plain functions.

Each migration takes a connection inside an open transaction and moves the schema one version up;
``PRAGMA user_version`` records how far a file has come, so starting a newer coordinator on an older
file applies exactly the missing steps, and a file from a newer coordinator is refused.

PostgreSQL starts from the baseline of version 6 (`coordinator.store.pg_schema`) and records its
version in a ``schema_version`` table; a migration after that one runs on both engines, so it is
written in SQL both accept.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import sqlite_utils

from coordinator.store.sql import Conn


def _execute_script(conn: Conn, script: str) -> None:
    # executescript() would COMMIT the surrounding transaction first, so statements go one by one.
    for statement in script.split(";\n"):
        if statement.strip():
            conn.execute(statement)


def _v1_initial(conn: sqlite3.Connection) -> None:
    # sqlite-utils writes the DDL of the tables without foreign keys; it is only asked for the SQL
    # because its own execution path commits, and a migration must stay one transaction.
    db = sqlite_utils.Database(conn)
    person = {"id": int, "name": str, "email": str, "created_at": float}
    conn.execute(db.create_table_sql("admins", person, pk="id", not_null={"name", "email"}))
    conn.execute(
        db.create_table_sql(
            "contributors",
            {**person, "tags": str, "secret_hash": str},
            pk="id",
            not_null={"name", "email", "tags", "secret_hash", "created_at"},
        )
    )
    conn.execute(
        db.create_table_sql(
            "shows",
            {
                "id": int,
                "name": str,
                "asset_root": str,
                "meta": str,
                "tags": str,
                "created_at": float,
            },
            pk="id",
            not_null={"name", "asset_root", "meta", "tags", "created_at"},
        )
    )
    # Tables with ON DELETE rules are plain DDL: the cascade rules are part of the model
    # (removing a show removes what hangs under it) and sqlite-utils cannot express them.
    _execute_script(
        conn,
        """
        CREATE TABLE show_admins (
            id INTEGER PRIMARY KEY,
            show_id INTEGER NOT NULL REFERENCES shows(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            email TEXT NOT NULL,
            tags TEXT NOT NULL,
            secret_hash TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE UNIQUE INDEX show_admins_show_email ON show_admins(show_id, email COLLATE NOCASE);
        CREATE UNIQUE INDEX admins_email ON admins(email COLLATE NOCASE);
        CREATE UNIQUE INDEX shows_name ON shows(name COLLATE NOCASE);
        CREATE UNIQUE INDEX contributors_email ON contributors(email COLLATE NOCASE);

        CREATE TABLE contributor_shows (
            contributor_id INTEGER NOT NULL REFERENCES contributors(id) ON DELETE CASCADE,
            show_id INTEGER NOT NULL REFERENCES shows(id) ON DELETE CASCADE,
            PRIMARY KEY (contributor_id, show_id)
        );
        CREATE INDEX contributor_shows_show ON contributor_shows(show_id);

        CREATE TABLE appliances (
            id INTEGER PRIMARY KEY,
            show_id INTEGER NOT NULL REFERENCES shows(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (show_id, name)
        );

        CREATE TABLE episodes (
            id INTEGER PRIMARY KEY,
            show_id INTEGER NOT NULL REFERENCES shows(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            meta TEXT NOT NULL DEFAULT '{}',
            tags TEXT NOT NULL DEFAULT '[]',
            created_at REAL NOT NULL
        );
        CREATE UNIQUE INDEX episodes_name ON episodes(show_id, name COLLATE NOCASE);

        CREATE TABLE sequences (
            id INTEGER PRIMARY KEY,
            show_id INTEGER NOT NULL REFERENCES shows(id) ON DELETE CASCADE,
            episode_id INTEGER NOT NULL REFERENCES episodes(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            tags TEXT NOT NULL DEFAULT '[]',
            created_at REAL NOT NULL
        );
        CREATE UNIQUE INDEX sequences_name ON sequences(episode_id, name COLLATE NOCASE);

        CREATE TABLE shots (
            id INTEGER PRIMARY KEY,
            show_id INTEGER NOT NULL REFERENCES shows(id) ON DELETE CASCADE,
            episode_id INTEGER NOT NULL REFERENCES episodes(id) ON DELETE CASCADE,
            sequence_id INTEGER NOT NULL REFERENCES sequences(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            direction_notes TEXT NOT NULL DEFAULT '',
            tags TEXT NOT NULL DEFAULT '[]',
            created_at REAL NOT NULL
        );
        CREATE UNIQUE INDEX shots_name ON shots(sequence_id, name COLLATE NOCASE);

        CREATE TABLE takes (
            id INTEGER PRIMARY KEY,
            show_id INTEGER NOT NULL REFERENCES shows(id) ON DELETE CASCADE,
            episode_id INTEGER NOT NULL REFERENCES episodes(id) ON DELETE CASCADE,
            sequence_id INTEGER NOT NULL REFERENCES sequences(id) ON DELETE CASCADE,
            shot_id INTEGER NOT NULL REFERENCES shots(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            size INTEGER NOT NULL CHECK (size > 0),
            sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
            md5 TEXT NOT NULL CHECK (length(md5) = 32),
            url TEXT NOT NULL,
            notes TEXT NOT NULL DEFAULT '',
            tags TEXT NOT NULL DEFAULT '[]',
            created_at REAL NOT NULL
        );
        CREATE UNIQUE INDEX takes_name ON takes(shot_id, name COLLATE NOCASE);

        CREATE TABLE masters (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            url TEXT NOT NULL,
            capacity INTEGER NOT NULL CHECK (capacity > 0),
            embedded INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL
        );
        CREATE UNIQUE INDEX masters_name ON masters(name COLLATE NOCASE);
        CREATE UNIQUE INDEX masters_url ON masters(url);

        CREATE TABLE credentials (
            id INTEGER PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL
                CHECK (kind IN ('admin', 'show_admin', 'contributor', 'appliance')),
            admin_id INTEGER REFERENCES admins(id) ON DELETE CASCADE,
            show_admin_id INTEGER REFERENCES show_admins(id) ON DELETE CASCADE,
            contributor_id INTEGER REFERENCES contributors(id) ON DELETE CASCADE,
            appliance_id INTEGER REFERENCES appliances(id) ON DELETE CASCADE,
            show_id INTEGER REFERENCES shows(id) ON DELETE CASCADE,
            created_at REAL NOT NULL,
            expires_at REAL,
            revoked_at REAL,
            revoked_reason TEXT,
            replaced_by INTEGER REFERENCES credentials(id) ON DELETE SET NULL,
            warned_at REAL,
            CHECK ((kind = 'admin') = (admin_id IS NOT NULL)),
            CHECK ((kind = 'show_admin') = (show_admin_id IS NOT NULL)),
            CHECK ((kind = 'contributor') = (contributor_id IS NOT NULL)),
            CHECK ((kind = 'appliance') = (appliance_id IS NOT NULL)),
            CHECK ((kind = 'admin') = (show_id IS NULL))
        );
        CREATE INDEX credentials_expiry ON credentials(expires_at) WHERE revoked_at IS NULL;
        CREATE INDEX credentials_contributor ON credentials(contributor_id);

        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            show_id INTEGER NOT NULL REFERENCES shows(id) ON DELETE CASCADE,
            episode_id INTEGER NOT NULL REFERENCES episodes(id) ON DELETE CASCADE,
            sequence_id INTEGER REFERENCES sequences(id) ON DELETE CASCADE,
            shot_id INTEGER REFERENCES shots(id) ON DELETE CASCADE,
            take_id INTEGER REFERENCES takes(id) ON DELETE CASCADE,
            master_id INTEGER REFERENCES masters(id) ON DELETE SET NULL,
            state TEXT NOT NULL CHECK (state IN ('live', 'suspended')),
            created_by INTEGER REFERENCES credentials(id) ON DELETE SET NULL,
            created_at REAL NOT NULL,
            suspended_at REAL,
            CHECK ((state = 'live') = (master_id IS NOT NULL))
        );
        CREATE INDEX sessions_show ON sessions(show_id, state);
        CREATE INDEX sessions_master ON sessions(master_id, state);

        -- The seed's ShowSessions record [show, [sessionIds]] is derived, never stored twice.
        CREATE VIEW show_sessions AS
            SELECT show_id, json_group_array(id) AS session_ids FROM sessions GROUP BY show_id;

        CREATE TABLE memberships (
            session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            credential_id INTEGER NOT NULL REFERENCES credentials(id) ON DELETE CASCADE,
            joined_at REAL NOT NULL,
            PRIMARY KEY (session_id, credential_id)
        );
        CREATE INDEX memberships_credential ON memberships(credential_id);

        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}'
        );
        """,
    )


def _v2_enrollments(conn: sqlite3.Connection) -> None:
    # One row per enrollment code, ever: a code that was accepted or rejected stays spent.
    # The plaintext credential is kept only between acceptance and the kiosk's next poll.
    _execute_script(
        conn,
        """
        CREATE TABLE enrollments (
            id INTEGER PRIMARY KEY,
            code TEXT NOT NULL UNIQUE,
            show_id INTEGER NOT NULL REFERENCES shows(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'accepted', 'rejected')),
            poll_hash TEXT NOT NULL UNIQUE,
            source TEXT NOT NULL DEFAULT '',
            attempts INTEGER NOT NULL DEFAULT 1,
            created_at REAL NOT NULL,
            renewed_at REAL NOT NULL,
            decided_at REAL,
            decided_by TEXT,
            appliance_id INTEGER REFERENCES appliances(id) ON DELETE SET NULL,
            credential TEXT,
            picked_up_at REAL,
            CHECK ((state = 'pending') = (decided_at IS NULL)),
            CHECK (credential IS NULL OR state = 'accepted')
        );
        CREATE INDEX enrollments_show ON enrollments(show_id, state);
        """,
    )


def _v3_membership_secrets(conn: sqlite3.Connection) -> None:
    # A contributor row becomes one (person, show) membership with its own name, email, tags and
    # secret, like a show admin already was: a show admin can then only ever reach the standing
    # of a person in their own show. A person who was in several shows keeps their old secret in
    # each (so nobody is locked out by the upgrade) under one new row per show; the first show
    # keeps the old id. Credentials follow the row of their show.
    _execute_script(
        conn,
        """
        CREATE TABLE contributors_v3 (
            id INTEGER PRIMARY KEY,
            show_id INTEGER NOT NULL REFERENCES shows(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            email TEXT NOT NULL,
            tags TEXT NOT NULL,
            secret_hash TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        INSERT INTO contributors_v3 (id, show_id, name, email, tags, secret_hash, created_at)
            SELECT c.id, MIN(cs.show_id), c.name, c.email, c.tags, c.secret_hash, c.created_at
            FROM contributors c JOIN contributor_shows cs ON cs.contributor_id = c.id
            GROUP BY c.id;
        INSERT INTO contributors_v3 (show_id, name, email, tags, secret_hash, created_at)
            SELECT cs.show_id, c.name, c.email, c.tags, c.secret_hash, c.created_at
            FROM contributors c JOIN contributor_shows cs ON cs.contributor_id = c.id
            WHERE cs.show_id > (SELECT MIN(show_id) FROM contributor_shows
                                WHERE contributor_id = c.id)
            ORDER BY c.id, cs.show_id;
        UPDATE credentials SET contributor_id = (
            SELECT n.id FROM contributors_v3 n JOIN contributors o ON o.email = n.email
            WHERE o.id = credentials.contributor_id AND n.show_id = credentials.show_id
        ) WHERE contributor_id IS NOT NULL;
        DELETE FROM credentials WHERE kind = 'contributor' AND contributor_id IS NULL;
        DROP TABLE contributor_shows;
        DROP TABLE contributors;
        ALTER TABLE contributors_v3 RENAME TO contributors;
        CREATE UNIQUE INDEX contributors_show_email ON contributors(show_id, email COLLATE NOCASE);
        CREATE INDEX credentials_show_admin ON credentials(show_admin_id);
        CREATE INDEX credentials_appliance ON credentials(appliance_id);
        CREATE INDEX credentials_admin ON credentials(admin_id)
        """,
    )


def _v4_revocations(conn: sqlite3.Connection) -> None:
    # Every credential that stops being valid before its time (revoked, or deleted with its
    # holder) leaves a row here, written by triggers so no code path can forget it. The live
    # plane of every process polls the table and closes the sockets opened with those
    # credentials; a refresh (revoked with a successor) is not a revocation of the holder.
    # Rows older than a day are pruned as new ones come: a poller is never that far behind.
    _execute_script(
        conn,
        """
        CREATE TABLE revocations (
            id INTEGER PRIMARY KEY,
            credential_id INTEGER NOT NULL,
            at REAL NOT NULL
        )
        """,
    )
    # Trigger bodies hold several statements, so each trigger is one execute.
    conn.execute(
        """
        CREATE TRIGGER credentials_revoked AFTER UPDATE OF revoked_at ON credentials
        WHEN old.revoked_at IS NULL AND new.revoked_at IS NOT NULL AND new.replaced_by IS NULL
        BEGIN
            DELETE FROM revocations WHERE at < new.revoked_at - 86400;
            INSERT INTO revocations (credential_id, at) VALUES (new.id, new.revoked_at);
        END
        """
    )
    conn.execute(
        """
        CREATE TRIGGER credentials_deleted AFTER DELETE ON credentials
        WHEN old.revoked_at IS NULL
        BEGIN
            INSERT INTO revocations (credential_id, at)
            VALUES (old.id, (julianday('now') - 2440587.5) * 86400.0);
        END
        """
    )


def _v5_enrollment_binding(conn: sqlite3.Connection) -> None:
    # An enrollment belongs to its first asker: others asking with the same code are counted as
    # conflicts for the admin to see, and the phrase derived from the first asker's poll token is
    # kept to show beside the request. The appliance credential is no longer stored in
    # plaintext until pickup; it is made at pickup. A credential an older coordinator left
    # waiting in plaintext is revoked (the file may have been read), and the kiosk's pickup
    # makes a fresh one.
    _execute_script(
        conn,
        """
        ALTER TABLE enrollments ADD COLUMN phrase TEXT NOT NULL DEFAULT '';
        ALTER TABLE enrollments ADD COLUMN conflicts INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE enrollments ADD COLUMN conflict_source TEXT;
        ALTER TABLE enrollments ADD COLUMN conflict_at REAL;
        UPDATE credentials SET revoked_at = (julianday('now') - 2440587.5) * 86400.0,
            revoked_reason = 'stored in plaintext by an older coordinator; picked up anew'
        WHERE revoked_at IS NULL AND kind = 'appliance' AND appliance_id IN (
            SELECT appliance_id FROM enrollments WHERE credential IS NOT NULL
        );
        UPDATE enrollments SET credential = NULL WHERE credential IS NOT NULL
        """,
    )


def _v6_extracted(conn: sqlite3.Connection) -> None:
    # A compressed take (.img.xz, .zip, ...) also names the image it unpacks to, declared with
    # the take or filled in by the image store when the file is uploaded; `media` is what the
    # store found inside (disk, iso, hybrid, unknown), NULL until then.
    _execute_script(
        conn,
        """
        ALTER TABLE takes ADD COLUMN extracted_size INTEGER
            CHECK (extracted_size IS NULL OR extracted_size > 0);
        ALTER TABLE takes ADD COLUMN extracted_sha256 TEXT
            CHECK (extracted_sha256 IS NULL OR length(extracted_sha256) = 64);
        ALTER TABLE takes ADD COLUMN media TEXT;
        """,
    )


def _v7_session_order(conn: Conn) -> None:
    # The first migration on both engines. Sessions get a creation counter: "the newest live
    # session of a show" (a kiosk's link, a burn-protocol client) was the highest SQLite rowid,
    # which PostgreSQL does not have. Existing rows are numbered by creation time.
    _execute_script(
        conn,
        """
        ALTER TABLE sessions ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
        UPDATE sessions SET seq = (
            SELECT count(*) FROM sessions o
            WHERE o.created_at < sessions.created_at
               OR (o.created_at = sessions.created_at AND o.id <= sessions.id)
        );
        CREATE INDEX sessions_seq ON sessions(show_id, seq)
        """,
    )


def _v8_master_heartbeats(conn: Conn) -> None:
    # A master that heartbeats is watched: when it falls silent, its live sessions are moved to
    # a live master (coordinator.store.failover). NULL for masters that never heartbeat.
    conn.execute("ALTER TABLE masters ADD COLUMN heartbeat_at DOUBLE PRECISION")


def _v9_session_counter(conn: Conn) -> None:
    # Sessions are created alongside each other on PostgreSQL (one at a time only per master),
    # so "the highest seq plus one" could hand two of them the same number: a SEQUENCE numbers
    # them there. SQLite writes one at a time, and a trigger numbers the row it just wrote.
    if isinstance(conn, sqlite3.Connection):
        conn.execute(
            "CREATE TRIGGER sessions_seq AFTER INSERT ON sessions WHEN NEW.seq = 0 BEGIN "
            "UPDATE sessions SET seq = (SELECT max(seq) FROM sessions) + 1 "
            "WHERE rowid = NEW.rowid; END"
        )
        return
    _execute_script(
        conn,
        """
        CREATE SEQUENCE sessions_seq_counter OWNED BY sessions.seq;
        SELECT setval('sessions_seq_counter', (SELECT COALESCE(max(seq), 0) + 1 FROM sessions),
                      false);
        ALTER TABLE sessions ALTER COLUMN seq SET DEFAULT nextval('sessions_seq_counter')
        """,
    )


def _v10_session_listing(conn: Conn) -> None:
    # A page of a show's sessions (oldest first) is read from this index and stops at the
    # page's end, instead of sorting every session the show ever had for each page.
    conn.execute("CREATE INDEX sessions_show_created ON sessions(show_id, created_at, id)")


# Steps up to the PostgreSQL baseline only ever run on SQLite and take its connection; the later
# ones take either engine's (a `Conn`).
Migration = Callable[[Any], None]

MIGRATIONS: tuple[Migration, ...] = (
    _v1_initial,
    _v2_enrollments,
    _v3_membership_secrets,
    _v4_revocations,
    _v5_enrollment_binding,
    _v6_extracted,
    _v7_session_order,
    _v8_master_heartbeats,
    _v9_session_counter,
    _v10_session_listing,
)
"""Index i holds the step from version i to version i + 1; append only, never edit a shipped one."""

SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The database was written by a newer coordinator than this one."""


def _check_foreign_keys(conn: sqlite3.Connection, version: int) -> None:
    problems = conn.execute("PRAGMA foreign_key_check").fetchall()
    if problems:
        raise RuntimeError(f"migration {version} broke foreign keys: {problems[:5]}")


def check_version(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"database schema version {version} is newer than this coordinator ({SCHEMA_VERSION})"
        )


def _step(conn: sqlite3.Connection) -> int:
    """Apply the next missing migration, if any; returns the version found before it."""
    # The version is read under the write lock: two processes starting on a fresh file
    # (``serve`` and ``admin create``) must not both apply the same step.
    conn.execute("BEGIN IMMEDIATE")
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        check_version(version)
        if version < SCHEMA_VERSION:
            MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            _check_foreign_keys(conn, version + 1)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return int(version)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to ``SCHEMA_VERSION``; returns the version the file had before."""
    # Table rebuilds need foreign keys off for the duration, and that pragma is a no-op
    # inside a transaction, so it is switched around the steps.
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        before = version = _step(conn)
        for _ in range(SCHEMA_VERSION):
            if version >= SCHEMA_VERSION - 1:
                break
            version = _step(conn)
    finally:
        conn.execute("PRAGMA foreign_keys = ON")
    return before
