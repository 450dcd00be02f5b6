"""What a pitch link lets its recipient do: open the page, play, download, react, report.

A link is a capability: whoever holds the token is the recipient, with no account. Every use
is rate-limited per client address and per link, resolved from the token's hash, and refused
once the link or its pitch was revoked or expired. A password, where set, is asked once per
browser; the page's other routes then need the session cookie it opened.

Everything a recipient does becomes one usage event, recorded in ``pitch_interactions`` (the
engagement read model) in the same transaction as its effect, then sent to the lake: one
record feeds both, and a resent report is recorded and sent once.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from ingest.events.client import EventsResult, Reporter, parse_events
from ingest.events.envelope import UsageEvent
from services.core.db import autocommit
from services.core.errors import ProblemError
from services.core.ids import uuid7
from services.core.objects.port import track_filename
from services.core.ratelimit import check_rate, check_rates
from services.pitching import repository as repo
from services.pitching.links import Sessions, password_matches, token_hash, well_formed
from services.pitching.models import FeedbackIn, FeedbackOut
from services.pitching.page_cache import PageCache
from services.pitching.pages import PageTrack, PitchPage, render_pitch

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg_pool import ConnectionPool

    from ingest.events.emitter import Emitter
    from services.core.clock import Clock
    from services.core.objects.port import ObjectStore
    from services.core.settings import Settings

SOURCE = "pitching"
# A report may end a little past the track's end (players round; decoders pad).
_END_SLACK_MS = 2000


class LinkUnknown(ProblemError):
    def __init__(self) -> None:
        super().__init__(404, "link_not_found", "Link not found", "This pitch link does not exist.")


class LinkGone(ProblemError):
    def __init__(self, reason: Literal["expired", "revoked"]) -> None:
        detail = (
            "This pitch link has expired."
            if reason == "expired"
            else "The sender withdrew this pitch link."
        )
        super().__init__(410, f"link_{reason}", "Link no longer valid", detail)
        self.reason: Literal["expired", "revoked"] = reason


class PasswordRequired(ProblemError):
    def __init__(self) -> None:
        super().__init__(
            401,
            "password_required",
            "Password required",
            "Open the pitch page and enter its password first.",
        )


class WrongPassword(ProblemError):
    def __init__(self) -> None:
        super().__init__(401, "wrong_password", "Wrong password", "That password is not right.")


@dataclass(frozen=True)
class Link:
    """The recipient and pitch a valid token stands for."""

    token_hash: bytes
    recipient_id: uuid.UUID
    recipient_name: str
    pitch_id: uuid.UUID
    title: str
    message: str
    allow_download: bool
    password_hash: str | None
    expires_at: datetime
    sender: str | None
    # Opened for its page: the digest of the page's rows, and the (event id, time) of the
    # pitch_opened the lookup recorded (not when a password's session had to be checked first).
    page_digest: str | None = None
    opened: tuple[uuid.UUID, datetime] | None = None


@dataclass
class Recipients:
    pool: ConnectionPool[Any]
    clock: Clock
    settings: Settings
    objects: ObjectStore
    events: Emitter
    redis: Any
    sessions: Sessions
    pages: PageCache

    def open(self, token: str, client_address: str, *, for_page: bool = False) -> Link:
        """The link behind ``token``, once the rate limits allow the lookup. ``for_page``: the
        link is opened for its page, which the same statement records when it can."""
        hashed = token_hash(token) if token.isascii() else b""
        limits = self.settings
        checks = [(f"pitch:address:{client_address}", limits.pitch_requests_per_minute, 60)]
        if well_formed(token):
            checks.append((f"pitch:link:{hashed.hex()}", limits.pitch_link_requests_per_minute, 60))
        check_rates(self.redis, self.clock, checks)
        if not well_formed(token):
            raise LinkUnknown()
        now = self.clock.now()
        page_open = uuid7(now) if for_page else None
        with autocommit(self.pool) as conn:
            row = repo.link_by_token_hash(conn, hashed, now, page_open=page_open)
        # The lookup was by hash; comparing again in constant time costs nothing and keeps the
        # check independent of how the database matched.
        if row is None or not hmac.compare_digest(bytes(row["token_hash"]), hashed):
            raise LinkUnknown()
        if row["gone"] is not None:
            raise LinkGone(row["gone"])
        return Link(
            token_hash=hashed,
            recipient_id=row["recipient_id"],
            recipient_name=row["recipient_name"],
            pitch_id=row["pitch_id"],
            title=row["title"],
            message=row["message"],
            allow_download=row["allow_download"],
            password_hash=row["password_hash"],
            expires_at=row["expires_at"],
            sender=row["sender"],
            page_digest=row["page_digest"],
            opened=(page_open, now) if page_open is not None and row["opened"] else None,
        )

    def unlocked(self, link: Link, session_cookie: str | None) -> bool:
        return link.password_hash is None or self.sessions.valid(
            session_cookie, link.recipient_id, link.password_hash, self.clock.now()
        )

    def require_unlocked(self, link: Link, session_cookie: str | None) -> None:
        if not self.unlocked(link, session_cookie):
            raise PasswordRequired()

    def unlock(self, link: Link, password: str) -> str:
        """The session cookie's value for the right password; WrongPassword otherwise."""
        check_rate(
            self.redis,
            self.clock,
            f"pitch:unlock:{link.token_hash.hex()}",
            limit=self.settings.pitch_unlock_attempts,
            window_seconds=600,
        )
        if link.password_hash is None:
            raise ProblemError(409, "no_password", "No password", "This link has no password.")
        if not password_matches(link.password_hash, password):
            raise WrongPassword()
        return self.sessions.issue(link.recipient_id, link.password_hash, self.clock.now())

    def page(self, link: Link, base_path: str) -> str:
        """The page's HTML; opening it is recorded."""
        if link.page_digest is None:
            raise ValueError("open the link for_page first: the page's digest is missing")
        if link.opened is not None:
            self.events.forward([self._event(link, "pitch_opened", recorded=link.opened)])
        else:
            with autocommit(self.pool) as conn:
                self._record(conn, [self._event(link, "pitch_opened")])
        fingerprint = (
            link.page_digest,
            base_path,
            link.title,
            link.message,
            link.sender,
            link.recipient_name,
            link.expires_at,
            link.allow_download,
        )
        html = self.pages.get(link.recipient_id, fingerprint)
        if html is not None:
            return html
        with autocommit(self.pool) as conn:
            # Read after the digest (with the link): what is rendered is never older than
            # what it is cached under, so a change in between costs one more render only.
            tracks = repo.page_tracks(conn, link.pitch_id, link.recipient_id)
        html = render_pitch(
            PitchPage(
                base_path=base_path,
                title=link.title,
                message=link.message,
                sender_name=link.sender,
                recipient_name=link.recipient_name,
                expires_at=link.expires_at,
                allow_download=link.allow_download,
                tracks=[
                    PageTrack(
                        id=t["id"],
                        position=t["position"],
                        title=t["title"],
                        artists=list(t["artists"]),
                        album=t["album"],
                        duration_ms=t["duration_ms"],
                        shortlisted=t["shortlisted"],
                        comment=t["comment"],
                    )
                    for t in tracks
                ],
            )
        )
        self.pages.put(link.recipient_id, fingerprint, html)
        return html

    def media_url(self, link: Link, track_id: uuid.UUID, *, download: bool) -> str:
        """A short-lived URL of a pitch track's audio (as an attachment for downloads)."""
        if download and not link.allow_download:
            raise ProblemError(
                403,
                "download_not_allowed",
                "Downloads not allowed",
                "The sender allows listening to this pitch, not downloading it.",
            )
        with self.pool.connection() as conn, conn.transaction():
            track = repo.pitch_track(conn, link.pitch_id, track_id)
            if track is None:
                raise _not_in_pitch()
            if download:
                downloaded = self._event(
                    link, "pitch_track_downloaded", track_id=track_id, bytes=track["size_bytes"]
                )
                self._record(conn, [downloaded])
        expires_at = self.clock.now() + timedelta(seconds=self.settings.media_url_ttl_seconds)
        return self.objects.media_url(
            track["object_key"],
            content_type=track["content_type"],
            expires_at=expires_at,
            download_filename=track_filename(track) if download else None,
        )

    def report(
        self, link: Link, bodies: list[dict[str, Any]], correlation_id: str | None
    ) -> EventsResult:
        """The player's events: checked one by one, the pitch's tracks only."""
        reporter = Reporter(
            "recipient",
            str(link.recipient_id),
            SOURCE,
            correlation_id,
            fixed={"pitch_id": link.pitch_id, "recipient_id": link.recipient_id},
        )
        parsed = parse_events(bodies, reporter, self.clock.now())
        with self.pool.connection() as conn, conn.transaction():
            durations = repo.pitch_track_durations(
                conn, link.pitch_id, {e.track_id for _, e in parsed.accepted if e.track_id}
            )
            for index, event in list(parsed.accepted):
                if event.track_id not in durations:
                    parsed.refuse(
                        index, event, "object_not_accessible", "That track is not in this pitch."
                    )
                elif (event.position_ms or 0) > durations[event.track_id] + _END_SLACK_MS:
                    parsed.refuse(
                        index, event, "invalid_event", "position_ms is past the track's end."
                    )
            self._record(conn, [event for _, event in parsed.accepted])
        return parsed.result()

    def feedback(self, link: Link, request: FeedbackIn) -> FeedbackOut:
        if request.shortlisted is None and request.comment is None:
            raise ProblemError(
                422, "validation_failed", "Request is not valid", "Send shortlisted or comment."
            )
        with self.pool.connection() as conn, conn.transaction():
            if repo.pitch_track(conn, link.pitch_id, request.track_id) is None:
                raise _not_in_pitch()
            current = repo.get_feedback(conn, link.recipient_id, request.track_id, lock=True)
            was_shortlisted = bool(current and current["shortlisted"])
            shortlisted = was_shortlisted if request.shortlisted is None else request.shortlisted
            old_comment = current["comment"] if current else None
            comment = old_comment if request.comment is None else (request.comment or None)
            repo.save_feedback(
                conn,
                link.recipient_id,
                request.track_id,
                shortlisted=shortlisted,
                comment=comment,
                at=self.clock.now(),
            )
            happened = []
            if shortlisted != was_shortlisted:
                kind = "pitch_track_shortlisted" if shortlisted else "pitch_track_unshortlisted"
                happened.append(self._event(link, kind, track_id=request.track_id))
            if comment is not None and comment != old_comment:
                happened.append(self._event(link, "pitch_comment_added", track_id=request.track_id))
            self._record(conn, happened)
        return FeedbackOut(track_id=request.track_id, shortlisted=shortlisted, comment=comment)

    def _event(self, link: Link, event_type: str, **columns: Any) -> UsageEvent:
        return self.events.make(
            event_type,
            actor_type="recipient",
            actor_id=str(link.recipient_id),
            pitch_id=link.pitch_id,
            recipient_id=link.recipient_id,
            **columns,
        )

    def _record(self, conn: Connection[Any], events: list[UsageEvent]) -> None:
        """Into the read model now; to the lake after the response (new ones only)."""
        new = repo.record_interactions(conn, events)
        self.events.forward([e for e in events if e.event_id in new])


def _not_in_pitch() -> ProblemError:
    return ProblemError(
        404, "track_not_found", "Track not found", "That track is not in this pitch."
    )
