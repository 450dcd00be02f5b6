"""Apply change messages to the search index: the part the Lambda and the local path share.

A message only says which track changed; the track's current document and version are read
from the database and written with that version as external version. So:

- duplicates and reordering are harmless: every message of a track leads to the same write,
  and the index skips a version at or below the one it holds;
- the messages of one batch are grouped per track: one read and one write cover them all;
- a track gone from the database is deleted from the index with its last version (kept in
  ``cdc_versions``), which also keeps an older upsert from bringing it back;
- a database that has not yet seen the message's version (a lagging read replica) fails the
  message, so it is retried later instead of being consumed with an older state.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ingest.cdc.outbox import AGGREGATE_TRACK, ChangeMessage
from ingest.indexer.documents import load_documents
from services.core.search.model import Change, Delete, Upsert

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)


class ChangeWriter(Protocol):
    """What the indexer needs of ``services.core.search.port.SearchIndex``: its writes."""

    def write(self, changes: Sequence[Change]) -> int: ...


@dataclass
class IndexResult:
    # Changes the index applied (not skipped as stale).
    applied: int = 0
    # Position in the input -> why that message failed (it is to be retried).
    failed: dict[int, str] = field(default_factory=dict)
    # The changes written, one per track.
    changes: list[Change] = field(default_factory=list)


def index_changes(
    pool: ConnectionPool[Any], index: ChangeWriter, messages: Sequence[ChangeMessage]
) -> IndexResult:
    result = IndexResult()
    by_track: dict[uuid.UUID, list[int]] = {}
    for position, message in enumerate(messages):
        if message.aggregate_type != AGGREGATE_TRACK:
            result.failed[position] = f"unknown aggregate type {message.aggregate_type!r}"
            continue
        by_track.setdefault(message.aggregate_id, []).append(position)
    if not by_track:
        return result

    try:
        with pool.connection() as conn:
            found = load_documents(conn, by_track)
    except Exception as exc:
        log.exception("reading %d track documents failed", len(by_track))
        _fail(result, by_track.values(), f"database: {type(exc).__name__}: {exc}")
        return result

    changes: list[Change] = []
    written: list[int] = []
    for track_id, positions in by_track.items():
        doc, version = found.get(track_id, (None, 0))
        newest = max(messages[p].version for p in positions)
        if version < newest:
            _fail(result, [positions], f"the database is at version {version} of {newest}")
            continue
        if version == 0:
            continue  # never recorded: nothing to index (and nothing was ever indexed)
        changes.append(Upsert(doc, version) if doc is not None else Delete(track_id, version))
        written += positions
    if not changes:
        return result
    try:
        result.applied = index.write(changes)
    except Exception as exc:
        log.exception("writing %d changes to the search index failed", len(changes))
        _fail(result, [written], f"index: {type(exc).__name__}: {exc}")
        return result
    result.changes = changes
    return result


def _fail(result: IndexResult, groups: Iterable[Iterable[int]], reason: str) -> None:
    for positions in groups:
        for position in positions:
            result.failed[position] = reason
