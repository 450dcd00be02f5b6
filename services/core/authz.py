"""Who may do what: the one answer to "may user X do Y on object Z", for every service.

A user's access to an object is a level: owning it is the highest; a share grants its
permission; a shared playlist grants ``stream`` on its tracks, as long as the playlist's owner may
stream them (rights reached through a playlist do not pass through another playlist). Each
action needs a minimum level. An object the caller cannot see at all is a 404, so ids of other
users' objects reveal nothing; one they can see but not act on in that way is a 403.

Every check is one query, whatever the number of objects asked about.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from services.core.errors import NotFound, ProblemError

if TYPE_CHECKING:
    from psycopg import Connection

ObjectType = Literal["track", "playlist", "pitch", "share"]
Action = Literal["view", "stream", "download", "edit", "manage"]

OWNER = 9
# Share permission -> level, per object type. Owning is OWNER on every type.
SHARE_LEVELS: dict[str, dict[str, int]] = {
    "track": {"view": 1, "stream": 2, "download": 3},
    "playlist": {"view": 1, "edit": 2},
    "pitch": {},
    # A share is seen by its grantee too (as "grantee"); only its owner changes or revokes it.
    "share": {"grantee": 1},
}
# Action -> the level it needs, per object type. "manage" (edit the object itself, delete,
# share, pitch) is the owner's alone.
REQUIRED: dict[str, dict[str, int]] = {
    "track": {"view": 1, "stream": 2, "download": 3, "manage": OWNER},
    "playlist": {"view": 1, "stream": 1, "edit": 2, "manage": OWNER},
    "pitch": {"view": OWNER, "manage": OWNER},
    "share": {"view": 1, "manage": OWNER},
}
_NOUN = {"track": "Track", "playlist": "Playlist", "pitch": "Pitch", "share": "Share"}


def _permission_case(object_type: str, column: str) -> str:
    whens = " ".join(f"WHEN '{p}' THEN {lvl}" for p, lvl in SHARE_LEVELS[object_type].items())
    return f"CASE {column} {whens} ELSE 0 END"


# The caller's level on track `t`, for `%(viewer)s`. Also used by listings, so "visible" means
# one thing everywhere. CASE first: the owner's own rows cost no share lookups.
TRACK_LEVEL_SQL = f"""CASE WHEN t.owner_id = %(viewer)s THEN {OWNER} ELSE GREATEST(
    COALESCE((SELECT max({_permission_case("track", "s.permission")}) FROM shares s
              WHERE s.track_id = t.id AND s.grantee_id = %(viewer)s
                AND s.revoked_at IS NULL), 0),
    CASE WHEN EXISTS (
        SELECT 1 FROM playlist_entries e
        JOIN shares ps ON ps.playlist_id = e.playlist_id
        JOIN playlists p ON p.id = e.playlist_id
        WHERE e.track_id = t.id AND ps.grantee_id = %(viewer)s AND ps.revoked_at IS NULL
          AND (p.owner_id = t.owner_id OR EXISTS (
              SELECT 1 FROM shares os
              WHERE os.track_id = t.id AND os.grantee_id = p.owner_id
                AND os.revoked_at IS NULL AND os.permission IN ('stream', 'download')))
    ) THEN {SHARE_LEVELS["track"]["stream"]} ELSE 0 END) END"""

# Ids of tracks shared with `%(viewer)s`, directly or through a playlist (a superset: filter on
# TRACK_LEVEL_SQL, which also drops what a playlist's owner may no longer stream).
SHARED_TRACK_IDS_SQL = """
    SELECT s.track_id FROM shares s
    WHERE s.grantee_id = %(viewer)s AND s.revoked_at IS NULL AND s.track_id IS NOT NULL
    UNION
    SELECT e.track_id FROM shares s JOIN playlist_entries e ON e.playlist_id = s.playlist_id
    WHERE s.grantee_id = %(viewer)s AND s.revoked_at IS NULL"""

# Who may see track `t` (level > 0): the same rules as TRACK_LEVEL_SQL, asked the other way
# round, for search documents. An array of user ids; tests hold the two to agreeing.
TRACK_VIEWERS_SQL = """ARRAY(
    SELECT t.owner_id
    UNION
    SELECT s.grantee_id FROM shares s
    WHERE s.track_id = t.id AND s.grantee_id IS NOT NULL AND s.revoked_at IS NULL
    UNION
    SELECT ps.grantee_id FROM playlist_entries e
    JOIN shares ps ON ps.playlist_id = e.playlist_id
    JOIN playlists p ON p.id = e.playlist_id
    WHERE e.track_id = t.id AND ps.grantee_id IS NOT NULL AND ps.revoked_at IS NULL
      AND (p.owner_id = t.owner_id OR EXISTS (
          SELECT 1 FROM shares os
          WHERE os.track_id = t.id AND os.grantee_id = p.owner_id
            AND os.revoked_at IS NULL AND os.permission IN ('stream', 'download'))))"""

PLAYLIST_LEVEL_SQL = f"""CASE WHEN p.owner_id = %(viewer)s THEN {OWNER} ELSE
    COALESCE((SELECT max({_permission_case("playlist", "s.permission")}) FROM shares s
              WHERE s.playlist_id = p.id AND s.grantee_id = %(viewer)s
                AND s.revoked_at IS NULL), 0) END"""

_LEVEL_QUERIES: dict[str, str] = {
    "track": f"SELECT t.id, {TRACK_LEVEL_SQL} AS level FROM tracks t WHERE t.id = ANY(%(ids)s)",
    "playlist": (
        f"SELECT p.id, {PLAYLIST_LEVEL_SQL} AS level FROM playlists p WHERE p.id = ANY(%(ids)s)"
    ),
    "pitch": (
        f"SELECT id, CASE WHEN owner_id = %(viewer)s THEN {OWNER} ELSE 0 END AS level "
        "FROM pitches WHERE id = ANY(%(ids)s)"
    ),
    "share": (
        f"SELECT id, CASE WHEN owner_id = %(viewer)s THEN {OWNER} "
        "WHEN grantee_id = %(viewer)s THEN 1 ELSE 0 END AS level "
        "FROM shares WHERE id = ANY(%(ids)s) AND revoked_at IS NULL"
    ),
}


class PermissionDenied(ProblemError):
    def __init__(
        self, object_type: str, action: str, permission: str, object_id: uuid.UUID | None = None
    ) -> None:
        noun = _NOUN[object_type].lower()
        extra: dict[str, Any] = {} if object_id is None else {"id": str(object_id)}
        super().__init__(
            403,
            "permission_denied",
            "Not allowed",
            f"Your access to this {noun} ({permission}) does not allow '{action}'.",
            permission=permission,
            action=action,
            **extra,
        )


def not_found(object_type: ObjectType, object_id: uuid.UUID | None = None) -> NotFound:
    extra = {} if object_id is None else {"id": str(object_id)}
    return NotFound(f"{object_type}_not_found", _NOUN[object_type], **extra)


def permission_name(object_type: ObjectType, level: int) -> str:
    """The name of a level as the API shows it: 'owner', or the share permission."""
    if level >= OWNER:
        return "owner"
    names = [p for p, lvl in SHARE_LEVELS[object_type].items() if lvl == level]
    return names[0] if names else "none"


def levels(
    conn: Connection[Any], viewer: uuid.UUID, object_type: ObjectType, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """The viewer's level on each of ``ids`` (absent or 0: not visible), in one query."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    rows = conn.execute(_LEVEL_QUERIES[object_type], {"viewer": viewer, "ids": wanted})
    return {row["id"]: int(row["level"]) for row in rows.fetchall()}


