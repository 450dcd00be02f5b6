"""A seeded lake of realistic usage events and snapshots, for the analytics tests.

``LakeSimulation`` plays a small product day by day: users sign in, search (with typos that
find nothing and the same query typed in different case and spacing), stream, download, upload
tracks (a few rejected, a few deleted later), build playlists and pitch them to recipients who
behave as the pitch page reports them (``services/pitching/assets/pitch.js``): some never open
the link, some play a few seconds and skip, some play through, seek back and forth, pause,
download, shortlist (and change their mind) and comment. Every event is checked against the
catalogue and goes into the lake through the product's own ``LocalLakeWriter``, stamped with
``received_at`` by the writer's clock when it is sent.

Delivery is realistic too: the player's reports reach the collector in batches a little after
they happen; a few reach it hours late (a phone that was offline), so that they land in the
partition of an earlier day after that day was written; and a few are resent (the same
``event_id`` twice), as a client retrying after a lost response would.

Snapshots are written as the snapshot job lays them out (``snapshots/<table>/dt=D/part-0.parquet``,
the columns of ``lake.snapshots.TABLES``), from the simulation's own state: what the database
would hold at the end of that day (deleted tracks are gone, and with them their pitch tracks).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.events.catalogue import CATALOGUE, validate
from ingest.events.envelope import ActorType, UsageEvent
from ingest.events.lake_writer import LocalLakeWriter
from lake.layout import snapshot_partition
from lake.snapshots import FILE_NAME, TABLES
from services.core.clock import ManualClock
from services.core.ids import uuid7

ISSUER = "http://127.0.0.1:8000/idp"
COMPANIES = ("Northlight Films", "Bluebird Ads", "Kite Games", "Harbour TV", "Oakline Studio")
CONTAINERS = (
    ("mp3", "mp3", "audio/mpeg"),
    ("flac", "flac", "audio/flac"),
    ("mp4", "aac", "audio/mp4"),
)
GENRES = ("ambient", "electronic", "folk", "hip hop", "jazz", "rock")
MOODS = ("calm", "dark", "happy", "tense", "uplifting")
# Queries as people type them: the same words in different case and spacing, and typos that
# find nothing.
QUERIES = (
    ("lo-fi beats", 40),
    ("Lo-Fi  Beats", 40),
    ("ambient piano", 25),
    ("cinematic", 30),
    ("happy  ukulele", 12),
    ("dark synth", 18),
    ("jazz trio", 9),
    ("uplifting corporate", 22),
    ("ambeint pinao", 0),
    ("xylophnoe", 0),
    ("", 57),
)
PROGRESS_EVERY_MS = 10_000  # the pitch page and the player report every 10 s of listening
SOURCE_COLLECTOR = "collector"


@dataclass
class Track:
    track_id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    duration_ms: int
    container: str
    codec: str
    content_type: str
    size_bytes: int
    genre: str
    mood: str
    created_at: datetime
    upload_id: uuid.UUID
    deleted_at: datetime | None = None


@dataclass
class User:
    user_id: uuid.UUID
    joined: date
    activity: float  # chance of being active on a day
    leaves: date | None  # no activity from this day on
    created_at: datetime | None = None


@dataclass
class Recipient:
    recipient_id: uuid.UUID
    pitch_id: uuid.UUID
    company: str
    created_at: datetime


@dataclass
class Pitch:
    pitch_id: uuid.UUID
    owner_id: uuid.UUID
    playlist_id: uuid.UUID
    title: str
    allow_download: bool
    created_at: datetime
    track_ids: list[uuid.UUID]
    recipients: list[Recipient] = field(default_factory=list)


@dataclass
class Playlist:
    playlist_id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    created_at: datetime
    track_ids: list[uuid.UUID] = field(default_factory=list)


@dataclass(frozen=True)
class Delivery:
    """An event and when the lake writer receives it (its clock reads this when it is sent)."""

    received_at: datetime
    event: UsageEvent


@dataclass(frozen=True)
class SeededLake:
    lake_dir: Path
    first_day: date
    last_day: date
    events_sent: int
    simulation: LakeSimulation


class LakeSimulation:
    """A seeded product, one day at a time; ``day(d)`` gives the deliveries received on ``d``."""

    def __init__(
        self,
        *,
        seed: int = 7,
        start: date = date(2025, 3, 3),
        users: int = 40,
        late_share: float = 0.02,
        duplicate_share: float = 0.01,
    ) -> None:
        self.rng = random.Random(seed)
        self.start = start
        self.late_share = late_share
        self.duplicate_share = duplicate_share
        self.users: list[User] = []
        for _ in range(users):
            joined = start + timedelta(days=int(8 * self.rng.random() ** 2))
            leaves = (
                joined + timedelta(days=self.rng.randint(3, 20))
                if self.rng.random() < 0.35
                else None
            )
            self.users.append(
                User(
                    uuid.UUID(int=self.rng.getrandbits(128), version=4),
                    joined,
                    self.rng.uniform(0.25, 0.9),
                    leaves,
                )
            )
        self.tracks: dict[uuid.UUID, Track] = {}
        self.uploads: list[dict[str, Any]] = []
        self.playlists: dict[uuid.UUID, Playlist] = {}
        self.pitches: dict[uuid.UUID, Pitch] = {}
        self.shares: list[dict[str, Any]] = []
        # Events made but not yet received, by the time they are received.
        self._in_flight: list[Delivery] = []
        self.events_made = 0

    # -- the days -------------------------------------------------------------------------------
    def day(self, day: date) -> list[Delivery]:
        """Simulate ``day`` and return every delivery received on it (some made earlier)."""
        made: list[Delivery] = []
        for user in self.users:
            if user.joined > day or (user.leaves is not None and day >= user.leaves):
                continue
            first_day = user.created_at is None
            if not first_day and self.rng.random() > user.activity:
                continue
            made.extend(self._user_day(user, day))
        self._in_flight.extend(made)
        end = datetime.combine(day + timedelta(days=1), time(), UTC)
        received = sorted(
            (d for d in self._in_flight if d.received_at < end), key=lambda d: d.received_at
        )
        self._in_flight = [d for d in self._in_flight if d.received_at >= end]
        return received

    def drain(self) -> list[Delivery]:
        """What is still in flight (received after the last simulated day)."""
        rest = sorted(self._in_flight, key=lambda d: d.received_at)
        self._in_flight = []
        return rest

    def _user_day(self, user: User, day: date) -> list[Delivery]:
        rng = self.rng
        at = datetime.combine(day, time(), UTC) + timedelta(
            seconds=rng.randint(7 * 3600, 21 * 3600), microseconds=rng.randint(0, 999_999)
        )
        if user.created_at is None:
            user.created_at = at
        out: list[Delivery] = []
        session = str(uuid.UUID(int=rng.getrandbits(128)))
        out += self._server(at, "user_signed_in", user, session_id=session)
        at += timedelta(seconds=rng.randint(5, 60))
        actions = (
            ["search"] * 3
            + ["stream"] * 4
            + ["upload", "download", "playlist", "pitch", "delete", "share"]
        )
        for _ in range(rng.randint(1, 6)):
            action = rng.choice(actions)
            at += timedelta(seconds=rng.randint(10, 900), microseconds=rng.randint(0, 999_999))
            if action == "search":
                out += self._search(at, user, session)
            elif action == "stream":
                out += self._stream(at, user, session)
            elif action == "upload":
                out += self._upload(at, user, session)
            elif action == "download":
                out += self._download(at, user, session)
            elif action == "playlist":
                out += self._playlist(at, user, session)
            elif action == "pitch":
                out += self._pitch(at, user, session)
            elif action == "delete":
                out += self._delete(at, user, session)
            else:
                out += self._share(at, user, session)
        return out

    # -- users' actions -------------------------------------------------------------------------
    def _search(self, at: datetime, user: User, session: str) -> list[Delivery]:
        query, found = self.rng.choice(QUERIES)
        return self._server(
            at,
            "search_performed",
            user,
            session_id=session,
            source="search",
            result_count=found if found == 0 else self.rng.randint(max(1, found - 5), found + 5),
            latency_ms=self.rng.randint(1, 40),
            properties={"query": query or " ", "filters": {}, "sort": "relevance"},
        )

    def _live_tracks(self, at: datetime) -> list[Track]:
        return [t for t in self.tracks.values() if t.deleted_at is None and t.created_at < at]

    def _stream(self, at: datetime, user: User, session: str) -> list[Delivery]:
        tracks = self._live_tracks(at)
        if not tracks:
            return self._upload(at, user, session)
        track = self.rng.choice(tracks)
        out = self._server(
            at,
            "track_stream_started",
            user,
            session_id=session,
            source="library",
            track_id=track.track_id,
        )
        position = 0
        listened_total = self.rng.choice(
            [track.duration_ms, self.rng.randint(5_000, track.duration_ms)]
        )
        t = at
        while position < listened_total:
            step = min(PROGRESS_EVERY_MS, listened_total - position)
            position += step
            t += timedelta(milliseconds=step)
            kind = (
                "track_playback_completed"
                if position >= track.duration_ms
                else "track_playback_progress"
            )
            out += self._client(
                t,
                kind,
                "user",
                str(user.user_id),
                session_id=session,
                track_id=track.track_id,
                position_ms=position,
                listened_ms=step,
            )
        return out

    def _download(self, at: datetime, user: User, session: str) -> list[Delivery]:
        tracks = self._live_tracks(at)
        if not tracks:
            return []
        track = self.rng.choice(tracks)
        return self._server(
            at,
            "track_downloaded",
            user,
            session_id=session,
            source="library",
            track_id=track.track_id,
            bytes=track.size_bytes,
        )

    def _upload(self, at: datetime, user: User, session: str) -> list[Delivery]:
        rng = self.rng
        upload_id = uuid7(at)
        container, codec, content_type = rng.choice(CONTAINERS)
        duration = rng.randint(20_000, 240_000)
        size = duration * {"mp3": 40, "flac": 110, "mp4": 32}[container] + rng.randint(0, 5000)
        out = self._server(
            at,
            "track_upload_started",
            user,
            session_id=session,
            source="library",
            bytes=size,
            properties={"upload_id": str(upload_id)},
        )
        done = at + timedelta(seconds=rng.randint(2, 120))
        upload = {
            "id": str(upload_id),
            "owner_id": str(user.user_id),
            "declared_size": size,
            "content_type": content_type,
            "created_at": at,
            "expires_at": at + timedelta(hours=1),
            "finished_at": done,
        }
        if rng.random() < 0.1:
            self.uploads.append(
                {**upload, "status": "rejected", "rejection_code": "unreadable", "track_id": None}
            )
            return out + self._server(
                done,
                "track_upload_rejected",
                user,
                session_id=session,
                source="library",
                properties={"upload_id": str(upload_id), "reason": "unreadable"},
            )
        track = Track(
            uuid7(done),
            user.user_id,
            f"Track {len(self.tracks) + 1}",
            duration,
            container,
            codec,
            content_type,
            size,
            rng.choice(GENRES),
            rng.choice(MOODS),
            done,
            upload_id,
        )
        self.tracks[track.track_id] = track
        self.uploads.append(
            {
                **upload,
                "status": "completed",
                "rejection_code": None,
                "track_id": str(track.track_id),
            }
        )
        return out + self._server(
            done,
            "track_uploaded",
            user,
            session_id=session,
            source="library",
            track_id=track.track_id,
            bytes=size,
            properties={
                "upload_id": str(upload_id),
                "container": container,
                "codec": codec,
                "duration_ms": duration,
            },
        )

    def _delete(self, at: datetime, user: User, session: str) -> list[Delivery]:
        own = [t for t in self._live_tracks(at) if t.owner_id == user.user_id]
        if len(own) < 3 or self.rng.random() < 0.5:
            return self._search(at, user, session)
        track = self.rng.choice(own)
        track.deleted_at = at
        for playlist in self.playlists.values():
            if track.track_id in playlist.track_ids:
                playlist.track_ids.remove(track.track_id)
        return self._server(
            at, "track_deleted", user, session_id=session, source="library", track_id=track.track_id
        )

    def _playlist(self, at: datetime, user: User, session: str) -> list[Delivery]:
        tracks = self._live_tracks(at)
        if len(tracks) < 2:
            return self._upload(at, user, session)
        playlist = Playlist(uuid7(at), user.user_id, f"Playlist {len(self.playlists) + 1}", at)
        self.playlists[playlist.playlist_id] = playlist
        out = self._server(
            at,
            "playlist_created",
            user,
            session_id=session,
            source="playlists",
            playlist_id=playlist.playlist_id,
        )
        for track in self.rng.sample(tracks, min(len(tracks), self.rng.randint(2, 6))):
            at += timedelta(seconds=self.rng.randint(1, 30))
            playlist.track_ids.append(track.track_id)
            out += self._server(
                at,
                "playlist_track_added",
                user,
                session_id=session,
                source="playlists",
                playlist_id=playlist.playlist_id,
                track_id=track.track_id,
            )
        return out

    def _share(self, at: datetime, user: User, session: str) -> list[Delivery]:
        tracks = [t for t in self._live_tracks(at) if t.owner_id == user.user_id]
        others = [u for u in self.users if u is not user and u.created_at is not None]
        if not tracks or not others:
            return self._search(at, user, session)
        share_id = uuid7(at)
        track = self.rng.choice(tracks)
        self.shares.append(
            {
                "id": str(share_id),
                "owner_id": str(user.user_id),
                "object_type": "track",
                "track_id": str(track.track_id),
                "playlist_id": None,
                "grantee_id": str(self.rng.choice(others).user_id),
                "pending": False,
                "permission": "view",
                "created_at": at,
                "updated_at": at,
                "revoked_at": None,
            }
        )
        return self._server(
            at,
            "share_created",
            user,
            session_id=session,
            source="sharing",
            share_id=share_id,
            track_id=track.track_id,
        )

    def _pitch(self, at: datetime, user: User, session: str) -> list[Delivery]:
        rng = self.rng
        own = [
            p
            for p in self.playlists.values()
            if p.owner_id == user.user_id and len(p.track_ids) >= 2
        ]
        if not own:
            return self._playlist(at, user, session)
        playlist = rng.choice(own)
        pitch = Pitch(
            uuid7(at),
            user.user_id,
            playlist.playlist_id,
            f"Pitch {len(self.pitches) + 1}",
            rng.random() < 0.7,
            at,
            list(playlist.track_ids),
        )
        self.pitches[pitch.pitch_id] = pitch
        out = self._server(
            at,
            "pitch_created",
            user,
            session_id=session,
            source="pitching",
            pitch_id=pitch.pitch_id,
            playlist_id=playlist.playlist_id,
        )
        for _ in range(rng.randint(1, 4)):
            at += timedelta(seconds=rng.randint(5, 120))
            recipient = Recipient(uuid7(at), pitch.pitch_id, rng.choice(COMPANIES), at)
            pitch.recipients.append(recipient)
            out += self._server(
                at,
                "pitch_sent",
                user,
                session_id=session,
                source="pitching",
                pitch_id=pitch.pitch_id,
                recipient_id=recipient.recipient_id,
            )
            out += self._recipient(pitch, recipient, at)
        return out

    # -- a pitch recipient ----------------------------------------------------------------------
    def _recipient(self, pitch: Pitch, recipient: Recipient, sent_at: datetime) -> list[Delivery]:
        rng = self.rng
        if rng.random() < 0.25:
            return []  # never opens the link
        at = sent_at + timedelta(
            minutes=rng.randint(20, 3 * 24 * 60), microseconds=rng.randint(0, 999_999)
        )
        out = self._pitch_server(at, "pitch_opened", recipient)
        interest = rng.random()
        for track_id in pitch.track_ids:
            track = self.tracks[track_id]
            if track.deleted_at is not None and track.deleted_at < at:
                continue
            at += timedelta(seconds=rng.randint(2, 40))
            if rng.random() < 0.15 + 0.5 * (1 - interest):
                continue  # does not play this one
            script = self._listening_script(track, interest)
            events, at = self._play(recipient, track, at, script)
            out += events
            if pitch.allow_download and rng.random() < 0.35 * interest:
                at += timedelta(seconds=rng.randint(1, 30))
                out += self._pitch_server(
                    at,
                    "pitch_track_downloaded",
                    recipient,
                    track_id=track_id,
                    bytes=track.size_bytes,
                )
            if rng.random() < 0.4 * interest:
                at += timedelta(seconds=rng.randint(1, 30))
                out += self._pitch_server(
                    at, "pitch_track_shortlisted", recipient, track_id=track_id
                )
                if rng.random() < 0.3:
                    at += timedelta(seconds=rng.randint(10, 600))
                    out += self._pitch_server(
                        at, "pitch_track_unshortlisted", recipient, track_id=track_id
                    )
                    if rng.random() < 0.4:
                        at += timedelta(seconds=rng.randint(10, 600))
                        out += self._pitch_server(
                            at, "pitch_track_shortlisted", recipient, track_id=track_id
                        )
            if rng.random() < 0.2:
                at += timedelta(seconds=rng.randint(5, 90))
                out += self._pitch_server(at, "pitch_comment_added", recipient, track_id=track_id)
        if rng.random() < 0.15:
            at += timedelta(seconds=rng.randint(5, 90))
            out += self._pitch_server(at, "pitch_comment_added", recipient)
        if rng.random() < 0.3:  # comes back another day
            at += timedelta(hours=rng.randint(12, 72))
            out += self._pitch_server(at, "pitch_opened", recipient)
            track = self.tracks[rng.choice(pitch.track_ids)]
            if track.deleted_at is None or track.deleted_at > at:
                events, at = self._play(
                    recipient,
                    track,
                    at + timedelta(seconds=5),
                    [("listen", track.duration_ms), ("end", 0)],
                )
                out += events
        return out

    def _listening_script(self, track: Track, interest: float) -> list[tuple[str, int]]:
        rng = self.rng
        kind = rng.random()
        duration = track.duration_ms
        if kind < 0.3 * (1.2 - interest):  # a few seconds, then the next track
            return [("listen", rng.randint(1_500, 25_000)), ("skip", 0)]
        if kind < 0.55:  # through to the end
            return [("listen", duration), ("end", 0)]
        if kind < 0.7:  # jumps ahead, listens, skips
            return [
                ("listen", rng.randint(3_000, 15_000)),
                ("seek", duration // 2),
                ("listen", rng.randint(5_000, 40_000)),
                ("skip", 0),
            ]
        if kind < 0.85:  # goes back to hear a part again, then to the end
            return [
                ("listen", duration // 2),
                ("seek", duration // 4),
                ("listen", duration),
                ("end", 0),
            ]
        # pauses, resumes, then leaves the page while playing
        return [
            ("listen", rng.randint(10_000, 60_000)),
            ("pause", 0),
            ("resume", rng.randint(5, 600)),
            ("listen", rng.randint(2_000, 30_000)),
            ("leave", 0),
        ]

    def _play(
        self, recipient: Recipient, track: Track, at: datetime, script: Sequence[tuple[str, int]]
    ) -> tuple[list[Delivery], datetime]:
        """The reports the pitch page makes for one play: played, progress every 10 s of
        listening (listened_ms since the previous report), seeks with from_ms, and the report
        that ends it (completed, skipped, paused) with what was listened since the last one."""
        duration = track.duration_ms
        out: list[Delivery] = []
        position = 0
        pending = 0  # listened since the previous report

        def report(kind: str, **extra: Any) -> None:
            out.extend(
                self._pitch_client(
                    at, kind, recipient, track.track_id, position_ms=position, **extra
                )
            )

        report("pitch_track_played")
        for action, amount in script:
            if action == "listen":
                remaining = min(amount, duration - position)
                while remaining > 0:
                    step = min(PROGRESS_EVERY_MS - pending, remaining)
                    position += step
                    pending += step
                    remaining -= step
                    at += timedelta(milliseconds=step)
                    if pending >= PROGRESS_EVERY_MS:
                        report("pitch_track_progress", listened_ms=pending)
                        pending = 0
            elif action == "seek":
                start = position
                position = min(amount, duration)
                at += timedelta(milliseconds=300)
                report("pitch_track_seeked", properties={"from_ms": start})
            elif action == "pause":
                report("pitch_track_paused", listened_ms=pending)
                pending = 0
            elif action == "resume":
                at += timedelta(seconds=amount)
            elif action == "leave":
                if pending:
                    report("pitch_track_progress", listened_ms=pending)
                    pending = 0
            else:
                kind = "pitch_track_completed" if action == "end" else "pitch_track_skipped"
                report(kind, listened_ms=pending)
                pending = 0
        return out, at + timedelta(milliseconds=self.rng.randint(200, 3000))

    # -- making and delivering events -----------------------------------------------------------
    def _make(
        self,
        at: datetime,
        event_type: str,
        actor_type: ActorType,
        actor_id: str,
        source: str,
        **columns: Any,
    ) -> UsageEvent:
        event = UsageEvent(
            event_id=uuid7(at)
            if not CATALOGUE[event_type].client_side
            else uuid.UUID(int=self.rng.getrandbits(128), version=4),
            event_type=event_type,
            event_version=CATALOGUE[event_type].version,
            occurred_at=at,
            actor_type=actor_type,
            actor_id=actor_id,
            source=source,
            **columns,
        )
        problems = validate(event)
        if problems:
            raise ValueError(f"the simulation made an invalid event: {problems}")
        self.events_made += 1
        return event

    def _server(
        self, at: datetime, event_type: str, user: User, *, source: str = "gateway", **columns: Any
    ) -> list[Delivery]:
        """A server-side event: sent to the lake a moment after it happens."""
        event = self._make(at, event_type, "user", str(user.user_id), source, **columns)
        return [Delivery(at + timedelta(milliseconds=self.rng.randint(1, 50)), event)]

    def _pitch_server(
        self, at: datetime, event_type: str, recipient: Recipient, **columns: Any
    ) -> list[Delivery]:
        event = self._make(
            at,
            event_type,
            "recipient",
            str(recipient.recipient_id),
            "pitching",
            pitch_id=recipient.pitch_id,
            recipient_id=recipient.recipient_id,
            **columns,
        )
        return [Delivery(at + timedelta(milliseconds=self.rng.randint(1, 50)), event)]

    def _pitch_client(
        self,
        at: datetime,
        event_type: str,
        recipient: Recipient,
        track_id: uuid.UUID,
        **columns: Any,
    ) -> list[Delivery]:
        return self._client(
            at,
            event_type,
            "recipient",
            str(recipient.recipient_id),
            pitch_id=recipient.pitch_id,
            recipient_id=recipient.recipient_id,
            track_id=track_id,
            **columns,
        )

    def _client(
        self, at: datetime, event_type: str, actor_type: ActorType, actor_id: str, **columns: Any
    ) -> list[Delivery]:
        """A client report: batched by the page (seconds later); a few arrive hours late, a few
        are sent twice (the same event, the second copy later)."""
        event = self._make(at, event_type, actor_type, actor_id, SOURCE_COLLECTOR, **columns)
        rng = self.rng
        delay = timedelta(seconds=rng.uniform(0.5, 20))
        if rng.random() < self.late_share:
            delay = timedelta(hours=rng.uniform(2, 30))
        out = [Delivery(at + delay, event)]
        if rng.random() < self.duplicate_share:
            out.append(Delivery(at + delay + timedelta(seconds=rng.uniform(1, 600)), event))
        return out

    # -- snapshots ------------------------------------------------------------------------------
    def snapshot_rows(self, at: datetime) -> dict[str, list[dict[str, Any]]]:
        """Each snapshot table's rows as the database holds them at ``at``."""
        users = [u for u in self.users if u.created_at is not None and u.created_at <= at]
        live = {
            t.track_id: t
            for t in self.tracks.values()
            if t.created_at <= at and (t.deleted_at is None or t.deleted_at > at)
        }
        pitches = [p for p in self.pitches.values() if p.created_at <= at]
        return {
            "users": [
                {"id": str(u.user_id), "issuer": ISSUER, "created_at": u.created_at} for u in users
            ],
            "tracks": [_track_row(t) for t in live.values()],
            "uploads": [u for u in self.uploads if u["created_at"] <= at],
            "playlists": [
                {
                    "id": str(p.playlist_id),
                    "owner_id": str(p.owner_id),
                    "title": p.title,
                    "track_ids": [str(t) for t in p.track_ids if t in live],
                    "version": 1,
                    "created_at": p.created_at,
                    "updated_at": p.created_at,
                }
                for p in self.playlists.values()
                if p.created_at <= at
            ],
            "shares": [s for s in self.shares if s["created_at"] <= at],
            "pitches": [
                {
                    "id": str(p.pitch_id),
                    "owner_id": str(p.owner_id),
                    "playlist_id": str(p.playlist_id),
                    "title": p.title,
                    "allow_download": p.allow_download,
                    "has_password": False,
                    "expires_at": p.created_at + timedelta(days=30),
                    "revoked_at": None,
                    "version": 1,
                    "created_at": p.created_at,
                    "updated_at": p.created_at,
                }
                for p in pitches
            ],
            "pitch_recipients": [
                {
                    "id": str(r.recipient_id),
                    "pitch_id": str(r.pitch_id),
                    "company": r.company,
                    "link_issued_at": r.created_at,
                    "revoked_at": None,
                    "created_at": r.created_at,
                }
                for p in pitches
                for r in p.recipients
                if r.created_at <= at
            ],
            # Deleting a track deletes its pitch tracks (ON DELETE CASCADE).
            "pitch_tracks": [
                {"pitch_id": str(p.pitch_id), "track_id": str(t), "position": i}
                for p in pitches
                for i, t in enumerate(p.track_ids)
                if t in live
            ],
        }


