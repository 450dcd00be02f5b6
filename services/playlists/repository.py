"""SQL for playlists and their entries.

Who may read or change a playlist is decided by ``services.core.authz`` before these run. Every
write locks the playlist's row first (``lock_playlist``), so writers of one playlist take turns;
positions are then renumbered densely from 0 in one statement (the unique constraint on
(playlist_id, position) is deferred to commit, so a renumbering may pass through duplicates).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg import Connection, sql

from services.core.authz import PLAYLIST_LEVEL_SQL, TRACK_LEVEL_SQL

PLAYLIST_COLUMNS = "id, owner_id, title, description, version, created_at, updated_at"
_P_COLUMNS = ", ".join(f"p.{c.strip()}" for c in PLAYLIST_COLUMNS.split(","))
_TRACK_COUNT = "(SELECT count(*) FROM playlist_entries e WHERE e.playlist_id = p.id)"
EDITABLE = ("title", "description")

Row = dict[str, Any]

# The playlists shared with `%(viewer)s` through a live share.
SHARED_PLAYLIST_IDS_SQL = """
    SELECT s.playlist_id FROM shares s
    WHERE s.grantee_id = %(viewer)s AND s.revoked_at IS NULL AND s.playlist_id IS NOT NULL"""

# Which playlists a listing covers, for `%(viewer)s`.
SCOPES: dict[str, str] = {
    "owned": "p.owner_id = %(viewer)s",
    "shared": f"p.owner_id <> %(viewer)s AND p.id IN ({SHARED_PLAYLIST_IDS_SQL})",
    "all": f"(p.owner_id = %(viewer)s OR p.id IN ({SHARED_PLAYLIST_IDS_SQL}))",
}


def insert_playlist(conn: Connection[Any], values: Row) -> Row:
    row: Row | None = conn.execute(
        f"""INSERT INTO playlists (id, owner_id, title, description, created_at, updated_at)
            VALUES (%(id)s, %(owner_id)s, %(title)s, %(description)s, %(at)s, %(at)s)
            RETURNING {PLAYLIST_COLUMNS}""",
        values,
    ).fetchone()
    assert row is not None
    return row


def list_playlists(
    conn: Connection[Any],
    viewer: uuid.UUID,
    *,
    scope: str,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Row]:
    """One page, newest first, of the playlists in ``scope`` the viewer may see, each with the
    viewer's level and its number of entries."""
    where = [SCOPES[scope], f"{PLAYLIST_LEVEL_SQL} > 0"]
    params: dict[str, Any] = {"viewer": viewer, "limit": limit}
    if after is not None:
        where.append("(p.created_at, p.id) < (%(after_at)s, %(after_id)s)")
        params["after_at"], params["after_id"] = after
    query = (
        f"SELECT {_P_COLUMNS}, {_TRACK_COUNT} AS track_count, {PLAYLIST_LEVEL_SQL} AS level "
        f"FROM playlists p WHERE {' AND '.join(where)} "
        "ORDER BY p.created_at DESC, p.id DESC LIMIT %(limit)s"
    )
    return conn.execute(query, params).fetchall()


def get_playlist(conn: Connection[Any], playlist_id: uuid.UUID) -> Row | None:
    row: Row | None = conn.execute(
        f"SELECT {PLAYLIST_COLUMNS} FROM playlists WHERE id = %s", (playlist_id,)
    ).fetchone()
    return row


def lock_playlist(conn: Connection[Any], playlist_id: uuid.UUID) -> Row | None:
    """The playlist's row, locked until the transaction ends: every writer takes this first."""
    row: Row | None = conn.execute(
        f"SELECT {PLAYLIST_COLUMNS} FROM playlists WHERE id = %s FOR UPDATE", (playlist_id,)
    ).fetchone()
    return row