def levels_by_type(
    conn: Connection[Any], viewer: uuid.UUID, ids: Mapping[ObjectType, Iterable[uuid.UUID]]
) -> dict[ObjectType, dict[uuid.UUID, int]]:
    """``levels`` for objects of several types, still in one query."""
    wanted = {kind: list(dict.fromkeys(values)) for kind, values in ids.items()}
    wanted = {kind: values for kind, values in wanted.items() if values}
    found: dict[ObjectType, dict[uuid.UUID, int]] = {kind: {} for kind in ids}
    if not wanted:
        return found
    parts = [
        f"SELECT '{kind}' AS kind, id, level FROM ("
        + _LEVEL_QUERIES[kind].replace("%(ids)s", f"%(ids_{kind})s")
        + f") AS {kind}_levels"
        for kind in wanted
    ]
    params: dict[str, Any] = {"viewer": viewer}
    params.update({f"ids_{kind}": values for kind, values in wanted.items()})
    for row in conn.execute(" UNION ALL ".join(parts), params).fetchall():
        found[row["kind"]][row["id"]] = int(row["level"])
    return found


def check(
    object_type: ObjectType, action: Action, level: int, object_id: uuid.UUID | None = None
) -> None:
    """Raise unless ``level`` allows ``action``: 404 when nothing is visible, else 403."""
    if level <= 0:
        raise not_found(object_type, object_id)
    if level < REQUIRED[object_type][action]:
        raise PermissionDenied(object_type, action, permission_name(object_type, level), object_id)


def require(
    conn: Connection[Any],
    viewer: uuid.UUID,
    action: Action,
    object_type: ObjectType,
    object_id: uuid.UUID,
) -> int:
    """The viewer's level on the object, once it is known to allow ``action``."""
    level = levels(conn, viewer, object_type, [object_id]).get(object_id, 0)
    check(object_type, action, level)
    return level
