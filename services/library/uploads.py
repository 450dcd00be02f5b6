"""Uploads: start, complete (checks, metadata, the track), and expiry of abandoned ones."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from psycopg import errors as pg_errors

from services.core import authz
from services.core.errors import NotFound, ProblemError
from services.core.ids import uuid7
from services.core.objects.port import CompletedPart, UploadNotReceived
from services.core.principal import Principal
from services.library import repository as repo
from services.library.base import LibraryBase, track_out
from services.library.models import (
    TrackOut,
    UploadOut,
    UploadPartOut,
    UploadRequest,
)

if TYPE_CHECKING:
    from psycopg import Connection

    from services.library.audio import Inspection

log = logging.getLogger("musicsync.library")

# HTTP status for each reason audio is refused.
_REJECTION_STATUS = {"not_audio": 415, "unsupported_codec": 415, "corrupt_audio": 422}

# How long a completion may hold its claim on an upload: well over the time to copy, hash and
# parse a 2 GiB file, so a live completion never loses it; a crashed one frees it after this.
UPLOAD_LEASE = timedelta(minutes=15)


class Uploads(LibraryBase):
    def start_upload(self, caller: Principal, request: UploadRequest) -> UploadOut:
        limit = self.settings.upload_max_bytes
        if request.size > limit:
            raise ProblemError(
                413,
                "upload_too_large",
                "File too large",
                f"The file is {request.size} bytes; the limit is {limit} bytes.",
                max_bytes=limit,
            )
        now = self.clock.now()
        upload_id = uuid7(now)
        # Uploads land under uploads/; a completed upload's bytes move to tracks/, where no
        # upload URL can reach them any more.
        key = f"uploads/{caller.user_id}/{upload_id}"
        expires_at = now + timedelta(seconds=self.settings.upload_url_ttl_seconds)
        target = self.objects.prepare_upload(key, request.size, request.content_type, expires_at)
        with self.pool.connection() as conn:
            repo.insert_upload(
                conn,
                {
                    "id": upload_id,
                    "owner_id": caller.user_id,
                    "filename": request.filename,
                    "content_type": request.content_type,
                    "declared_size": request.size,
                    "object_key": key,
                    "multipart_id": target.multipart_id,
                    "created_at": now,
                    "expires_at": expires_at,
                },
            )
        self._emit(
            caller,
            "track_upload_started",
            bytes=request.size,
            properties={"upload_id": str(upload_id), "filename": request.filename},
        )
        return UploadOut(
            upload_id=upload_id,
            method=target.method,
            url=target.url,
            headers=target.headers,
            expires_at=expires_at,
            parts=[
                UploadPartOut(part_number=p.part_number, url=p.url, size=p.size)
                for p in target.parts
            ],
        )

    def complete_upload(
        self, caller: Principal, upload_id: uuid.UUID, parts: list[CompletedPart]
    ) -> TrackOut:
        """Check the bytes, read their metadata, and make the track; or reject and clean up.

        Three steps, so that no connection is held (nor a transaction left open) while up to
        2 GiB are assembled, copied, hashed and parsed: claim the upload under a lease (short
        transaction), do that work with no connection, then record the outcome (short
        transaction) only if the claim is still ours.
        """
        from services.library.audio import AudioRejected, inspect_file

        upload, lease = self._claim_upload(caller, upload_id)
        key = upload["object_key"]
        rejection: ProblemError | None = None
        inspection: Inspection | None = None
        try:
            self.objects.finish_upload(key, upload["multipart_id"], parts)
            size = self.objects.size(key)
            if size is None:
                raise UploadNotReceived()
            if size != upload["declared_size"]:
                rejection = ProblemError(
                    422,
                    "upload_size_mismatch",
                    "File incomplete",
                    f"{size} bytes arrived but {upload['declared_size']} were announced; "
                    "the transfer was cut short or the wrong file was sent.",
                )
            elif size > self.settings.upload_max_bytes:
                rejection = ProblemError(413, "upload_too_large", "File too large")
            else:
                try:
                    with self.objects.local_copy(key) as path:
                        inspection = inspect_file(path)
                except AudioRejected as exc:
                    rejection = ProblemError(
                        _REJECTION_STATUS[exc.code], exc.code, "Audio not accepted", exc.detail
                    )
        except Exception:
            # Nothing was decided about the bytes (not sent yet, or the store failed): the
            # upload stays usable, and the client may retry now rather than wait out the lease.
            self._hand_back(upload_id, lease)
            raise

        now = self.clock.now()
        with self.pool.connection() as conn:
            current = repo.lock_upload(conn, caller.user_id, upload_id)
            if current is None:
                raise NotFound("upload_not_found", "Upload")
            _check_still_open(current)
            if current["status"] != "processing" or current["lease_until"] != lease:
                # Our lease ran out and another completion claimed the upload: the bytes and
                # the outcome are its business now.
                raise _in_progress()
            try:
                if rejection is None:
                    assert inspection is not None
                    existing = repo.track_id_by_checksum(conn, caller.user_id, inspection.sha256)
                    if existing is not None:
                        rejection = _duplicate(existing)
                if rejection is not None:
                    self._reject(conn, caller, current, rejection.code, now)
                    raise rejection
                assert inspection is not None
                row = self._record_track(conn, caller, current, inspection, now)
            except ProblemError:
                raise
            except Exception:
                self._hand_back(upload_id, lease, conn)
                raise
        facts = inspection.facts
        self._emit(
            caller,
            "track_uploaded",
            track_id=row["id"],
            bytes=inspection.size,
            properties={
                "upload_id": str(upload_id),
                "container": facts.container,
                "codec": facts.codec,
                "duration_ms": facts.duration_ms,
            },
        )
        return track_out(row, authz.OWNER)

    def _claim_upload(
        self, caller: Principal, upload_id: uuid.UUID
    ) -> tuple[dict[str, Any], datetime]:
        """Lock the upload just long enough to mark it ``processing``; return it and the
        lease, which identifies this claim when the outcome is recorded."""
        now = self.clock.now()
        with self.pool.connection() as conn:
            upload = repo.lock_upload(conn, caller.user_id, upload_id)
            if upload is None:
                raise NotFound("upload_not_found", "Upload")
            _check_still_open(upload)
            if upload["status"] == "processing" and upload["lease_until"] > now:
                raise _in_progress()
            # A claim whose lease ran out belongs to a completion that died: take it over.
            if now > upload["expires_at"]:
                self._reject(conn, caller, upload, "upload_expired", now)
                raise ProblemError(410, "upload_expired", "Upload expired", "Start a new upload.")
            lease = now + UPLOAD_LEASE
            repo.claim_upload(conn, upload_id, lease_until=lease)
        return upload, lease

    def _record_track(
        self,
        conn: Connection[Any],
        caller: Principal,
        upload: dict[str, Any],
        inspection: Inspection,
        now: datetime,
    ) -> dict[str, Any]:
        """Insert the track, mark the upload completed and move the bytes; the caller commits."""
        track_id = uuid7(now)
        track_key = f"tracks/{caller.user_id}/{track_id}"
        facts = inspection.facts
        try:
            with conn.transaction():
                row = repo.insert_track(
                    conn,
                    {
                        "id": track_id,
                        "owner_id": caller.user_id,
                        "object_key": track_key,
                        "original_filename": upload["filename"],
                        "title": facts.title or _title_from_filename(upload["filename"]),
                        "artists": list(facts.artists),
                        "album": facts.album,
                        "year": facts.year,
                        "genre": facts.genre,
                        "isrc": facts.isrc,
                        "bpm": facts.bpm,
                        "musical_key": facts.musical_key,
                        "duration_ms": facts.duration_ms,
                        "bitrate": facts.bitrate,
                        "sample_rate": facts.sample_rate,
                        "channels": facts.channels,
                        "container": facts.container,
                        "codec": facts.codec,
                        "content_type": facts.content_type,
                        "file_extension": facts.extension,
                        "size_bytes": inspection.size,
                        "sha256": inspection.sha256,
                        "created_at": now,
                        "updated_at": now,
                    },
                )
        except pg_errors.UniqueViolation:
            # A concurrent completion of the same bytes won the race.
            existing = repo.track_id_by_checksum(conn, caller.user_id, inspection.sha256)
            self._reject(conn, caller, upload, "duplicate_track", now)
            raise _duplicate(existing) from None
        repo.finish_upload(conn, upload["id"], status="completed", at=now, track_id=track_id)
        # Inside the transaction: if the move fails, no track row points at missing bytes.
        self.objects.promote(upload["object_key"], track_key)
        return row

    def _hand_back(
        self, upload_id: uuid.UUID, lease: datetime, conn: Connection[Any] | None = None
    ) -> None:
        """Undo our claim (back to pending) after a failure, if it is still ours; on ``conn``
        (whatever it had done is rolled back) or on a connection of its own.

        Best effort: should this fail too, the lease running out frees the upload anyway.
        """
        try:
            if conn is None:
                with self.pool.connection() as own:
                    repo.release_upload(own, upload_id, lease_until=lease)
            else:
                conn.rollback()
                repo.release_upload(conn, upload_id, lease_until=lease)
                conn.commit()
        except Exception:
            log.exception("could not hand back upload %s; its lease will run out", upload_id)

    def _reject(
        self,
        conn: Connection[Any],
        caller: Principal,
        upload: dict[str, Any],
        code: str,
        now: datetime,
    ) -> None:
        """Drop the bytes, then record the refusal, with the upload locked by ``conn``.

        If the bytes cannot be dropped now, nothing is recorded: the upload goes back to
        pending (``complete_upload`` hands back its claim; the sweeper or a retry drops them
        later), so no bytes outlive a rejected upload.
        """
        self.objects.abort_upload(upload["object_key"], upload["multipart_id"])
        repo.finish_upload(conn, upload["id"], status="rejected", at=now, rejection_code=code)
        conn.commit()
        self._emit(
            caller,
            "track_upload_rejected",
            properties={"upload_id": str(upload["id"]), "reason": code},
        )

    def expire_uploads(self, *, limit: int = 500) -> int:
        """Remove the bytes of uploads never completed in time; return how many were expired.

        That includes uploads whose completion died mid-way (claimed, lease run out); one whose
        lease is still valid is being completed right now and is left alone.

        One transaction per upload: one that fails (its bytes cannot be removed now) stays
        pending for the next sweep without holding back the others, and its event is emitted
        only once the expiry is committed.
        """
        now = self.clock.now()
        expired = 0
        with self.pool.connection() as conn:
            candidates = [row["id"] for row in repo.expired_uploads(conn, now, limit)]
            conn.commit()
            for upload_id in candidates:
                try:
                    with conn.transaction():
                        upload = repo.lock_expirable_upload(conn, upload_id, now)
                        # Completed, expired or claimed by someone else meanwhile.
                        if upload is None:
                            continue
                        self.objects.abort_upload(upload["object_key"], upload["multipart_id"])
                        repo.finish_upload(
                            conn,
                            upload_id,
                            status="rejected",
                            at=now,
                            rejection_code="upload_expired",
                        )
                except Exception:
                    log.exception("could not expire upload %s; the next sweep retries", upload_id)
                    continue
                expired += 1
                self.events.emit(
                    "track_upload_rejected",
                    actor_type="system",
                    actor_id="upload-sweeper",
                    properties={"upload_id": str(upload_id), "reason": "upload_expired"},
                )
        return expired


def _check_still_open(upload: dict[str, Any]) -> None:
    if upload["status"] == "completed":
        raise ProblemError(
            409,
            "upload_already_completed",
            "Upload already completed",
            "This upload was completed before; its track exists.",
            track_id=upload["track_id"],
        )
    if upload["status"] == "rejected":
        raise ProblemError(
            409,
            "upload_rejected",
            "Upload was rejected",
            f"This upload was rejected ({upload['rejection_code']}); start a new upload.",
            rejection_code=upload["rejection_code"],
        )


def _in_progress() -> ProblemError:
    return ProblemError(
        409,
        "upload_in_progress",
        "Upload being completed",
        "Another completion of this upload is running; retry shortly.",
    )


def _duplicate(existing: uuid.UUID | None) -> ProblemError:
    return ProblemError(
        409,
        "duplicate_track",
        "Track already in your library",
        "A track with exactly these bytes is already in your library.",
        existing_track_id=existing,
    )


def _title_from_filename(filename: str) -> str:
    stem = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return stem.strip() or "Untitled"
