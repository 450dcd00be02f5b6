"""What the search index holds and answers: track documents, changes, queries and results.

One query model, translated by each adapter (tantivy locally, OpenSearch in aws). Access control
is part of the model: every query names its viewer, and a document lists every user who may
see it (``viewers``: the owner and every grantee), so an adapter filters in the index query.

The text rules both adapters follow:

- Words are runs of letters and digits (``query_words``); case and accents do not matter.
- Every word must match in at least one of ``TEXT_FIELDS`` (AND across words, OR across
  fields); a field's matches weigh ``FIELD_BOOSTS[field]``, in ``TEXT_FIELDS`` order.
- Each word is typo-tolerant: ``fuzzy_distance`` edits (0 below 4 characters, 1 for 4-7,
  2 from 8); the last word also matches as a prefix (as you type), typo-tolerant too.
- Keyword values (genre, mood, tags, key in filters and facets) compare after
  ``normalize_keyword`` (trimmed, lowercased): facets report the normalized values.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

SortKey = Literal["relevance", "newest", "title", "duration"]
# Free-text fields, most important first; adapters boost them in this order.
TEXT_FIELDS: tuple[str, ...] = ("title", "artists", "album", "tags", "genre", "mood")
FIELD_BOOSTS: dict[str, float] = {
    "title": 3.0,
    "artists": 2.5,
    "album": 2.0,
    "tags": 1.5,
    "genre": 1.25,
    "mood": 1.0,
}
FACETS: tuple[str, ...] = ("genre", "mood", "key")
# Fields whose matches come back as highlights (whole values, matched words in <mark>).
HIGHLIGHT_FIELDS: tuple[str, ...] = ("title", "artists", "album")

_WORD = re.compile(r"[^\W_]+")


class InvalidCursor(ValueError):
    """The cursor was not issued for this query (or is not a cursor at all): start again
    without one. The search API answers 400 ``invalid_cursor``."""


class SearchIndexError(RuntimeError):
    """The index refused or failed a request (not a stale change: those are skipped)."""


class RebuildInProgress(SearchIndexError):
    """Another rebuild of this index is running; one at a time."""


def query_words(text: str) -> list[str]:
    """The words of free text as both adapters split it: letters and digits, lowercased."""
    return [w.lower() for w in _WORD.findall(unicodedata.normalize("NFC", text))]


def fuzzy_distance(word: str) -> int:
    """How many edits (insert, delete, substitute, transpose) a word of this length tolerates."""
    if len(word) < 4:
        return 0
    return 1 if len(word) < 8 else 2


def normalize_keyword(value: str) -> str:
    """A genre, mood, tag or key as filters and facets compare it."""
    return unicodedata.normalize("NFC", value).strip().lower()


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

    @property
    def id(self) -> uuid.UUID:
        return self.document.id


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
    # Opaque, from a previous SearchResult of the same query (any limit); else InvalidCursor.
    cursor: str | None = None


@dataclass(frozen=True)
class Hit:
    document: TrackDocument
    # The relevance score under sort="relevance"; 0.0 under the other sorts.
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
