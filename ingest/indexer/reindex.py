"""A full reindex: every track from one database snapshot into a new index generation, swapped
in at the end, while searches keep using the old one and the indexer keeps writing."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingest.indexer.documents import all_documents
from services.core.search.model import Upsert

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from services.core.search.port import SearchIndex

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class Reindexed:
    tracks: int
    seconds: float
    generation: str

    @property
    def per_second(self) -> float:
        return self.tracks / self.seconds if self.seconds else 0.0


def reindex(
    pool: ConnectionPool[Any],
    index: SearchIndex,
    *,
    batch_size: int = 2000,
    progress: Progress | None = None,
) -> Reindexed:
    started = time.perf_counter()
    with pool.connection() as conn:
        row = conn.execute("SELECT count(*) AS n FROM tracks").fetchone()
    total = int(row["n"]) if row else 0
    done = 0
    # The snapshot is read after the rebuild began: a change committed meanwhile is either in
    # the snapshot or written (by the indexer) after begin_rebuild, which carries it over.
    with index.begin_rebuild() as rebuild:
        for batch in all_documents(pool, batch_size):
            rebuild.add(Upsert(document, version) for document, version in batch)
            done += len(batch)
            if progress is not None:
                progress(done, max(total, done))
        generation = rebuild.commit_swap()
    return Reindexed(done, time.perf_counter() - started, generation)
