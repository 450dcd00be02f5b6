"""The ``local`` profile's indexer: the publisher's sink, indexing in process.

Where ``aws`` has SNS and SQS between the publisher and the indexer, ``local`` has a direct
call: ``IndexingSink.send`` indexes the batch (``index_changes``, as the Lambda does) and reports
a row delivered only once the index holds its change. So the outbox is the durable queue: a
change whose indexing failed, or was cut short by a crash, is still unpublished and is taken
again (after a backoff on failure; at the next start or poll after a crash). An in-memory queue
between the two would lose what it held when the process died, after the rows were marked.

Batching comes from the publisher: each drain takes up to 500 due rows, and notifications that
arrive while a batch is being indexed fold into the next drain.

``start_local_indexer`` is what ``musicsync up`` runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ingest.cdc.outbox import ChangeMessage
from ingest.cdc.publisher import Publisher
from ingest.indexer.core import ChangeWriter, index_changes

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool


class IndexingSink:
    """``ChangeSink`` that indexes: the messages it could not index, as outbox id -> why."""

    def __init__(self, pool: ConnectionPool[Any], index: ChangeWriter) -> None:
        self._pool = pool
        self._index = index

    def send(self, messages: Sequence[ChangeMessage]) -> dict[int, str]:
        result = index_changes(self._pool, self._index, messages)
        return {messages[position].outbox_id: why for position, why in result.failed.items()}


def start_local_indexer(
    pool: ConnectionPool[Any],
    index: ChangeWriter,
    *,
    conninfo: str | None = None,
    poll_seconds: float = 5.0,
    sweep_every: float | None = 300.0,
    retention: timedelta = timedelta(days=7),
) -> Publisher:
    """Start publishing the outbox into ``index`` in a background thread; ``stop()`` it."""
    publisher = Publisher(
        pool,
        IndexingSink(pool, index),
        conninfo=conninfo,
        poll_seconds=poll_seconds,
        sweep_every=sweep_every,
        retention=retention,
    )
    publisher.start()
    return publisher