def entry_refs(conn: Connection[Any], playlist_id: uuid.UUID) -> list[Row]:
    """(id, track_id) of the playlist's entries, in order."""
    return conn.execute(
        "SELECT id, track_id FROM playlist_entries WHERE playlist_id = %s ORDER BY position, id",
        (playlist_id,),
    ).fetchall()


def entries_with_tracks(
    conn: Connection[Any], playlist_id: uuid.UUID, viewer: uuid.UUID
) -> list[Row]:
    """The playlist's entries in order, each with its track's metadata and the viewer's level on
    the track (``authz.TRACK_LEVEL_SQL``: the caller decides what of it the viewer may see), so
    reading a playlist needs no second authorization query."""
    return conn.execute(
        f"""SELECT e.id, e.track_id, e.added_at,
                   t.title, t.artists, t.album, t.duration_ms, {TRACK_LEVEL_SQL} AS level
            FROM playlist_entries e JOIN tracks t ON t.id = e.track_id
            WHERE e.playlist_id = %(playlist)s ORDER BY e.position, e.id""",
        {"playlist": playlist_id, "viewer": viewer},
    ).fetchall()


def insert_entry(conn: Connection[Any], values: Row) -> Row:
    """Insert an entry at ``position`` (renumber afterwards); it, with its track's metadata."""
    row: Row | None = conn.execute(
        """WITH inserted AS (
               INSERT INTO playlist_entries (id, playlist_id, track_id, position, added_by,
                                             added_at)
               VALUES (%(id)s, %(playlist_id)s, %(track_id)s, %(position)s, %(added_by)s,
                       %(added_at)s)
               RETURNING id, track_id, added_at)
           SELECT i.id, i.track_id, i.added_at, t.title, t.artists, t.album, t.duration_ms
           FROM inserted i JOIN tracks t ON t.id = i.track_id""",
        values,
    ).fetchone()
    assert row is not None
    return row


def delete_entry(
    conn: Connection[Any], playlist_id: uuid.UUID, entry_id: uuid.UUID
) -> uuid.UUID | None:
    """Delete the entry if it belongs to the playlist; its track id, or None."""
    row = conn.execute(
        "DELETE FROM playlist_entries WHERE id = %s AND playlist_id = %s RETURNING track_id",
        (entry_id, playlist_id),
    ).fetchone()
    return None if row is None else row["track_id"]


def renumber(conn: Connection[Any], playlist_id: uuid.UUID, entry_ids: list[uuid.UUID]) -> None:
    """Give the entries positions 0..n-1 in the order of ``entry_ids``, in one statement."""
    if not entry_ids:
        return
    conn.execute(
        """UPDATE playlist_entries e SET position = o.ord - 1
           FROM unnest(%(ids)s::uuid[]) WITH ORDINALITY AS o(id, ord)
           WHERE e.playlist_id = %(playlist_id)s AND e.id = o.id AND e.position <> o.ord - 1""",
        {"ids": entry_ids, "playlist_id": playlist_id},
    )


def bump(
    conn: Connection[Any], playlist_id: uuid.UUID, *, at: datetime, changes: Row | None = None
) -> Row:
    """Apply ``changes`` (editable fields) and move the playlist to its next version."""
    changes = {name: value for name, value in (changes or {}).items() if name in EDITABLE}
    assignments: list[sql.Composable] = [
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in changes
    ]
    assignments += [sql.SQL("version = version + 1"), sql.SQL("updated_at = %(at)s")]
    query = sql.SQL("UPDATE playlists SET {} WHERE id = %(id)s RETURNING {}").format(
        sql.SQL(", ").join(assignments), sql.SQL(PLAYLIST_COLUMNS)
    )
    row: Row | None = conn.execute(query, {**changes, "at": at, "id": playlist_id}).fetchone()
    assert row is not None  # the caller holds the row's lock
    return row


def delete_playlist(conn: Connection[Any], playlist_id: uuid.UUID) -> bool:
    deleted = conn.execute("DELETE FROM playlists WHERE id = %s", (playlist_id,)).rowcount
    return deleted == 1
