"""The search index port: tantivy on disk (``local``), OpenSearch (``aws``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from services.core.search.model import Change, SearchQuery, SearchResult


class SearchIndex(Protocol):
    def write(self, changes: Sequence[Change]) -> int:
        """Apply the changes (external versioning: one at or below the version the index holds
        for that track is skipped, so duplicates and stale changes are harmless); visible to
        searches when this returns. How many were applied."""
        ...

    def search(self, query: SearchQuery) -> SearchResult: ...

    def version(self, track_id: object) -> int | None:
        """The version the index holds for a track (a deletion's too); None if never written."""
        ...
