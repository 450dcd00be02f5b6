"""The catalogue of every usage event type: what it means, who emits it, what it must carry.

Each entry names the columns its events must fill beyond the envelope's always-required ones.
A required name is either an envelope column (``track_id``) or a key inside ``properties``
written ``properties.<key>``. ``validate`` checks an event against its entry; the emitter calls it
before anything is buffered, and the generated schemas and docs (``ingest.events.schemas``) are
built from this module and the envelope.

Evolution: adding an optional column (to the envelope, or a key in ``properties``) is a minor
change, because old files stay readable (an absent column reads as null). Anything else (a column
becoming required, a removal, a rename, a new type or unit or meaning) is a new event version.
``EVOLUTION_RULES`` spells the rules out; they are rendered into docs/events.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ingest.events.envelope import COLUMNS, MEASURE_COLUMNS, ActorType, UsageEvent

PROPERTIES_PREFIX = "properties."

EVOLUTION_RULES: tuple[str, ...] = (
    "Adding an optional column to the envelope, or an optional key inside `properties`, is a "
    "minor change: the event version stays. Files written before it stay readable, because a "
    "column absent from a file reads as null (Athena resolves Parquet columns by name; DuckDB "
    "needs `union_by_name=true`).",
    "Anything else is a new version of the event type: a column or key becoming required, a "
    "removal, a rename, or a change of type, unit or meaning. Bump `version` in the catalogue; "
    "old files keep the old `event_version`, so models branch on it.",
    "The collector accepts a client-side type only at the catalogue's current version, so a new "
    "version of a client-side type ships together with the clients that send it.",
    "Envelope columns are never removed, renamed or retyped: files already in the lake hold them "
    "for ever. Stop filling a column instead, and say so in its description.",
    "A new event type is a new catalogue entry at version 1. The Glue table's partition "
    "projection lists the event types, so regenerate and re-apply the table "
    "(`lake.glue.ensure_events_table`) before the first such event is emitted; until then "
    "Athena does not see its partitions.",
    "After any change run `python -m ingest.events.schemas` and commit the generated files; a "
    "test fails while they are stale.",
)


@dataclass(frozen=True)
class EventType:
    """One event type at its current version."""

    name: str
    version: int
    description: str
    emitted_by: str
    actor_types: tuple[ActorType, ...]
    required: tuple[str, ...]
    client_side: bool


# The envelope's always-required columns, except received_at, which the sink stamps on arrival.
ALWAYS_REQUIRED: tuple[str, ...] = tuple(
    c.name for c in COLUMNS if c.required and c.name != "received_at"
)

_PLAYER = "player (client, through the collector)"
_RECIPIENT_PAGE = "pitch recipient page (client, through the collector)"

_TYPES: tuple[EventType, ...] = (
    EventType(
        "user_signed_in",
        1,
        "A user signed in and got a new session.",
        "gateway",
        ("user",),
        ("session_id",),
        client_side=False,
    ),
    EventType(
        "track_upload_started",
        1,
        "A user asked for an upload URL; `bytes` is the declared file size.",
        "library",
        ("user",),
        ("bytes", "properties.upload_id"),
        client_side=False,
    ),
    EventType(
        "track_uploaded",
        1,
        "An upload completed, passed the checks and became a track; `bytes` is the file size.",
        "library",
        ("user",),
        ("track_id", "bytes", "properties.upload_id"),
        client_side=False,
    ),
    EventType(
        "track_upload_rejected",
        1,
        "An upload was refused (unreadable, too large, duplicate) or expired unfinished; "
        "`properties.reason` is the rejection code.",
        "library (the sweeper for expiries)",
        ("user", "system"),
        ("properties.upload_id", "properties.reason"),
        client_side=False,
    ),
    EventType(
        "track_updated",
        1,
        "A track's metadata changed; `properties.fields` lists the fields changed.",
        "library",
        ("user",),
        ("track_id", "properties.fields"),
        client_side=False,
    ),
    EventType(
        "track_deleted",
        1,
        "A track was deleted.",
        "library",
        ("user",),
        ("track_id",),
        client_side=False,
    ),
    EventType(
        "track_stream_started",
        1,
        "A user got a stream URL for a track (one per play start, not per range request).",
        "library",
        ("user",),
        ("track_id",),
        client_side=False,
    ),
    EventType(
        "track_playback_progress",
        1,
        "The player's periodic report while a track plays; `listened_ms` counts only the time "
        "played since the previous report, so sums give time listened.",
        _PLAYER,
        ("user",),
        ("track_id", "position_ms", "listened_ms"),
        client_side=True,
    ),
    EventType(
        "track_playback_completed",
        1,
        "The player reached the end of a track; `listened_ms` is the time since the last "
        "progress report.",
        _PLAYER,
        ("user",),
        ("track_id", "position_ms", "listened_ms"),
        client_side=True,
    ),
    EventType(
        "track_downloaded",
        1,
        "A user got a download URL for a track's file; `bytes` is the file size.",
        "library",
        ("user",),
        ("track_id", "bytes"),
        client_side=False,
    ),
    EventType(
        "playlist_created",
        1,
        "A playlist was created.",
        "playlists",
        ("user",),
        ("playlist_id",),
        client_side=False,
    ),
    EventType(
        "playlist_updated",
        1,
        "A playlist's details changed; `properties.fields` lists the fields changed.",
        "playlists",
        ("user",),
        ("playlist_id", "properties.fields"),
        client_side=False,
    ),
    EventType(
        "playlist_deleted",
        1,
        "A playlist was deleted.",
        "playlists",
        ("user",),
        ("playlist_id",),
        client_side=False,
    ),
    EventType(
        "playlist_track_added",
        1,
        "A track was added to a playlist.",
        "playlists",
        ("user",),
        ("playlist_id", "track_id"),
        client_side=False,
    ),
    EventType(
        "playlist_track_removed",
        1,
        "A track was removed from a playlist.",
        "playlists",
        ("user",),
        ("playlist_id", "track_id"),
        client_side=False,
    ),
    EventType(
        "playlist_reordered",
        1,
        "A playlist's tracks were put in a new order.",
        "playlists",
        ("user",),
        ("playlist_id",),
        client_side=False,
    ),
    EventType(
        "share_created",
        1,
        "A user shared a track or a playlist (`track_id` or `playlist_id`) with another user.",
        "sharing",
        ("user",),
        ("share_id",),
        client_side=False,
    ),
    EventType(
        "share_opened",
        1,
        "The user a share was made for opened the shared track or playlist.",
        "client, through the collector",
        ("user",),
        ("share_id",),
        client_side=True,
    ),
    EventType(
        "share_revoked",
        1,
        "The owner revoked a share.",
        "sharing",
        ("user",),
        ("share_id",),
        client_side=False,
    ),
    EventType(
        "pitch_created",
        1,
        "An owner created a pitch of a playlist.",
        "pitching",
        ("user",),
        ("pitch_id", "playlist_id"),
        client_side=False,
    ),
    EventType(
        "pitch_sent",
        1,
        "A pitch's capability link was issued to one recipient (one event per recipient; "
        "`properties.reissued` is true when a new link replaced the old one).",
        "pitching",
        ("user",),
        ("pitch_id", "recipient_id"),
        client_side=False,
    ),
    EventType(
        "pitch_opened",
        1,
        "A recipient opened the pitch page through their link (recorded when the page is "
        "served, after the password where there is one).",
        "pitching",
        ("recipient",),
        ("pitch_id", "recipient_id"),
        client_side=False,
    ),
    EventType(
        "pitch_updated",
        1,
        "An owner changed a pitch (title, message, expiry, download permission or password); "
        "`properties.fields` lists the fields changed.",
        "pitching",
        ("user",),
        ("pitch_id", "properties.fields"),
        client_side=False,
    ),
    EventType(
        "pitch_revoked",
        1,
        "The owner revoked a pitch (for every recipient, or for the one in `recipient_id`).",
        "pitching",
        ("user",),
        ("pitch_id",),
        client_side=False,
    ),
    EventType(
        "pitch_expired",
        1,
        "A pitch reached its expiry time; its links stop working.",
        "pitching (expiry sweeper)",
        ("system",),
        ("pitch_id",),
        client_side=False,
    ),
    EventType(
        "pitch_track_played",
        1,
        "A recipient started playing a track of a pitch.",
        _RECIPIENT_PAGE,
        ("recipient",),
        ("pitch_id", "recipient_id", "track_id"),
        client_side=True,
    ),
    EventType(
        "pitch_track_progress",
        1,
        "The recipient page's periodic report while a pitch track plays; `listened_ms` counts "
        "only the time played since the previous report.",
        _RECIPIENT_PAGE,
        ("recipient",),
        ("pitch_id", "recipient_id", "track_id", "position_ms", "listened_ms"),
        client_side=True,
    ),
    EventType(
        "pitch_track_paused",
        1,
        "The recipient paused a pitch track; `listened_ms` counts the time played since the "
        "previous report.",
        _RECIPIENT_PAGE,
        ("recipient",),
        ("pitch_id", "recipient_id", "track_id", "position_ms", "listened_ms"),
        client_side=True,
    ),
    EventType(
        "pitch_track_seeked",
        1,
        "The recipient moved the play position of a pitch track to `position_ms`; "
        "`properties.from_ms` is where it was.",
        _RECIPIENT_PAGE,
        ("recipient",),
        ("pitch_id", "recipient_id", "track_id", "position_ms", "properties.from_ms"),
        client_side=True,
    ),
    EventType(
        "pitch_track_completed",
        1,
        "A pitch track played to its end; `listened_ms` counts the time played since the "
        "previous report.",
        _RECIPIENT_PAGE,
        ("recipient",),
        ("pitch_id", "recipient_id", "track_id", "position_ms", "listened_ms"),
        client_side=True,
    ),
    EventType(
        "pitch_track_skipped",
        1,
        "The recipient left a playing pitch track for another one before its end; "
        "`listened_ms` counts the time played since the previous report.",
        _RECIPIENT_PAGE,
        ("recipient",),
        ("pitch_id", "recipient_id", "track_id", "position_ms", "listened_ms"),
        client_side=True,
    ),
    EventType(
        "pitch_track_downloaded",
        1,
        "A recipient got a download URL for a pitch track; `bytes` is the file size.",
        "pitching",
        ("recipient",),
        ("pitch_id", "recipient_id", "track_id", "bytes"),
        client_side=False,
    ),
    EventType(
        "pitch_track_shortlisted",
        1,
        "A recipient shortlisted a track of a pitch.",
        "pitching (the recipient page's feedback)",
        ("recipient",),
        ("pitch_id", "recipient_id", "track_id"),
        client_side=False,
    ),
    EventType(
        "pitch_track_unshortlisted",
        1,
        "A recipient took a track of a pitch off their shortlist.",
        "pitching (the recipient page's feedback)",
        ("recipient",),
        ("pitch_id", "recipient_id", "track_id"),
        client_side=False,
    ),
    EventType(
        "pitch_comment_added",
        1,
        "A recipient commented on a pitch, or on one of its tracks (`track_id`). The text stays "
        "in the pitching service, out of the lake.",
        "pitching (the recipient page's feedback)",
        ("recipient",),
        ("pitch_id", "recipient_id"),
        client_side=False,
    ),
    EventType(
        "search_performed",
        1,
        "A search ran; `properties.query` is the query text and `properties.filters` the "
        "filters, if any.",
        "search",
        ("user",),
        ("result_count", "latency_ms", "properties.query"),
        client_side=False,
    ),
)

CATALOGUE: Mapping[str, EventType] = MappingProxyType({t.name: t for t in _TYPES})


def validate(event: UsageEvent) -> list[str]:
    """Every way the event breaks the envelope or its catalogue entry; empty when it is valid."""
    entry = CATALOGUE.get(event.event_type)
    if entry is None:
        return [f"unknown event type {event.event_type!r}"]
    name = entry.name
    problems = [
        f"{name}: {column} is required"
        for column in (*ALWAYS_REQUIRED, *entry.required)
        if _missing(event, column)
    ]
    if event.event_version != entry.version:
        problems.append(f"{name}: event_version {event.event_version}, expected {entry.version}")
    if event.actor_type not in entry.actor_types:
        allowed = ", ".join(entry.actor_types)
        problems.append(f"{name}: actor_type {event.actor_type!r} not allowed ({allowed})")
    # A person acting without an id makes the event useless for any per-user analysis.
    if event.actor_type in ("user", "recipient") and not event.actor_id:
        problems.append(f"{name}: actor_id is required when a {event.actor_type} acts")
    for measure in MEASURE_COLUMNS:
        value = getattr(event, measure)
        if value is not None and value < 0:
            problems.append(f"{name}: {measure} is negative ({value})")
    if event.occurred_at.tzinfo is None or event.occurred_at.utcoffset() is None:
        problems.append(f"{name}: occurred_at is not timezone-aware")
    return problems


def _missing(event: UsageEvent, column: str) -> bool:
    if column.startswith(PROPERTIES_PREFIX):
        # A key that is there is there, even empty: a search with filters only has query "".
        return event.properties.get(column.removeprefix(PROPERTIES_PREFIX)) is None
    value = getattr(event, column)
    return value is None or value == ""