def _track_row(t: Track) -> dict[str, Any]:
    return {
        "id": str(t.track_id),
        "owner_id": str(t.owner_id),
        "title": t.title,
        "artists": ["The Seeds"],
        "album": None,
        "year": 2024,
        "genre": t.genre,
        "mood": t.mood,
        "tags": [t.mood],
        "instrumental": True,
        "isrc": None,
        "bpm": 96.0,
        "musical_key": "C",
        "duration_ms": t.duration_ms,
        "bitrate": 320_000,
        "sample_rate": 44_100,
        "channels": 2,
        "container": t.container,
        "codec": t.codec,
        "content_type": t.content_type,
        "size_bytes": t.size_bytes,
        "sha256": f"{t.track_id.int:064x}",
        "version": 1,
        "created_at": t.created_at,
        "updated_at": t.created_at,
    }


# -- writing the lake ---------------------------------------------------------------------------
def deliver(lake_dir: Path, deliveries: Iterable[Delivery], *, batch_seconds: float = 60.0) -> int:
    """Send the deliveries (in order of receipt) through a ``LocalLakeWriter``.

    Deliveries received within ``batch_seconds`` of each other go in one ``send`` (as the
    collector takes a page's queued reports in one request); the writer's clock reads the
    batch's last receipt time, which the writer stamps as ``received_at``. Each call's events
    become one file per partition (a call per simulated day: a partition also gets the files
    of the late events delivered the days after). Returns the events sent.
    """
    deliveries = list(deliveries)
    if not deliveries:
        return 0
    clock = ManualClock(deliveries[0].received_at)
    writer = LocalLakeWriter(
        lake_dir, clock, max_buffer_events=1_000_000, max_buffer_seconds=36 * 3600
    )
    sent = 0
    try:
        for batch in _batches(deliveries, timedelta(seconds=batch_seconds)):
            _advance_to(clock, batch[-1].received_at)
            writer.send([d.event for d in batch])
            sent += len(batch)
    finally:
        writer.close()
    return sent


