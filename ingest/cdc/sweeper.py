"""The sweeper: publishes what the fast path left behind, and forgets what is long published.

Rows unpublished for longer than ``older_than`` (default 60 s) are republished: a lost or failed
wake-up invoke (Aurora), a publisher that crashed between sending and marking, a sink that was
down. It is ``drain`` with an age condition, so the fast path keeps the fresh rows to itself.
Published rows older than ``retention`` (default 7 days) are deleted in batches, so the table
stays small; ``cdc_versions`` is never trimmed (a deletion is indexed with the last version).

In ``aws`` it runs as a scheduled Lambda (``ingest.cdc.lambdas.sweeper_handler``); in ``local``
the ``Publisher`` loop runs it every few minutes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ingest.cdc.outbox import purge_published
from ingest.cdc.publisher import DEFAULT_LIMIT, ChangeSink, drain

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

SWEEP_AFTER = timedelta(seconds=60)
RETENTION = timedelta(days=7)
PURGE_BATCH = 10_000


@dataclass(frozen=True)
class SweepResult:
    republished: int
    purged: int


def sweep(
    pool: ConnectionPool[Any],
    sink: ChangeSink,
    *,
    older_than: timedelta = SWEEP_AFTER,
    retention: timedelta = RETENTION,
    limit: int = DEFAULT_LIMIT,
    purge_batch: int = PURGE_BATCH,
    max_purge_batches: int = 100,
) -> SweepResult:
    republished = drain(pool, sink, limit, min_age=older_than)
    if republished:
        log.warning("the sweeper republished %d outbox rows older than %s", republished, older_than)
    purged = 0
    for _ in range(max_purge_batches):
        # One short transaction per batch: never a long lock on a busy table.
        with pool.connection() as conn:
            n = purge_published(conn, retention, purge_batch)
        purged += n
        if n < purge_batch:
            break
    return SweepResult(republished, purged)
