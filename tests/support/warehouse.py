"""A small analytics warehouse: the marts' tables in a DuckDB file with realistic rows, for the
report and dashboard tests (no dbt, no lake).

``MARTS`` holds each mart's columns in the order and with the types ``musicsync analytics
build`` gives them (``dbt/models/marts/**``; a test compares the names with the marts' YAML).
``build_warehouse(path)`` writes the file; ``empty=True`` leaves every mart without rows, as a
build over an empty lake would.

The rows:

- Three pitches. ``SUMMER`` ("Summer campaign picks", sent 3 March 2025 09:00 to 8 recipients,
  3 tracks) is the one the report tests read; its figures are in the table below. ``AUTUMN``
  (4 recipients, 2 tracks) and ``GAME_JAM`` (3 recipients of whom 2 were sent the link, nobody
  opened it) fill the funnel across pitches.
- 60 users active on seeded days over five weeks, from which daily, weekly and 28-day actives
  and weekly retention cohorts are computed the way the marts compute them.
- Searches, uploads and deletions by format, and daily track popularity, seeded.

SUMMER, recipient by recipient (HL "Harbour Lights", MR "Midnight Run", PB "Paper Boats"):

==  ================  ==============  ==================================================
r1  Northlight Films  opened +1 h     HL played through, downloaded, shortlisted, 1
                                      comment; MR skipped after 20 s
r2  Bluebird Ads      opened +5 h     HL played twice (rewound 60 s), shortlisted (not
                                      downloaded); PB played through
r3  Kite Games        opened +27 h    HL half; MR played through; a comment on the pitch
r4  Harbour TV        opened +23.5 h  HL skipped after 15 s, downloaded
r5  Oakline Studio    opened +4 days  nothing played
r6  Kite Games        not opened
r7  (no company)      not opened
r8  Sable & Co        not opened
==  ================  ==============  ==================================================
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

_NAMESPACE = uuid.UUID("6f1d7c2e-5b0a-4c1e-9a57-3d2b8e0f4a10")


def fixed_id(name: str) -> str:
    """A stable UUID for a fixture row (the marts hold ids as text)."""
    return str(uuid.uuid5(_NAMESPACE, name))


# -- the marts' columns (names and types as the build leaves them) --------------------------------
MARTS: dict[str, tuple[tuple[str, str], ...]] = {
    "dim_tracks": (
        ("track_id", "VARCHAR"),
        ("owner_id", "VARCHAR"),
        ("title", "VARCHAR"),
        ("artists", "VARCHAR"),
        ("album", "VARCHAR"),
        ("release_year", "BIGINT"),
        ("genre", "VARCHAR"),
        ("mood", "VARCHAR"),
        ("is_instrumental", "BOOLEAN"),
        ("duration_ms", "BIGINT"),
        ("container", "VARCHAR"),
        ("codec", "VARCHAR"),
        ("size_bytes", "BIGINT"),
        ("created_at", "TIMESTAMP"),
        ("updated_at", "TIMESTAMP"),
    ),
    "fct_pitch_engagement": (
        ("pitch_id", "VARCHAR"),
        ("recipient_id", "VARCHAR"),
        ("track_id", "VARCHAR"),
        ("pitch_title", "VARCHAR"),
        ("pitch_owner_id", "VARCHAR"),
        ("recipient_company", "VARCHAR"),
        ("track_position", "BIGINT"),
        ("track_title", "VARCHAR"),
        ("duration_ms", "BIGINT"),
        ("sent_at", "TIMESTAMP"),
        ("first_opened_at", "TIMESTAMP"),
        ("plays", "HUGEINT"),
        ("listened_ms", "HUGEINT"),
        ("furthest_position_ms", "BIGINT"),
        ("furthest_position_share", "DOUBLE"),
        ("completed", "BOOLEAN"),
        ("skipped", "BOOLEAN"),
        ("skipped_plays", "HUGEINT"),
        ("rewound_ms", "HUGEINT"),
        ("downloads", "HUGEINT"),
        ("shortlisted", "BOOLEAN"),
        ("shortlisted_at", "TIMESTAMP"),
        ("comment_count", "HUGEINT"),
        ("first_played_at", "TIMESTAMP"),
        ("first_downloaded_at", "TIMESTAMP"),
        ("last_activity_at", "TIMESTAMP"),
    ),
    "fct_pitch_funnel": (
        ("pitch_id", "VARCHAR"),
        ("recipient_id", "VARCHAR"),
        ("pitch_title", "VARCHAR"),
        ("pitch_owner_id", "VARCHAR"),
        ("recipient_company", "VARCHAR"),
        ("sent_at", "TIMESTAMP"),
        ("opened_at", "TIMESTAMP"),
        ("played_at", "TIMESTAMP"),
        ("downloaded_at", "TIMESTAMP"),
        ("shortlisted_at", "TIMESTAMP"),
        ("is_sent", "BOOLEAN"),
        ("is_opened", "BOOLEAN"),
        ("is_played", "BOOLEAN"),
        ("is_downloaded", "BOOLEAN"),
        ("is_shortlisted", "BOOLEAN"),
        ("furthest_step", "VARCHAR"),
        ("seconds_sent_to_opened", "DOUBLE"),
        ("seconds_opened_to_played", "DOUBLE"),
        ("seconds_played_to_downloaded", "DOUBLE"),
        ("seconds_downloaded_to_shortlisted", "DOUBLE"),
        ("sends", "HUGEINT"),
        ("opens", "HUGEINT"),
        ("plays", "HUGEINT"),
        ("listened_ms", "HUGEINT"),
        ("downloads", "HUGEINT"),
        ("shortlisted_tracks", "HUGEINT"),
        ("comment_count", "HUGEINT"),
    ),
    "mart_catalog_growth": (
        ("container", "VARCHAR"),
        ("codec", "VARCHAR"),
        ("uploads", "HUGEINT"),
        ("uploaded_bytes", "HUGEINT"),
        ("uploaded_duration_ms", "HUGEINT"),
        ("deletions", "HUGEINT"),
        ("deleted_bytes", "HUGEINT"),
        ("tracks_stored", "HUGEINT"),
        ("bytes_stored", "HUGEINT"),
        ("dt", "DATE"),
    ),
    "mart_retention_weekly": (
        ("cohort_week", "DATE"),
        ("weeks_since_first", "BIGINT"),
        ("activity_week", "DATE"),
        ("cohort_users", "BIGINT"),
        ("active_users", "BIGINT"),
        ("retention_rate", "DOUBLE"),
    ),
    "mart_search_terms": (
        ("query", "VARCHAR"),
        ("searches", "BIGINT"),
        ("zero_result_searches", "HUGEINT"),
        ("zero_result_rate", "DOUBLE"),
        ("searchers", "BIGINT"),
        ("avg_result_count", "DOUBLE"),
        ("avg_latency_ms", "DOUBLE"),
        ("daily_rank", "BIGINT"),
        ("dt", "DATE"),
    ),
    "mart_track_popularity_daily": (
        ("track_id", "VARCHAR"),
        ("plays", "HUGEINT"),
        ("listened_ms", "HUGEINT"),
        ("listeners", "BIGINT"),
        ("streams", "HUGEINT"),
        ("stream_listened_ms", "HUGEINT"),
        ("stream_completions", "HUGEINT"),
        ("downloads", "HUGEINT"),
        ("pitch_plays", "HUGEINT"),
        ("pitch_listened_ms", "HUGEINT"),
        ("pitch_completions", "HUGEINT"),
        ("pitch_downloads", "HUGEINT"),
        ("shortlists", "HUGEINT"),
        ("playlist_adds", "HUGEINT"),
        ("dt", "DATE"),
    ),
    "mart_user_activity_daily": (
        ("dau", "BIGINT"),
        ("wau", "BIGINT"),
        ("mau", "BIGINT"),
        ("new_users", "BIGINT"),
        ("dau_over_mau", "DOUBLE"),
        ("events", "HUGEINT"),
        ("sessions", "HUGEINT"),
        ("dt", "DATE"),
    ),
}

# -- the catalogue --------------------------------------------------------------------------------
OWNER = fixed_id("user:alice")
FIRST_DAY = date(2025, 2, 24)  # a Monday
LAST_DAY = date(2025, 3, 30)  # a Sunday: five whole weeks


@dataclass(frozen=True)
class Track:
    key: str
    title: str
    duration_ms: int
    container: str
    codec: str
    genre: str
    mood: str
    popularity: float

    @property
    def id(self) -> str:
        return fixed_id(f"track:{self.key}")


TRACKS = {
    t.key: t
    for t in (
        Track("hl", "Harbour Lights", 200_000, "flac", "flac", "ambient", "calm", 1.0),
        Track("mr", "Midnight Run", 180_000, "mp3", "mp3", "electronic", "tense", 0.8),
        Track("pb", "Paper Boats", 150_000, "mp3", "mp3", "folk", "happy", 0.6),
        Track("gg", "Glass Garden", 210_000, "mp4", "aac", "ambient", "uplifting", 0.5),
        Track("na", "Neon Alley", 170_000, "mp3", "mp3", "electronic", "dark", 0.4),
        Track("qh", "Quiet Hours", 240_000, "flac", "flac", "jazz", "calm", 0.3),
        Track("lm", "Lo-Fi Morning", 130_000, "mp3", "mp3", "hip hop", "happy", 0.9),
        Track("sb", "Static Bloom", 190_000, "mp4", "aac", "rock", "dark", 0.2),
    )
}

# -- pitches --------------------------------------------------------------------------------------
SUMMER = uuid.UUID(fixed_id("pitch:summer"))
AUTUMN = uuid.UUID(fixed_id("pitch:autumn"))
GAME_JAM = uuid.UUID(fixed_id("pitch:game-jam"))
UNKNOWN_PITCH = uuid.UUID(fixed_id("pitch:never-made"))
SUMMER_SENT = datetime(2025, 3, 3, 9, 0)


@dataclass(frozen=True)
class Listening:
    """What one recipient did with one track."""

    plays: int = 0
    listened_ms: int = 0
    furthest_ms: int | None = None
    completed_plays: int = 0
    skipped_plays: int = 0
    rewound_ms: int = 0
    downloads: int = 0
    shortlisted_after: timedelta | None = None  # after the first play
    comments: int = 0
    first_played_after: timedelta | None = None  # after opening
    downloaded_after: timedelta | None = None  # after the first play


@dataclass(frozen=True)
class Recipient:
    key: str
    company: str | None
    sent: bool = True
    opened_after: timedelta | None = None  # after the send
    opens: int = 1
    pitch_comments: int = 0
    tracks: dict[str, Listening] = field(default_factory=dict)

    def id(self, pitch: Pitch) -> str:
        return fixed_id(f"recipient:{pitch.key}:{self.key}")


@dataclass(frozen=True)
class Pitch:
    key: str
    id: uuid.UUID
    title: str
    sent_at: datetime
    tracks: tuple[str, ...]
    recipients: tuple[Recipient, ...]


M = timedelta(minutes=1)
H = timedelta(hours=1)

PITCHES = (
    Pitch(
        "summer",
        SUMMER,
        "Summer campaign picks",
        SUMMER_SENT,
        ("hl", "mr", "pb"),
        (
            Recipient(
                "r1",
                "Northlight Films",
                opened_after=1 * H,
                tracks={
                    "hl": Listening(
                        plays=1,
                        listened_ms=200_000,
                        furthest_ms=200_500,
                        completed_plays=1,
                        downloads=1,
                        shortlisted_after=5 * M,
                        comments=1,
                        first_played_after=1 * M,
                        downloaded_after=4 * M,
                    ),
                    "mr": Listening(
                        plays=1,
                        listened_ms=20_000,
                        furthest_ms=20_000,
                        skipped_plays=1,
                        first_played_after=10 * M,
                    ),
                },
            ),
            Recipient(
                "r2",
                "Bluebird Ads",
                opened_after=5 * H,
                opens=2,
                tracks={
                    "hl": Listening(
                        plays=2,
                        listened_ms=260_000,
                        furthest_ms=200_000,
                        completed_plays=1,
                        rewound_ms=60_000,
                        shortlisted_after=8 * M,
                        first_played_after=2 * M,
                    ),
                    "pb": Listening(
                        plays=1,
                        listened_ms=150_000,
                        furthest_ms=150_000,
                        completed_plays=1,
                        first_played_after=12 * M,
                    ),
                },
            ),
            Recipient(
                "r3",
                "Kite Games",
                opened_after=27 * H,
                pitch_comments=1,
                tracks={
                    "hl": Listening(
                        plays=1, listened_ms=100_000, furthest_ms=100_000, first_played_after=M
                    ),
                    "mr": Listening(
                        plays=1,
                        listened_ms=180_000,
                        furthest_ms=180_000,
                        completed_plays=1,
                        first_played_after=4 * M,
                    ),
                },
            ),
            Recipient(
                "r4",
                "Harbour TV",
                opened_after=timedelta(hours=23, minutes=30),
                tracks={
                    "hl": Listening(
                        plays=1,
                        listened_ms=15_000,
                        furthest_ms=15_000,
                        skipped_plays=1,
                        downloads=1,
                        first_played_after=M,
                        downloaded_after=M,
                    ),
                },
            ),
            Recipient("r5", "Oakline Studio", opened_after=timedelta(days=4, hours=7)),
            Recipient("r6", "Kite Games", opens=0),
            Recipient("r7", None, opens=0),
            Recipient("r8", "Sable & Co", opens=0),
        ),
    ),
    Pitch(
        "autumn",
        AUTUMN,
        "Autumn trailer cues",
        datetime(2025, 3, 17, 10, 0),
        ("pb", "gg"),
        (
            Recipient(
                "a1",
                "Northlight Films",
                opened_after=2 * H,
                tracks={
                    "gg": Listening(
                        plays=2,
                        listened_ms=380_000,
                        furthest_ms=210_000,
                        completed_plays=1,
                        downloads=2,
                        shortlisted_after=3 * M,
                        first_played_after=M,
                        downloaded_after=2 * M,
                    ),
                    "pb": Listening(
                        plays=1, listened_ms=40_000, furthest_ms=40_000, first_played_after=6 * M
                    ),
                },
            ),
            Recipient(
                "a2",
                "Harbour TV",
                opened_after=30 * H,
                tracks={
                    "pb": Listening(
                        plays=1,
                        listened_ms=12_000,
                        furthest_ms=12_000,
                        skipped_plays=1,
                        first_played_after=M,
                    ),
                },
            ),
            Recipient("a3", "Oakline Studio", opened_after=3 * H),
            Recipient("a4", "Kite Games", opens=0),
        ),
    ),
    Pitch(
        "game-jam",
        GAME_JAM,
        "Game jam shortlist",
        datetime(2025, 3, 24, 15, 0),
        ("na",),
        (
            Recipient("g1", "Kite Games", opens=0),
            Recipient("g2", "Pixel Forge", opens=0),
            Recipient("g3", "Pixel Forge", sent=False, opens=0),
        ),
    ),
)


def _pitch_rows(pitch: Pitch) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pitch's rows of fct_pitch_engagement and fct_pitch_funnel, computed as the marts do."""
    engagement: list[dict[str, Any]] = []
    funnel: list[dict[str, Any]] = []
    for recipient in pitch.recipients:
        sent_at = pitch.sent_at if recipient.sent else None
        first_opened = (
            sent_at + recipient.opened_after
            if sent_at is not None and recipient.opened_after is not None
            else None
        )
        firsts: dict[str, list[datetime]] = defaultdict(list)
        totals: dict[str, int] = defaultdict(int)
        for position, key in enumerate(pitch.tracks):
            track = TRACKS[key]
            done = recipient.tracks.get(key, Listening())
            played = (
                first_opened + done.first_played_after
                if first_opened is not None and done.first_played_after is not None
                else None
            )
            downloaded = (
                played + done.downloaded_after
                if played is not None and done.downloaded_after is not None
                else None
            )
            shortlisted = (
                played + done.shortlisted_after
                if played is not None and done.shortlisted_after is not None
                else None
            )
            stamps = [t for t in (played, downloaded, shortlisted) if t is not None]
            last_activity = max(stamps) + 30 * M if stamps else None
            share = (
                min(done.furthest_ms / track.duration_ms, 1.0)
                if done.furthest_ms is not None
                else None
            )
            engagement.append(
                {
                    "pitch_id": str(pitch.id),
                    "recipient_id": recipient.id(pitch),
                    "track_id": track.id,
                    "pitch_title": pitch.title,
                    "pitch_owner_id": OWNER,
                    "recipient_company": recipient.company,
                    "track_position": position,
                    "track_title": track.title,
                    "duration_ms": track.duration_ms,
                    "sent_at": sent_at,
                    "first_opened_at": first_opened,
                    "plays": done.plays,
                    "listened_ms": done.listened_ms,
                    "furthest_position_ms": done.furthest_ms,
                    "furthest_position_share": share,
                    "completed": done.completed_plays > 0,
                    "skipped": done.skipped_plays > 0,
                    "skipped_plays": done.skipped_plays,
                    "rewound_ms": done.rewound_ms,
                    "downloads": done.downloads,
                    "shortlisted": shortlisted is not None,
                    "shortlisted_at": shortlisted,
                    "comment_count": done.comments,
                    "first_played_at": played,
                    "first_downloaded_at": downloaded,
                    "last_activity_at": last_activity,
                }
            )
            for name, stamp in (("played", played), ("downloaded", downloaded)):
                if stamp is not None:
                    firsts[name].append(stamp)
            if shortlisted is not None:
                firsts["shortlisted"].append(shortlisted)
            totals["plays"] += done.plays
            totals["listened_ms"] += done.listened_ms
            totals["downloads"] += done.downloads
            totals["shortlisted_tracks"] += shortlisted is not None
            totals["comment_count"] += done.comments
        # A step is reached once it and every step before it happened, at the latest of them.
        reached: dict[str, datetime | None] = {"sent": sent_at}
        reached["opened"] = (
            max(sent_at, first_opened) if sent_at is not None and first_opened else None
        )
        previous = reached["opened"]
        for step in ("played", "downloaded", "shortlisted"):
            first = min(firsts[step]) if firsts[step] else None
            reached[step] = max(previous, first) if previous is not None and first else None
            previous = reached[step]
        furthest = next((s for s in reversed(list(reached)) if reached[s] is not None), "not sent")

        def seconds(a: str, b: str, stamps: dict[str, datetime | None] = reached) -> float | None:
            start, end = stamps[a], stamps[b]
            return (end - start).total_seconds() if start and end else None

        funnel.append(
            {
                "pitch_id": str(pitch.id),
                "recipient_id": recipient.id(pitch),
                "pitch_title": pitch.title,
                "pitch_owner_id": OWNER,
                "recipient_company": recipient.company,
                "sent_at": reached["sent"],
                "opened_at": reached["opened"],
                "played_at": reached["played"],
                "downloaded_at": reached["downloaded"],
                "shortlisted_at": reached["shortlisted"],
                "is_sent": reached["sent"] is not None,
                "is_opened": reached["opened"] is not None,
                "is_played": reached["played"] is not None,
                "is_downloaded": reached["downloaded"] is not None,
                "is_shortlisted": reached["shortlisted"] is not None,
                "furthest_step": furthest,
                "seconds_sent_to_opened": seconds("sent", "opened"),
                "seconds_opened_to_played": seconds("opened", "played"),
                "seconds_played_to_downloaded": seconds("played", "downloaded"),
                "seconds_downloaded_to_shortlisted": seconds("downloaded", "shortlisted"),
                "sends": 1 if recipient.sent else 0,
                "opens": recipient.opens if first_opened else 0,
                "plays": totals["plays"],
                "listened_ms": totals["listened_ms"],
                "downloads": totals["downloads"],
                "shortlisted_tracks": totals["shortlisted_tracks"],
                "comment_count": totals["comment_count"] + recipient.pitch_comments,
            }
        )
    return engagement, funnel