def read_events(lake_dir: Path, dt: date) -> list[UsageEvent]:
    """The events in ``dt``'s partitions, as producers made them (to send them again)."""
    events = []
    for path in sorted(
        (lake_dir / "events" / f"dt={dt.isoformat()}").glob("event_type=*/*.parquet")
    ):
        event_type = path.parent.name.removeprefix("event_type=")
        for row in pq.read_table(path).to_pylist():
            events.append(
                UsageEvent(
                    event_id=uuid.UUID(row["event_id"]),
                    event_type=event_type,
                    event_version=row["event_version"],
                    occurred_at=row["occurred_at"],
                    actor_type=row["actor_type"],
                    source=row["source"],
                    actor_id=row["actor_id"],
                    session_id=row["session_id"],
                    correlation_id=row["correlation_id"],
                    position_ms=row["position_ms"],
                    listened_ms=row["listened_ms"],
                    bytes=row["bytes"],
                    result_count=row["result_count"],
                    latency_ms=row["latency_ms"],
                    properties=json.loads(row["properties"]) if row["properties"] else {},
                    track_id=_uuid(row["track_id"]),
                    playlist_id=_uuid(row["playlist_id"]),
                    pitch_id=_uuid(row["pitch_id"]),
                    recipient_id=_uuid(row["recipient_id"]),
                    share_id=_uuid(row["share_id"]),
                )
            )
    return events


