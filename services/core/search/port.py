"""The search index port: tantivy on disk (``local``), OpenSearch (``aws``).

Writes
------
``write(changes)`` applies upserts and deletes with EXTERNAL versioning: the version is the
database's change counter for the track. A change at or below the version the index holds for
that track is skipped (so duplicate, replayed and reordered messages are harmless); a delete
leaves a tombstone with its version, so an older upsert arriving later does not bring the
track back. Within one call the changes apply in order. When ``write`` returns the changes are
visible to every search (also in other processes). Only errors that are not stale changes
raise (``SearchIndexError``); the caller retries them.

Reindex (a new generation, then an atomic swap)
-----------------------------------------------
::

    with index.begin_rebuild() as rebuild:          # 1. a new, empty generation
        for batch in database_snapshot_batches():   # 2. read the database AFTER begin_rebuild
            rebuild.add(batch)                      #    Upserts; a progress bar per batch
        rebuild.apply(changes_you_know_of)          # 3. optional: more changes, versioned
        rebuild.commit_swap()                       # 4. searches switch to it atomically
    # leaving the block without commit_swap (an exception) aborts: the generation is removed

Searches keep using the live generation until the swap. While a rebuild is open, every
``write`` (from any process, e.g. the indexer) also reaches the new generation, so a change
committed while the snapshot is being read is not lost: either the snapshot holds it, or its
write happens after ``begin_rebuild`` and is carried over; versions settle the overlap. One
rebuild at a time (``RebuildInProgress``); a rebuild whose process died is cleaned up by the
next ``begin_rebuild``. A rebuild drops the tombstones of tracks deleted before it began.

- tantivy: generation directories ``<path>/gen-000001`` ... and a pointer file
  ``<path>/CURRENT`` replaced atomically (``os.replace``); every search checks the pointer, so
  readers in other processes switch on their next search. Writes made while a rebuild is open
  are journaled next to the new generation and replayed into it under the write lock at the
  swap. The generation before the live one is kept; older ones are removed at a swap.
- OpenSearch: indices ``<alias>-gen-000001`` ... behind the alias; the swap is one
  ``update_aliases`` call; while a rebuild is open, the alias ``<alias>-rebuilding`` names the
  new index and writes go to both. The previous index is kept; older ones are deleted.

Search
------
``search(query)`` returns one page: hits (with highlights), the total and facet counts over
every match the viewer may see, and a cursor for the next page (None on the last page). A
cursor is bound to its query (viewer, text, filters, sort; not the limit): any other query
raises ``InvalidCursor`` (a ValueError). Pagination is keyset ("search after" the last hit's
sort key, ties broken by id), so concurrent writes neither repeat nor skip the hits that stay.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Protocol, Self

from services.core.search.model import Change, SearchQuery, SearchResult, Upsert


class Rebuild(Protocol):
    """A new generation of the index being built; live searches do not see it until
    ``commit_swap``. Use as a context manager: leaving it without a swap aborts."""

    @property
    def generation(self) -> str:
        """The new generation's name (tantivy directory or OpenSearch index)."""
        ...

    def add(self, upserts: Iterable[Upsert]) -> int:
        """Add a batch of documents (a newer version of the same track wins). How many were
        taken (not skipped as stale)."""
        ...

    def apply(self, changes: Sequence[Change]) -> int:
        """Apply changes to the new generation, versioned like ``SearchIndex.write``."""
        ...

    def commit_swap(self) -> str:
        """Carry over the writes made meanwhile, make the new generation durable and swap it
        in atomically; returns its name. The rebuild is finished afterwards."""
        ...

    def abort(self) -> None:
        """Drop the new generation; the live one stays. Harmless after ``commit_swap``."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class SearchIndex(Protocol):
    def write(self, changes: Sequence[Change]) -> int:
        """Apply the changes (external versioning: one at or below the version the index holds
        for that track is skipped, so duplicates and stale changes are harmless); visible to
        searches when this returns. How many were applied."""
        ...

    def search(self, query: SearchQuery) -> SearchResult: ...

    def version(self, track_id: uuid.UUID) -> int | None:
        """The version the index holds for a track (a deletion's too); None if never written."""
        ...

    def begin_rebuild(self) -> Rebuild:
        """Start building a new generation (see the module documentation)."""
        ...

    def close(self) -> None:
        """Release what the adapter holds (tantivy: the writer lock). Using it again reopens."""
        ...