# -- product activity -----------------------------------------------------------------------------
def _days() -> list[date]:
    return [FIRST_DAY + timedelta(days=n) for n in range((LAST_DAY - FIRST_DAY).days + 1)]


def _active_days(rng: random.Random, users: int = 60) -> dict[int, list[date]]:
    """Each user joins on some day and comes back less and less often."""
    days = _days()
    active: dict[int, list[date]] = {}
    for user in range(users):
        joined = rng.randrange(len(days) - 3)
        keen = rng.uniform(0.15, 0.7)
        seen = [days[joined]]
        for index in range(joined + 1, len(days)):
            weekend = days[index].weekday() >= 5
            chance = keen * (0.5 if weekend else 1.0) * 0.97 ** (index - joined)
            if rng.random() < chance:
                seen.append(days[index])
        active[user] = seen
    return active


def _activity_rows(active: dict[int, list[date]], rng: random.Random) -> list[dict[str, Any]]:
    by_day: dict[date, set[int]] = defaultdict(set)
    first: dict[int, date] = {}
    for user, seen in active.items():
        first[user] = seen[0]
        for d in seen:
            by_day[d].add(user)
    rows = []
    for d in _days():
        window = {
            n: set().union(*(by_day[d - timedelta(days=k)] for k in range(n))) for n in (7, 28)
        }
        dau, mau = len(by_day[d]), len(window[28])
        events = sum(rng.randint(8, 60) for _ in range(dau))
        rows.append(
            {
                "dau": dau,
                "wau": len(window[7]),
                "mau": mau,
                "new_users": sum(1 for f in first.values() if f == d),
                "dau_over_mau": dau / mau if mau else None,
                "events": events,
                "sessions": dau + sum(1 for _ in range(dau) if rng.random() < 0.3),
                "dt": d,
            }
        )
    return rows