def _uuid(text: str | None) -> uuid.UUID | None:
    return None if text is None else uuid.UUID(text)


def _batches(deliveries: Sequence[Delivery], span: timedelta) -> Iterator[list[Delivery]]:
    batch: list[Delivery] = []
    for delivery in deliveries:
        if batch and delivery.received_at - batch[0].received_at > span:
            yield batch
            batch = []
        batch.append(delivery)
    if batch:
        yield batch


def _advance_to(clock: ManualClock, at: datetime) -> None:
    now = clock.now()
    if at > now:
        clock.advance(at - now)


def write_snapshots(lake_dir: Path, simulation: LakeSimulation, dt: date) -> None:
    """Every snapshot table as the database holds it at the end of ``dt``, in the layout and
    with the columns of ``lake.snapshots``."""
    at = datetime.combine(dt + timedelta(days=1), time(), UTC) - timedelta(microseconds=1)
    rows = simulation.snapshot_rows(at)
    for table in TABLES:
        directory = lake_dir / snapshot_partition(table.name, dt.isoformat())
        directory.mkdir(parents=True, exist_ok=True)
        data = rows[table.name]
        columns = {c.name: pa.array([r.get(c.name) for r in data], c.type) for c in table.columns}
        pq.write_table(
            pa.table(columns, schema=table.schema), directory / FILE_NAME, compression="zstd"
        )


def seeded_lake(
    data_dir: Path,
    *,
    seed: int = 7,
    days: int = 14,
    users: int = 40,
    start: date = date(2025, 3, 3),
    snapshot_days: Sequence[int] = (),
) -> SeededLake:
    """Simulate ``days`` days into ``<data_dir>/lake``: events through the lake writer, then the
    snapshots of the last day (and of the day indexes in ``snapshot_days``, older ones)."""
    lake_dir = data_dir / "lake"
    simulation = LakeSimulation(seed=seed, start=start, users=users)
    sent = 0
    for index in range(days):
        day = start + timedelta(days=index)
        sent += deliver(lake_dir, simulation.day(day))
        if index in snapshot_days:
            write_snapshots(lake_dir, simulation, day)
    last = start + timedelta(days=days - 1)
    write_snapshots(lake_dir, simulation, last)
    return SeededLake(lake_dir, start, last, sent, simulation)
