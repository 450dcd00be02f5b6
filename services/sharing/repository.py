"""SQL for shares.

Who may see, make or revoke a share is decided by ``services.core.authz`` before these run.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg import Connection, sql

Row = dict[str, Any]

# A share as the API shows it: with its object's title and the names of the two users.
_SELECT = """
SELECT s.id, s.object_type, COALESCE(s.track_id, s.playlist_id) AS object_id,
       COALESCE(t.title, p.title) AS object_title,
       s.owner_id, o.name AS owner_name,
       s.grantee_id, s.grantee_email, g.name AS grantee_name,
       s.permission, s.version, s.created_at, s.updated_at
  FROM shares s
  JOIN users o ON o.id = s.owner_id
  LEFT JOIN users g ON g.id = s.grantee_id
  LEFT JOIN tracks t ON t.id = s.track_id
  LEFT JOIN playlists p ON p.id = s.playlist_id
"""

# Object type -> the shares column naming the object.
OBJECT_COLUMNS: dict[str, str] = {"track": "track_id", "playlist": "playlist_id"}


def user(conn: Connection[Any], user_id: uuid.UUID) -> Row | None:
    row: Row | None = conn.execute(
        "SELECT id, email, name FROM users WHERE id = %s", (user_id,)
    ).fetchone()
    return row


def verified_user_by_email(conn: Connection[Any], email: str) -> Row | None:
    """The account whose identity provider vouched for ``email`` (lowercase); of several, the
    earliest created, so the answer does not change when another account claims the address."""
    row: Row | None = conn.execute(
        """SELECT id, email, name FROM users
            WHERE lower(email) = %s AND email_verified
            ORDER BY created_at, id LIMIT 1""",
        (email,),
    ).fetchone()
    return row


def upsert_share(conn: Connection[Any], values: Row) -> tuple[uuid.UUID, bool] | None:
    """Insert the share, or give the live one for the same object and grantee the new
    permission (version + 1; unchanged when the permission is the same).

    The partial unique indexes decide which share is "the same", so two concurrent requests
    cannot make two. Returns (share id, created), or None when the conflicting share was
    revoked between the insert and this read (the caller tries again).
    """
    column = OBJECT_COLUMNS[values["object_type"]]
    grantee = "grantee_id" if values["grantee_id"] is not None else "grantee_email"
    predicate = (
        "revoked_at IS NULL AND grantee_id IS NOT NULL"
        if grantee == "grantee_id"
        else "revoked_at IS NULL AND grantee_id IS NULL"
    )
    query = sql.SQL(
        """INSERT INTO shares (id, owner_id, object_type, {column}, grantee_id, grantee_email,
                               permission, created_at, updated_at)
           VALUES (%(id)s, %(owner_id)s, %(object_type)s, %(object_id)s, %(grantee_id)s,
                   %(grantee_email)s, %(permission)s, %(now)s, %(now)s)
           ON CONFLICT ({column}, {grantee}) WHERE {predicate}
           DO UPDATE SET permission = EXCLUDED.permission, version = shares.version + 1,
                         updated_at = EXCLUDED.updated_at
            WHERE shares.permission IS DISTINCT FROM EXCLUDED.permission
           RETURNING id"""
    ).format(
        column=sql.Identifier(column),
        grantee=sql.Identifier(grantee),
        predicate=sql.SQL(predicate),
    )
    row = conn.execute(query, values).fetchone()
    if row is not None:
        return row["id"], row["id"] == values["id"]
    # The live share already has this permission: nothing to change.
    same = sql.SQL(
        "SELECT id FROM shares WHERE {column} = %(object_id)s AND {grantee} = %(grantee)s "
        "AND {predicate}"
    ).format(
        column=sql.Identifier(column),
        grantee=sql.Identifier(grantee),
        predicate=sql.SQL(predicate),
    )
    existing = conn.execute(same, {**values, "grantee": values[grantee]}).fetchone()
    return None if existing is None else (existing["id"], False)


def get_share(conn: Connection[Any], share_id: uuid.UUID) -> Row | None:
    """The live share with that id, as the API shows it."""
    row: Row | None = conn.execute(
        _SELECT + " WHERE s.id = %s AND s.revoked_at IS NULL", (share_id,)
    ).fetchone()
    return row


def list_shares(
    conn: Connection[Any],
    viewer: uuid.UUID,
    *,
    direction: str,
    object_type: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Row]:
    """One page of the viewer's live shares, newest first: made for them (incoming, only
    attached ones) or made by them (outgoing, pending ones too)."""
    party = "s.grantee_id" if direction == "incoming" else "s.owner_id"
    where = [f"{party} = %(viewer)s", "s.revoked_at IS NULL"]
    params: dict[str, Any] = {"viewer": viewer, "limit": limit}
    if object_type is not None:
        where.append("s.object_type = %(object_type)s")
        params["object_type"] = object_type
    if after is not None:
        where.append("(s.created_at, s.id) < (%(after_at)s, %(after_id)s)")
        params["after_at"], params["after_id"] = after
    query = (
        f"{_SELECT} WHERE {' AND '.join(where)} "
        "ORDER BY s.created_at DESC, s.id DESC LIMIT %(limit)s"
    )
    return conn.execute(query, params).fetchall()


def revoke_share(conn: Connection[Any], share_id: uuid.UUID, at: datetime) -> Row | None:
    """Revoke the live share; its id and object, or None if it was revoked meanwhile."""
    row: Row | None = conn.execute(
        """UPDATE shares SET revoked_at = %(at)s, updated_at = %(at)s, version = version + 1
            WHERE id = %(id)s AND revoked_at IS NULL
        RETURNING id, object_type, COALESCE(track_id, playlist_id) AS object_id, permission""",
        {"id": share_id, "at": at},
    ).fetchone()
    return row