def _retention_rows(active: dict[int, list[date]]) -> list[dict[str, Any]]:
    def week(d: date) -> date:
        return d - timedelta(days=d.weekday())

    weeks_of = {user: {week(d) for d in seen} for user, seen in active.items()}
    cohort = {user: min(weeks) for user, weeks in weeks_of.items()}
    all_weeks = sorted(set().union(*weeks_of.values()))
    rows = []
    for cohort_week in sorted(set(cohort.values())):
        members = [u for u, c in cohort.items() if c == cohort_week]
        for activity_week in (w for w in all_weeks if w >= cohort_week):
            active_users = sum(1 for u in members if activity_week in weeks_of[u])
            rows.append(
                {
                    "cohort_week": cohort_week,
                    "weeks_since_first": (activity_week - cohort_week).days // 7,
                    "activity_week": activity_week,
                    "cohort_users": len(members),
                    "active_users": active_users,
                    "retention_rate": active_users / len(members),
                }
            )
    return rows


QUERIES = (
    # query, searches a day (mean), share that find nothing
    ("lo-fi beats", 9, 0.0),
    ("ambient piano", 6, 0.05),
    ("cinematic", 7, 0.0),
    ("happy ukulele", 3, 0.3),
    ("dark synth", 4, 0.0),
    ("uplifting corporate", 5, 0.1),
    ("jazz trio", 2, 0.5),
    ("ambeint pinao", 1, 1.0),
    ("xylophnoe", 1, 1.0),
    ("", 2, 0.0),
)


