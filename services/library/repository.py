"""SQL for uploads and tracks.

Uploads are private to their owner, so their queries are scoped to the owner. Tracks can be
shared: who may read or change one is decided by ``services.core.authz`` before these run.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg import Connection, sql

from services.core.authz import SHARED_TRACK_IDS_SQL, TRACK_LEVEL_SQL

TRACK_COLUMNS = (
    "id, owner_id, title, artists, album, year, genre, mood, tags, instrumental, isrc, "
    "bpm::float8 AS bpm, musical_key, "
    "duration_ms, bitrate, sample_rate, channels, container, codec, content_type, file_extension, "
    "size_bytes, sha256, original_filename, object_key, version, created_at, updated_at"
)
# Sort key -> the SQL expression it orders by.
SORTS: dict[str, str] = {
    "created": "created_at",
    "title": "lower(title)",
    "duration": "duration_ms",
}
Row = dict[str, Any]


def insert_upload(conn: Connection[Any], values: Row) -> None:
    conn.execute(
        """INSERT INTO uploads (id, owner_id, filename, content_type, declared_size, object_key,
                                multipart_id, created_at, expires_at)
           VALUES (%(id)s, %(owner_id)s, %(filename)s, %(content_type)s, %(declared_size)s,
                   %(object_key)s, %(multipart_id)s, %(created_at)s, %(expires_at)s)""",
        values,
    )


def lock_upload(conn: Connection[Any], owner_id: uuid.UUID, upload_id: uuid.UUID) -> Row | None:
    row: Row | None = conn.execute(
        "SELECT * FROM uploads WHERE id = %s AND owner_id = %s FOR UPDATE",
        (upload_id, owner_id),
    ).fetchone()
    return row


def claim_upload(conn: Connection[Any], upload_id: uuid.UUID, *, lease_until: datetime) -> None:
    """Mark the (locked) upload as being completed, until ``lease_until``."""
    conn.execute(
        "UPDATE uploads SET status = 'processing', lease_until = %s WHERE id = %s",
        (lease_until, upload_id),
    )


def release_upload(conn: Connection[Any], upload_id: uuid.UUID, *, lease_until: datetime) -> bool:
    """Hand a claimed upload back (pending) if the claim is still ours; False if it was not."""
    released = conn.execute(
        """UPDATE uploads SET status = 'pending', lease_until = NULL
           WHERE id = %s AND status = 'processing' AND lease_until = %s""",
        (upload_id, lease_until),
    ).rowcount
    return released == 1


def expired_uploads(conn: Connection[Any], now: datetime, limit: int) -> list[Row]:
    """Ids of uploads past their expiry, oldest first: pending ones, and claimed ones whose
    completion died (lease run out); a claim with a valid lease is still being worked on."""
    return conn.execute(
        """SELECT id FROM uploads
           WHERE status IN ('pending', 'processing') AND expires_at < %(now)s
             AND (status = 'pending' OR lease_until < %(now)s)
           ORDER BY expires_at LIMIT %(limit)s""",
        {"now": now, "limit": limit},
    ).fetchall()


def lock_expirable_upload(conn: Connection[Any], upload_id: uuid.UUID, now: datetime) -> Row | None:
    """The upload, locked, if still pending or its claim's lease ran out (re-checked under the
    lock: a completion may have claimed it since it was listed); SKIP LOCKED so concurrent
    sweepers share work."""
    row: Row | None = conn.execute(
        """SELECT * FROM uploads
           WHERE id = %(id)s
             AND (status = 'pending' OR (status = 'processing' AND lease_until < %(now)s))
           FOR UPDATE SKIP LOCKED""",
        {"id": upload_id, "now": now},
    ).fetchone()
    return row


def finish_upload(
    conn: Connection[Any],
    upload_id: uuid.UUID,
    *,
    status: str,
    at: datetime,
    track_id: uuid.UUID | None = None,
    rejection_code: str | None = None,
) -> None:
    conn.execute(
        """UPDATE uploads SET status = %s, track_id = %s, rejection_code = %s, finished_at = %s,
                              lease_until = NULL
           WHERE id = %s""",
        (status, track_id, rejection_code, at, upload_id),
    )


def track_id_by_checksum(
    conn: Connection[Any], owner_id: uuid.UUID, sha256: str
) -> uuid.UUID | None:
    row = conn.execute(
        "SELECT id FROM tracks WHERE owner_id = %s AND sha256 = %s", (owner_id, sha256)
    ).fetchone()
    return None if row is None else row["id"]


def insert_track(conn: Connection[Any], values: Row) -> Row:
    columns = list(values)
    query = sql.SQL("INSERT INTO tracks ({}) VALUES ({}) RETURNING {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(map(sql.Placeholder, columns)),
        sql.SQL(TRACK_COLUMNS),
    )
    row: Row | None = conn.execute(query, values).fetchone()
    assert row is not None
    return row


def get_track(conn: Connection[Any], track_id: uuid.UUID) -> Row | None:
    row: Row | None = conn.execute(
        f"SELECT {TRACK_COLUMNS} FROM tracks WHERE id = %s", (track_id,)
    ).fetchone()
    return row


# Which tracks a listing covers, for `%(viewer)s`.
SCOPES: dict[str, str] = {
    "owned": "t.owner_id = %(viewer)s",
    "shared": f"t.owner_id <> %(viewer)s AND t.id IN ({SHARED_TRACK_IDS_SQL})",
    "all": f"(t.owner_id = %(viewer)s OR t.id IN ({SHARED_TRACK_IDS_SQL}))",
}


def list_tracks(
    conn: Connection[Any],
    viewer: uuid.UUID,
    *,
    scope: str,
    sort: str,
    after: tuple[Any, uuid.UUID] | None,
    genre: str | None,
    artist: str | None,
    limit: int,
) -> list[Row]:
    """One page of the tracks in ``scope`` the viewer may see, each with the viewer's level."""
    descending = sort.startswith("-")
    expr = SORTS[sort.lstrip("-")]
    # A playlist share reaching a track its owner may no longer stream makes it invisible.
    where = [SCOPES[scope], f"{TRACK_LEVEL_SQL} > 0"]
    params: dict[str, Any] = {"viewer": viewer, "limit": limit}
    if genre:
        where.append("lower(genre) = lower(%(genre)s)")
        params["genre"] = genre
    if artist:
        where.append("EXISTS (SELECT 1 FROM unnest(artists) a WHERE lower(a) = lower(%(artist)s))")
        params["artist"] = artist
    if after is not None:
        where.append(f"({expr}, id) {'<' if descending else '>'} (%(after_value)s, %(after_id)s)")
        params["after_value"], params["after_id"] = after
    direction = "DESC" if descending else "ASC"
    query = (
        f"SELECT {TRACK_COLUMNS}, {expr} AS sort_value, {TRACK_LEVEL_SQL} AS level FROM tracks t "
        f"WHERE {' AND '.join(where)} ORDER BY {expr} {direction}, id {direction} "
        "LIMIT %(limit)s"
    )
    return conn.execute(query, params).fetchall()


def update_track(
    conn: Connection[Any],
    track_id: uuid.UUID,
    changes: Row,
    *,
    expected_version: int | None,
    at: datetime,
) -> Row | None:
    assignments = [
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in changes
    ]
    query = sql.SQL(
        "UPDATE tracks SET {}, version = version + 1, updated_at = %(at)s "
        "WHERE id = %(id)s {} RETURNING {}"
    ).format(
        sql.SQL(", ").join(assignments),
        sql.SQL("AND version = %(expected)s" if expected_version is not None else ""),
        sql.SQL(TRACK_COLUMNS),
    )
    params = {**changes, "at": at, "id": track_id, "expected": expected_version}
    row: Row | None = conn.execute(query, params).fetchone()
    return row


def delete_track(conn: Connection[Any], track_id: uuid.UUID) -> str | None:
    """Delete the row; return the object key whose bytes the caller removes after commit."""
    row = conn.execute(
        "DELETE FROM tracks WHERE id = %s RETURNING object_key", (track_id,)
    ).fetchone()
    return None if row is None else row["object_key"]
