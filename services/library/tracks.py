"""Tracks: list, read, edit, delete, and the short-lived URLs that stream or download them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from services.core import authz
from services.core.errors import ProblemError
from services.core.objects.port import track_filename
from services.core.pagination import decode_cursor, encode_cursor, invalid_cursor
from services.core.principal import Principal
from services.library import repository as repo
from services.library.base import LibraryBase, track_out
from services.library.models import (
    MediaUrlOut,
    TrackOut,
    TrackPage,
    TrackPatch,
)


class Tracks(LibraryBase):
    def list_tracks(
        self,
        caller: Principal,
        *,
        sort: str,
        limit: int,
        cursor: str | None,
        genre: str | None,
        artist: str | None,
        scope: str = "owned",
    ) -> TrackPage:
        cursor_scope = f"{scope}|{sort}|{genre or ''}|{artist or ''}"
        after = None
        if cursor:
            after = _cursor_position(decode_cursor(cursor, scope=cursor_scope), sort.lstrip("-"))
        with self.pool.connection() as conn:
            rows = repo.list_tracks(
                conn,
                caller.user_id,
                scope=scope,
                sort=sort,
                after=after,
                genre=genre,
                artist=artist,
                limit=limit + 1,
            )
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = encode_cursor(
                {"scope": cursor_scope, "v": last["sort_value"], "id": last["id"]}
            )
        items = [track_out(row, row["level"]) for row in rows]
        return TrackPage(items=items, next_cursor=next_cursor)

    def get_track(self, caller: Principal, track_id: uuid.UUID) -> TrackOut:
        return track_out(*self._track_row(caller, track_id, "view"))

    def update_track(
        self,
        caller: Principal,
        track_id: uuid.UUID,
        patch: TrackPatch,
        expected_version: int | None,
    ) -> TrackOut:
        changes = {name: getattr(patch, name) for name in patch.model_fields_set}
        for name in ("artists", "tags"):  # lists clear to empty, never to null
            if name in changes and changes[name] is None:
                changes[name] = []
        if "title" in changes and changes["title"] is None:
            raise ProblemError(
                422, "validation_failed", "Request is not valid", "title cannot be cleared"
            )
        if not changes:
            return self.get_track(caller, track_id)
        with self.pool.connection() as conn:
            authz.require(conn, caller.user_id, "manage", "track", track_id)
            row = repo.update_track(
                conn,
                track_id,
                changes,
                expected_version=expected_version,
                at=self.clock.now(),
            )
            if row is None:
                current = repo.get_track(conn, track_id)
                if current is None:  # deleted meanwhile
                    raise authz.not_found("track")
                raise ProblemError(
                    412,
                    "version_mismatch",
                    "Track changed meanwhile",
                    f"You edited version {expected_version}; the track is now at version "
                    f"{current['version']}. Reload it and apply your change again.",
                    current_version=current["version"],
                )
        self._emit(
            caller, "track_updated", track_id=track_id, properties={"fields": sorted(changes)}
        )
        return track_out(row, authz.OWNER)

    def delete_track(self, caller: Principal, track_id: uuid.UUID) -> None:
        with self.pool.connection() as conn:
            authz.require(conn, caller.user_id, "manage", "track", track_id)
            key = repo.delete_track(conn, track_id)
        if key is None:  # deleted meanwhile
            raise authz.not_found("track")
        self.objects.delete(key)
        self._emit(caller, "track_deleted", track_id=track_id)

    def media_url(self, caller: Principal, track_id: uuid.UUID, *, download: bool) -> MediaUrlOut:
        row, _ = self._track_row(caller, track_id, "download" if download else "stream")
        expires_at = self.clock.now() + timedelta(seconds=self.settings.media_url_ttl_seconds)
        filename = track_filename(row) if download else None
        url = self.objects.media_url(
            row["object_key"],
            content_type=row["content_type"],
            expires_at=expires_at,
            download_filename=filename,
        )
        if download:
            self._emit(caller, "track_downloaded", track_id=track_id, bytes=row["size_bytes"])
        else:
            self._emit(caller, "track_stream_started", track_id=track_id)
        return MediaUrlOut(
            url=url, expires_at=expires_at, content_type=row["content_type"], filename=filename
        )

    def _track_row(
        self, caller: Principal, track_id: uuid.UUID, action: authz.Action
    ) -> tuple[dict[str, Any], int]:
        """The track's row and the caller's level, once the caller may ``action`` it."""
        with self.pool.connection() as conn:
            level = authz.require(conn, caller.user_id, action, "track", track_id)
            row = repo.get_track(conn, track_id)
        if row is None:  # deleted meanwhile
            raise authz.not_found("track")
        return row, level


_CURSOR_VALUE_TYPES: dict[str, Any] = {
    "created": datetime.fromisoformat,
    "title": str,
    "duration": int,
}


def _cursor_position(state: dict[str, Any], sort_key: str) -> tuple[Any, uuid.UUID]:
    """The (sort value, id) a cursor resumes after; a cursor tampered with is a 400."""
    value = state.get("v")
    try:
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise TypeError(value)
        typed = _CURSOR_VALUE_TYPES[sort_key](value)
        if sort_key == "duration" and not isinstance(value, int):
            raise TypeError(value)
        return typed, uuid.UUID(str(state.get("id")))
    except (TypeError, ValueError) as exc:
        raise invalid_cursor() from exc
