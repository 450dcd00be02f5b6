"""What the search index holds and answers: track documents, changes, queries and results.

One query model, translated by each adapter (tantivy locally, OpenSearch in aws). Access control
is part of the model: every query names its viewer, and a document lists every user who may
see it (``viewers``: the owner and every grantee), so an adapter filters in the index query.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

SortKey = Literal["relevance", "newest", "title", "duration"]
# Free-text fields, most important first; adapters boost them in this order.
TEXT_FIELDS: tuple[str, ...] = ("title", "artists", "album", "tags", "genre", "mood")
FACETS: tuple[str, ...] = ("genre", "mood", "key")


@dataclass(frozen=True)
class TrackDocument:
    """A track as search sees it: its metadata and who may find it."""

    id: uuid.UUID
    owner_id: uuid.UUID
    viewers: frozenset[uuid.UUID]
    title: str
    artists: tuple[str, ...] = ()
    album: str | None = None
    genre: str | None = None
    mood: str | None = None
    tags: tuple[str, ...] = ()
    key: str | None = None
    instrumental: bool | None = None
    bpm: float | None = None
    duration_ms: int = 0
    year: int | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class Upsert:
    """Write ``document`` unless the index already holds a newer ``version`` of it."""

    document: TrackDocument
    version: int


@dataclass(frozen=True)
class Delete:
    """Remove the track unless the index already holds a newer ``version`` of it; the version
    is remembered, so an older upsert arriving later does not bring the track back."""

    id: uuid.UUID
    version: int


Change = Upsert | Delete


@dataclass(frozen=True)
class Range:
    """Inclusive bounds; either may be open."""

    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class SearchQuery:
    viewer: uuid.UUID
    text: str = ""
    genres: tuple[str, ...] = ()
    moods: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    instrumental: bool | None = None
    bpm: Range = field(default_factory=Range)
    duration_ms: Range = field(default_factory=Range)
    year: Range = field(default_factory=Range)
    sort: SortKey = "relevance"
    limit: int = 20
    # Opaque, from a previous SearchResult of the same query.
    cursor: str | None = None


@dataclass(frozen=True)
class Hit:
    document: TrackDocument
    score: float
    # Field -> fragments with the matched words wrapped in <mark>...</mark> (HTML-escaped).
    highlights: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    total: int
    # Facet -> value -> count, over every match the viewer may see (not just this page).
    facets: dict[str, dict[str, int]]
    next_cursor: str | None
