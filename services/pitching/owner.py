"""Pitches as their owners see them: create, list, read with engagement, change, revoke."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from services.core import authz
from services.core.errors import ProblemError
from services.core.ids import uuid7
from services.core.pagination import decode_cursor, encode_cursor, invalid_cursor
from services.core.principal import Principal
from services.pitching import repository as repo
from services.pitching.engagement import engagement_by_recipient, nothing_yet
from services.pitching.links import hash_password, new_token
from services.pitching.models import (
    MAX_RECIPIENTS,
    PitchCreate,
    PitchOut,
    PitchPage,
    PitchPatch,
    PitchStatus,
    PitchSummary,
    PitchTrackOut,
    RecipientIn,
    RecipientOut,
)

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg_pool import ConnectionPool

    from ingest.events.emitter import Emitter
    from services.core.clock import Clock
    from services.core.settings import Settings

Row = dict[str, Any]
DEFAULT_LIFETIME = timedelta(days=30)
MAX_LIFETIME = timedelta(days=365)


@dataclass
class Pitches:
    pool: ConnectionPool[Any]
    clock: Clock
    settings: Settings
    events: Emitter

    def create(self, caller: Principal, request: PitchCreate) -> PitchOut:
        now = self.clock.now()
        expires_at = self._expiry(request.expires_at or now + DEFAULT_LIFETIME, now)
        _no_duplicates(request.recipients, set())
        # Hashing first: the memory-hard hash takes tens of ms and needs no transaction.
        password_hash = hash_password(request.password) if request.password else None
        pitch_id = uuid7(now)
        with self.pool.connection() as conn, conn.transaction():
            track_ids = repo.playlist_track_ids(conn, request.playlist_id)
            self._authorize(
                conn, caller, ("playlist", request.playlist_id), track_ids, request.allow_download
            )
            if not track_ids:
                raise ProblemError(
                    422, "playlist_empty", "Nothing to pitch", "The playlist has no tracks."
                )
            pitch = repo.insert_pitch(
                conn,
                {
                    "id": pitch_id,
                    "owner_id": caller.user_id,
                    "playlist_id": request.playlist_id,
                    "title": request.title,
                    "message": request.message,
                    "allow_download": request.allow_download,
                    "password_hash": password_hash,
                    "expires_at": expires_at,
                    "now": now,
                },
            )
            repo.insert_pitch_tracks(conn, pitch_id, track_ids)
            issued = self._add_recipients(conn, pitch_id, request.recipients, now)
            tracks = repo.pitch_tracks(conn, pitch_id)
        self._emit(
            caller,
            "pitch_created",
            pitch_id=pitch_id,
            playlist_id=request.playlist_id,
            properties={"recipients": len(issued), "tracks": len(track_ids)},
        )
        self._sent(caller, pitch_id, issued)
        return _pitch_out(pitch, tracks, issued, now)

    def list_pitches(self, caller: Principal, *, limit: int, cursor: str | None) -> PitchPage:
        after = None
        if cursor:
            state = decode_cursor(cursor, scope="pitches")
            try:
                after = (datetime.fromisoformat(state["at"]), uuid.UUID(state["id"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise invalid_cursor() from exc
        with self.pool.connection() as conn:
            rows = repo.list_pitches(conn, caller.user_id, after=after, limit=limit + 1)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = encode_cursor(
                {"scope": "pitches", "at": last["created_at"].isoformat(), "id": str(last["id"])}
            )
        now = self.clock.now()
        items = [PitchSummary.model_validate({**r, "status": _status(r, now)}) for r in rows]
        return PitchPage(items=items, next_cursor=next_cursor)

    def get(self, caller: Principal, pitch_id: uuid.UUID) -> PitchOut:
        with self.pool.connection() as conn:
            authz.require(conn, caller.user_id, "view", "pitch", pitch_id)
            return self._read(conn, pitch_id)

    def update(
        self, caller: Principal, pitch_id: uuid.UUID, patch: PitchPatch, expected: int | None
    ) -> PitchOut:
        now = self.clock.now()
        changes: Row = {}
        for name in patch.model_fields_set:
            value = getattr(patch, name)
            if value is None and name != "password":
                raise ProblemError(
                    422, "validation_failed", "Request is not valid", f"{name} cannot be cleared"
                )
            changes[name] = value
        if "expires_at" in changes:
            changes["expires_at"] = self._expiry(changes["expires_at"], now)
            changes["expiry_noted_at"] = None  # a new expiry is announced when it comes
        if "password" in changes:
            password = changes.pop("password")
            changes["password_hash"] = hash_password(password) if password else None
        with self.pool.connection() as conn, conn.transaction():
            # Letting recipients download needs the owner's download right on every track.
            track_ids = (
                [row["id"] for row in repo.pitch_tracks(conn, pitch_id)]
                if changes.get("allow_download")
                else []
            )
            self._authorize(conn, caller, ("pitch", pitch_id), track_ids, allow_download=True)
            pitch = repo.get_pitch(conn, pitch_id, lock=True)
            assert pitch is not None
            _check_version(pitch, expected)
            if changes:
                repo.update_pitch(conn, pitch_id, changes, now)
            result = self._read(conn, pitch_id)
        if changes:
            fields = sorted(patch.model_fields_set)
            self._emit(caller, "pitch_updated", pitch_id=pitch_id, properties={"fields": fields})
        return result

    def add_recipients(
        self, caller: Principal, pitch_id: uuid.UUID, recipients: Sequence[RecipientIn]
    ) -> list[RecipientOut]:
        now = self.clock.now()
        with self.pool.connection() as conn, conn.transaction():
            authz.require(conn, caller.user_id, "manage", "pitch", pitch_id)
            pitch = repo.get_pitch(conn, pitch_id, lock=True)
            assert pitch is not None
            _require_open(pitch, now)
            live = repo.live_recipient_emails(conn, pitch_id)
            _no_duplicates(recipients, live)
            if len(live) + len(recipients) > MAX_RECIPIENTS:
                raise ProblemError(
                    422,
                    "too_many_recipients",
                    "Too many recipients",
                    f"A pitch has at most {MAX_RECIPIENTS} live recipients; it has {len(live)}.",
                )
            issued = self._add_recipients(conn, pitch_id, recipients, now)
        self._sent(caller, pitch_id, issued)
        return [_recipient_out(row, pitch, now, link=row["link"]) for row in issued]

    def revoke_recipient(
        self, caller: Principal, pitch_id: uuid.UUID, recipient_id: uuid.UUID
    ) -> None:
        now = self.clock.now()
        with self.pool.connection() as conn, conn.transaction():
            authz.require(conn, caller.user_id, "manage", "pitch", pitch_id)
            if repo.get_recipient(conn, pitch_id, recipient_id) is None:
                raise _recipient_not_found()
            revoked = repo.revoke_recipients(conn, pitch_id, now, recipient_id)
        if revoked:
            self._emit(caller, "pitch_revoked", pitch_id=pitch_id, recipient_id=recipient_id)

    def revoke(self, caller: Principal, pitch_id: uuid.UUID) -> PitchOut:
        now = self.clock.now()
        with self.pool.connection() as conn, conn.transaction():
            authz.require(conn, caller.user_id, "manage", "pitch", pitch_id)
            pitch = repo.get_pitch(conn, pitch_id, lock=True)
            assert pitch is not None
            newly = pitch["revoked_at"] is None
            if newly:
                repo.update_pitch(conn, pitch_id, {"revoked_at": now}, now)
            result = self._read(conn, pitch_id)
        if newly:
            self._emit(caller, "pitch_revoked", pitch_id=pitch_id)
        return result

    def reissue_link(
        self, caller: Principal, pitch_id: uuid.UUID, recipient_id: uuid.UUID
    ) -> RecipientOut:
        now = self.clock.now()
        token, token_hash = new_token()
        with self.pool.connection() as conn, conn.transaction():
            authz.require(conn, caller.user_id, "manage", "pitch", pitch_id)
            pitch = repo.get_pitch(conn, pitch_id, lock=True)
            assert pitch is not None
            _require_open(pitch, now)
            recipient = repo.get_recipient(conn, pitch_id, recipient_id)
            if recipient is None:
                raise _recipient_not_found()
            if recipient["revoked_at"] is not None:
                raise ProblemError(
                    409,
                    "recipient_revoked",
                    "Recipient revoked",
                    "This recipient's access was withdrawn; add them again for a new link.",
                )
            row = repo.replace_token(conn, recipient_id, token_hash, now)
        self._emit(
            caller,
            "pitch_sent",
            pitch_id=pitch_id,
            recipient_id=recipient_id,
            properties={"reissued": True},
        )
        return _recipient_out(row, pitch, now, link=self._link(token))

    # -- helpers -------------------------------------------------------------------------------

    def _read(self, conn: Connection[Any], pitch_id: uuid.UUID) -> PitchOut:
        now = self.clock.now()
        pitch = repo.get_pitch(conn, pitch_id)
        if pitch is None:
            raise authz.not_found("pitch")
        tracks = repo.pitch_tracks(conn, pitch_id)
        engagement = engagement_by_recipient(
            repo.engagement_rows(conn, pitch_id), repo.feedback_rows(conn, pitch_id), tracks
        )
        recipients = [
            _recipient_out(r, pitch, now, engagement=engagement.get(r["id"], nothing_yet()))
            for r in repo.recipients(conn, pitch_id)
        ]
        return _pitch_out(pitch, tracks, [], now, recipients)

    def _add_recipients(
        self,
        conn: Connection[Any],
        pitch_id: uuid.UUID,
        recipients: Sequence[RecipientIn],
        now: datetime,
    ) -> list[Row]:
        rows = []
        for recipient in recipients:
            token, token_hash = new_token()
            rows.append(
                {
                    "id": uuid7(now),
                    "pitch_id": pitch_id,
                    "name": recipient.name,
                    "email": recipient.email,
                    "company": recipient.company or None,
                    "token_hash": token_hash,
                    "link_issued_at": now,
                    "created_at": now,
                    "revoked_at": None,
                    "link": self._link(token),
                }
            )
        repo.insert_recipients(conn, rows)
        return rows

    def _authorize(
        self,
        conn: Connection[Any],
        caller: Principal,
        target: tuple[Literal["playlist", "pitch"], uuid.UUID],
        track_ids: Sequence[uuid.UUID],
        allow_download: bool,
    ) -> None:
        """The owner manages the playlist or pitch, and may stream every track (download, when
        recipients may): one authorization query for all of them."""
        kind, object_id = target
        found = authz.levels_by_type(conn, caller.user_id, {kind: [object_id], "track": track_ids})
        authz.check(kind, "manage", found[kind].get(object_id, 0))
        action: authz.Action = "download" if allow_download else "stream"
        for track_id in track_ids:
            authz.check("track", action, found["track"].get(track_id, 0), track_id)

    def _expiry(self, expires_at: datetime, now: datetime) -> datetime:
        if expires_at <= now:
            raise ProblemError(
                422, "invalid_expiry", "Invalid expiry", "expires_at must be in the future."
            )
        if expires_at > now + MAX_LIFETIME:
            raise ProblemError(
                422, "invalid_expiry", "Invalid expiry", "expires_at is at most one year ahead."
            )
        return expires_at

    def _link(self, token: str) -> str:
        return f"{self.settings.public_url.rstrip('/')}/p/{token}"

    def _sent(self, caller: Principal, pitch_id: uuid.UUID, issued: Sequence[Row]) -> None:
        for row in issued:
            self._emit(caller, "pitch_sent", pitch_id=pitch_id, recipient_id=row["id"])

    def _emit(self, caller: Principal, event_type: str, **columns: Any) -> None:
        self.events.emit(event_type, actor_type="user", actor_id=str(caller.user_id), **columns)


def _status(pitch: Row, now: datetime) -> PitchStatus:
    if pitch["revoked_at"] is not None:
        return "revoked"
    return "expired" if pitch["expires_at"] <= now else "active"


def _require_open(pitch: Row, now: datetime) -> None:
    status = _status(pitch, now)
    if status != "active":
        raise ProblemError(
            409,
            f"pitch_{status}",
            f"Pitch {status}",
            "Links cannot be issued for it"
            + (": move its expiry first." if status == "expired" else "."),
        )


def _check_version(pitch: Row, expected: int | None) -> None:
    if expected is not None and expected != pitch["version"]:
        raise ProblemError(
            409,
            "version_conflict",
            "Pitch changed meanwhile",
            f"You edited version {expected}; the pitch is now at version {pitch['version']}.",
            current_version=pitch["version"],
        )


def _no_duplicates(recipients: Sequence[RecipientIn], live: set[str]) -> None:
    seen = set(live)
    for recipient in recipients:
        if recipient.email in seen:
            raise ProblemError(
                409 if recipient.email in live else 422,
                "duplicate_recipient",
                "Recipient listed twice",
                f"{recipient.email} already has a link to this pitch.",
                email=recipient.email,
            )
        seen.add(recipient.email)


def _recipient_not_found() -> ProblemError:
    return ProblemError(404, "recipient_not_found", "Recipient not found")


def _recipient_out(
    row: Row,
    pitch: Row,
    now: datetime,
    *,
    link: str | None = None,
    engagement: Any = None,
) -> RecipientOut:
    status = "revoked" if row["revoked_at"] is not None else _status(pitch, now)
    return RecipientOut.model_validate(
        {**row, "status": status, "link": link, "engagement": engagement}
    )


def _pitch_out(
    pitch: Row,
    tracks: list[Row],
    issued: list[Row],
    now: datetime,
    recipients: list[RecipientOut] | None = None,
) -> PitchOut:
    if recipients is None:
        recipients = [_recipient_out(r, pitch, now, link=r["link"]) for r in issued]
    return PitchOut.model_validate(
        {
            **pitch,
            "status": _status(pitch, now),
            "has_password": pitch["password_hash"] is not None,
            "tracks": [PitchTrackOut.model_validate(t) for t in tracks],
            "recipients": recipients,
        }
    )
