"""The playlists' use cases; handlers only parse and call these.

Every write is one transaction: check the caller's access (``services.core.authz``), lock the
playlist's row, check the version the client edited (if it sent one), change, renumber the
entries 0..n-1, and move the playlist to its next version. Two clients editing from the same
version therefore take turns on the lock, and the second is told the version it missed (409)
instead of overwriting the first. Usage events are emitted once the transaction committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.core import authz
from services.core.errors import NotFound, ProblemError
from services.core.ids import uuid7
from services.core.pagination import decode_cursor, encode_cursor, invalid_cursor
from services.core.principal import Principal
from services.playlists import repository as repo
from services.playlists.models import (
    MAX_ENTRIES,
    PlaylistCreate,
    PlaylistEntryAdded,
    PlaylistEntryOut,
    PlaylistEntryTrack,
    PlaylistOut,
    PlaylistPage,
    PlaylistPatch,
    PlaylistSummary,
)

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg_pool import ConnectionPool

    from ingest.events.emitter import Emitter
    from services.core.clock import Clock

Row = dict[str, Any]


def version_conflict(expected: int, current: int) -> ProblemError:
    return ProblemError(
        409,
        "version_conflict",
        "Playlist changed meanwhile",
        f"You edited version {expected}; the playlist is now at version {current}. "
        "Reload it and apply your change again.",
        current_version=current,
    )


def version_required() -> ProblemError:
    return ProblemError(
        428,
        "version_required",
        "Version required",
        "Send the version the new order was made from: an If-Match header with the playlist's "
        "ETag, or `version` in the body.",
    )


def entry_not_found(entry_id: uuid.UUID) -> NotFound:
    return NotFound("entry_not_found", "Entry", id=str(entry_id))


@dataclass
class Playlists:
    pool: ConnectionPool[Any]
    clock: Clock
    events: Emitter

    # -- reads ------------------------------------------------------------------------------

    def list_playlists(
        self, caller: Principal, *, scope: str, limit: int, cursor: str | None
    ) -> PlaylistPage:
        cursor_scope = f"playlists|{scope}"
        after = _cursor_position(decode_cursor(cursor, scope=cursor_scope)) if cursor else None
        with self.pool.connection() as conn:
            rows = repo.list_playlists(
                conn, caller.user_id, scope=scope, after=after, limit=limit + 1
            )
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = encode_cursor(
                {"scope": cursor_scope, "at": last["created_at"].isoformat(), "id": last["id"]}
            )
        items = [_summary(row, row["track_count"], row["level"]) for row in rows]
        return PlaylistPage(items=items, next_cursor=next_cursor)

    def get_playlist(self, caller: Principal, playlist_id: uuid.UUID) -> PlaylistOut:
        with self.pool.connection() as conn:
            level = authz.require(conn, caller.user_id, "view", "playlist", playlist_id)
            row = repo.get_playlist(conn, playlist_id)
            if row is None:  # deleted meanwhile
                raise authz.not_found("playlist")
            return self._playlist_out(conn, caller, row, level)

    # -- writes -----------------------------------------------------------------------------

    def create_playlist(self, caller: Principal, request: PlaylistCreate) -> PlaylistOut:
        now = self.clock.now()
        values = {
            "id": uuid7(now),
            "owner_id": caller.user_id,
            "title": request.title,
            "description": request.description,
            "at": now,
        }
        with self.pool.connection() as conn:
            row = repo.insert_playlist(conn, values)
        self._emit(caller, "playlist_created", playlist_id=row["id"])
        return _playlist(row, authz.OWNER, [])

    def update_playlist(
        self,
        caller: Principal,
        playlist_id: uuid.UUID,
        patch: PlaylistPatch,
        expected_version: int | None,
    ) -> PlaylistOut:
        changes = patch.changes()
        with self._locked(caller, playlist_id, expected_version) as (conn, row, level):
            if not changes:  # nothing to change: no new version
                return self._playlist_out(conn, caller, row, level)
            row = repo.bump(conn, playlist_id, at=self.clock.now(), changes=changes)
            playlist = self._playlist_out(conn, caller, row, level)
        self._emit(
            caller,
            "playlist_updated",
            playlist_id=playlist_id,
            properties={"fields": list(changes)},
        )
        return playlist

    def delete_playlist(self, caller: Principal, playlist_id: uuid.UUID) -> None:
        with self.pool.connection() as conn:
            authz.require(conn, caller.user_id, "manage", "playlist", playlist_id)
            if not repo.delete_playlist(conn, playlist_id):  # deleted meanwhile
                raise authz.not_found("playlist")
        self._emit(caller, "playlist_deleted", playlist_id=playlist_id)

    def add_track(
        self,
        caller: Principal,
        playlist_id: uuid.UUID,
        track_id: uuid.UUID,
        position: int | None,
        expected_version: int | None,
    ) -> PlaylistEntryAdded:
        with self.pool.connection() as conn:
            # Both checks in one query: edit the playlist, and stream the track being added.
            found = authz.levels_by_type(
                conn, caller.user_id, {"playlist": [playlist_id], "track": [track_id]}
            )
            authz.check("playlist", "edit", found["playlist"].get(playlist_id, 0))
            track_level = found["track"].get(track_id, 0)
            authz.check("track", "stream", track_level)
            self._lock(conn, playlist_id, expected_version)
            ids = [entry["id"] for entry in repo.entry_refs(conn, playlist_id)]
            if len(ids) >= MAX_ENTRIES:
                raise ProblemError(
                    422,
                    "playlist_full",
                    "Playlist full",
                    f"A playlist holds at most {MAX_ENTRIES} entries.",
                    max_entries=MAX_ENTRIES,
                )
            index = len(ids) if position is None else position
            if index > len(ids):
                raise ProblemError(
                    422,
                    "position_out_of_range",
                    "Position out of range",
                    f"The playlist has {len(ids)} entries: the position must be 0..{len(ids)}.",
                    entry_count=len(ids),
                )
            now = self.clock.now()
            entry_id = uuid7(now)
            entry = repo.insert_entry(
                conn,
                {
                    "id": entry_id,
                    "playlist_id": playlist_id,
                    "track_id": track_id,
                    "position": index,
                    "added_by": caller.user_id,
                    "added_at": now,
                },
            )
            ids.insert(index, entry_id)
            repo.renumber(conn, playlist_id, ids)
            row = repo.bump(conn, playlist_id, at=now)
        self._emit(caller, "playlist_track_added", playlist_id=playlist_id, track_id=track_id)
        return PlaylistEntryAdded(
            entry=_entry(entry, index, track_level), playlist_version=row["version"]
        )

    def remove_entry(
        self,
        caller: Principal,
        playlist_id: uuid.UUID,
        entry_id: uuid.UUID,
        expected_version: int | None,
    ) -> int:
        """Remove one entry; the playlist's new version."""
        with self._locked(caller, playlist_id, expected_version) as (conn, _, _level):
            track_id = repo.delete_entry(conn, playlist_id, entry_id)
            if track_id is None:
                raise entry_not_found(entry_id)
            ids = [entry["id"] for entry in repo.entry_refs(conn, playlist_id)]
            repo.renumber(conn, playlist_id, ids)
            row = repo.bump(conn, playlist_id, at=self.clock.now())
        self._emit(caller, "playlist_track_removed", playlist_id=playlist_id, track_id=track_id)
        version: int = row["version"]
        return version

    def reorder(
        self,
        caller: Principal,
        playlist_id: uuid.UUID,
        entry_ids: list[uuid.UUID],
        expected_version: int | None,
    ) -> PlaylistOut:
        with self._locked(caller, playlist_id, expected_version) as (conn, current, level):
            if expected_version is None:  # asked only once the caller may edit it
                raise version_required()
            ids = [entry["id"] for entry in repo.entry_refs(conn, playlist_id)]
            if len(entry_ids) != len(ids) or set(entry_ids) != set(ids):
                raise ProblemError(
                    409,
                    "order_mismatch",
                    "Order does not match the playlist",
                    "The new order must name every entry of the playlist exactly once: reload "
                    "the playlist and order its current entries.",
                    current_version=current["version"],
                    entry_ids=[str(i) for i in ids],
                )
            repo.renumber(conn, playlist_id, entry_ids)
            row = repo.bump(conn, playlist_id, at=self.clock.now())
            playlist = self._playlist_out(conn, caller, row, level)
        self._emit(caller, "playlist_reordered", playlist_id=playlist_id)
        return playlist

    # -- helpers ----------------------------------------------------------------------------

    @contextmanager
    def _locked(
        self, caller: Principal, playlist_id: uuid.UUID, expected_version: int | None
    ) -> Iterator[tuple[Connection[Any], Row, int]]:
        """One transaction in which the caller may edit the playlist, whose row is locked and
        at ``expected_version`` (when given): (connection, row, caller's level)."""
        with self.pool.connection() as conn:
            level = authz.require(conn, caller.user_id, "edit", "playlist", playlist_id)
            row = self._lock(conn, playlist_id, expected_version)
            yield conn, row, level

    @staticmethod
    def _lock(conn: Connection[Any], playlist_id: uuid.UUID, expected_version: int | None) -> Row:
        row = repo.lock_playlist(conn, playlist_id)
        if row is None:  # deleted meanwhile
            raise authz.not_found("playlist")
        if expected_version is not None and expected_version != row["version"]:
            raise version_conflict(expected_version, row["version"])
        return row

    def _playlist_out(
        self, conn: Connection[Any], caller: Principal, row: Row, level: int
    ) -> PlaylistOut:
        """The playlist with its entries; tracks the caller may not see are shown as gone."""
        entries = repo.entries_with_tracks(conn, row["id"], caller.user_id)
        out = [_entry(entry, index, entry["level"]) for index, entry in enumerate(entries)]
        return _playlist(row, level, out)

    def _emit(self, caller: Principal, event_type: str, **columns: Any) -> None:
        self.events.emit(event_type, actor_type="user", actor_id=str(caller.user_id), **columns)