def _search_rows(rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for d in _days():
        day_rows: list[dict[str, Any]] = []
        for query, mean, zero_share in QUERIES:
            searches = max(0, round(rng.gauss(mean, mean / 3)))
            if searches == 0:
                continue
            zero = sum(1 for _ in range(searches) if rng.random() < zero_share)
            day_rows.append(
                {
                    "query": query,
                    "searches": searches,
                    "zero_result_searches": zero,
                    "zero_result_rate": zero / searches,
                    "searchers": max(1, searches - rng.randint(0, searches // 2)),
                    "avg_result_count": 0.0 if zero == searches else rng.uniform(4, 40),
                    "avg_latency_ms": rng.uniform(8, 60),
                    "dt": d,
                }
            )
        day_rows.sort(key=lambda r: (-r["searches"], r["query"]))
        for rank, row in enumerate(day_rows, start=1):
            row["daily_rank"] = rank
        rows += day_rows
    return rows


def _catalog_rows(rng: random.Random) -> list[dict[str, Any]]:
    formats = {("mp3", "mp3"): 7_500_000, ("flac", "flac"): 38_000_000, ("mp4", "aac"): 5_200_000}
    stored = {f: [0, 0] for f in formats}
    sizes: dict[tuple[str, str], list[int]] = {f: [] for f in formats}
    rows = []
    for d in _days():
        for fmt, mean_size in formats.items():
            uploads = [
                round(mean_size * rng.uniform(0.6, 1.5))
                for _ in range(rng.choice((0, 0, 1, 1, 2, 3)))
            ]
            deletions = []
            if sizes[fmt] and rng.random() < 0.12:
                deletions.append(sizes[fmt].pop(rng.randrange(len(sizes[fmt]))))
            if not uploads and not deletions:
                continue
            sizes[fmt] += uploads
            stored[fmt][0] += len(uploads) - len(deletions)
            stored[fmt][1] += sum(uploads) - sum(deletions)
            rows.append(
                {
                    "container": fmt[0],
                    "codec": fmt[1],
                    "uploads": len(uploads),
                    "uploaded_bytes": sum(uploads),
                    "uploaded_duration_ms": sum(rng.randint(90_000, 260_000) for _ in uploads),
                    "deletions": len(deletions),
                    "deleted_bytes": sum(deletions),
                    "tracks_stored": stored[fmt][0],
                    "bytes_stored": stored[fmt][1],
                    "dt": d,
                }
            )
    return rows


def _popularity_rows(rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for index, d in enumerate(_days()):
        trend = 1 + index / 20
        for track in TRACKS.values():
            streams = max(0, round(rng.gauss(6 * track.popularity * trend, 2)))
            pitch_plays = rng.choice((0, 0, 0, 1, 2)) if track.popularity > 0.4 else 0
            downloads = sum(1 for _ in range(streams) if rng.random() < 0.1)
            adds = sum(1 for _ in range(streams) if rng.random() < 0.05)
            if not (streams or pitch_plays or downloads or adds):
                continue
            stream_ms = sum(rng.randint(10_000, track.duration_ms) for _ in range(streams))
            pitch_ms = sum(rng.randint(10_000, track.duration_ms) for _ in range(pitch_plays))
            rows.append(
                {
                    "track_id": track.id,
                    "plays": streams + pitch_plays,
                    "listened_ms": stream_ms + pitch_ms,
                    "listeners": max(1, streams + pitch_plays - rng.randint(0, 2))
                    if streams + pitch_plays
                    else 0,
                    "streams": streams,
                    "stream_listened_ms": stream_ms,
                    "stream_completions": streams // 3,
                    "downloads": downloads,
                    "pitch_plays": pitch_plays,
                    "pitch_listened_ms": pitch_ms,
                    "pitch_completions": pitch_plays // 2,
                    "pitch_downloads": 1 if pitch_plays == 2 else 0,
                    "shortlists": 1 if pitch_plays == 2 and rng.random() < 0.5 else 0,
                    "playlist_adds": adds,
                    "dt": d,
                }
            )
    return rows


def _track_rows() -> list[dict[str, Any]]:
    rows = []
    for n, track in enumerate(TRACKS.values()):
        created = datetime(2025, 2, 1, 12, 0) + timedelta(days=n)
        sizes = {"flac": 30_000_000, "mp3": 6_000_000, "mp4": 4_500_000}
        rows.append(
            {
                "track_id": track.id,
                "owner_id": OWNER,
                "title": track.title,
                "artists": "Ada Lane, The Tidewater Trio" if n % 3 == 0 else "Ada Lane",
                "album": "Cues Vol. 1",
                "release_year": 2024,
                "genre": track.genre,
                "mood": track.mood,
                "is_instrumental": n % 2 == 0,
                "duration_ms": track.duration_ms,
                "container": track.container,
                "codec": track.codec,
                "size_bytes": sizes[track.container] + n * 1000,
                "created_at": created,
                "updated_at": created,
            }
        )
    return rows


def mart_rows(seed: int = 11) -> dict[str, list[dict[str, Any]]]:
    """Every mart's rows."""
    rng = random.Random(seed)
    active = _active_days(rng)
    engagement: list[dict[str, Any]] = []
    funnel: list[dict[str, Any]] = []
    for pitch in PITCHES:
        e, f = _pitch_rows(pitch)
        engagement += e
        funnel += f
    return {
        "dim_tracks": _track_rows(),
        "fct_pitch_engagement": engagement,
        "fct_pitch_funnel": funnel,
        "mart_catalog_growth": _catalog_rows(rng),
        "mart_retention_weekly": _retention_rows(active),
        "mart_search_terms": _search_rows(rng),
        "mart_track_popularity_daily": _popularity_rows(rng),
        "mart_user_activity_daily": _activity_rows(active, rng),
    }


def build_warehouse(path: Path, *, empty: bool = False, leave_out: tuple[str, ...] = ()) -> Path:
    """Write the warehouse file (``empty``: the tables without rows; ``leave_out``: marts not
    created at all, as after a build that failed before them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = {} if empty else mart_rows()
    with duckdb.connect(str(path)) as connection:
        for table, columns in MARTS.items():
            if table in leave_out:
                continue
            names = [name for name, _ in columns]
            connection.execute(
                f'create or replace table "{table}" ('
                + ", ".join(f'"{name}" {kind}' for name, kind in columns)
                + ")"
            )
            values = [[row[name] for name in names] for row in rows.get(table, [])]
            if values:
                connection.executemany(
                    f'insert into "{table}" values ({", ".join("?" for _ in names)})', values
                )
    return path