def _summary(row: Row, track_count: int, level: int) -> PlaylistSummary:
    return PlaylistSummary.model_validate(
        {
            **row,
            "track_count": track_count,
            "permission": authz.permission_name("playlist", level),
        }
    )


def _playlist(row: Row, level: int, entries: list[PlaylistEntryOut]) -> PlaylistOut:
    summary = _summary(row, len(entries), level)
    return PlaylistOut(**summary.model_dump(), entries=entries)


def _entry(row: Row, index: int, track_level: int) -> PlaylistEntryOut:
    """An entry as a caller at ``track_level`` on its track sees it: nothing of a track they
    may not see."""
    track = None
    if track_level > 0:
        track = PlaylistEntryTrack.model_validate(
            {
                "id": row["track_id"],
                "title": row["title"],
                "artists": row["artists"],
                "album": row["album"],
                "duration_ms": row["duration_ms"],
                "permission": authz.permission_name("track", track_level),
            }
        )
    return PlaylistEntryOut(
        id=row["id"], position=index, added_at=row["added_at"], track=track, available=bool(track)
    )


def _cursor_position(state: dict[str, Any]) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor resumes after; a cursor tampered with is a 400."""
    try:
        at = datetime.fromisoformat(str(state["at"]))
        if at.tzinfo is None:
            raise ValueError(state["at"])
        return at, uuid.UUID(str(state["id"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise invalid_cursor() from exc


def playlists(events: Emitter) -> Playlists:
    """The playlists over this process's dependencies (built on first use)."""
    from services.core.wiring import dependencies

    deps = dependencies()
    return Playlists(deps.pool, deps.clock, events)
