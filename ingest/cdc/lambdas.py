"""The ``aws`` profile's change capture Lambdas: the publisher and the sweeper.

``publisher_handler`` is woken (asynchronously, as a wake-up only) by the outbox trigger through
``aws_lambda.invoke`` with ``{"outbox_id": ..., "txid": ...}``. The invoke is made before the
writing transaction commits, so the handler first waits, briefly, for that transaction to end
(``pg_xact_status``), then drains the whole outbox to SNS. Whatever it misses (a lost invoke, a
transaction still running after the wait) the sweeper publishes.

``sweeper_handler`` runs on a schedule (EventBridge, every minute): republishes rows left
unpublished past the threshold, deletes published rows past the retention.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ingest.cdc.publisher import ChangeSink, drain
from ingest.cdc.sns import SnsSink
from ingest.cdc.sweeper import sweep

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from services.core.settings import Settings

log = logging.getLogger(__name__)


def wait_for_transaction(
    pool: ConnectionPool[Any], txid: str, timeout: float, interval: float = 0.02
) -> str | None:
    """Wait until transaction ``txid`` (a full xid8, as text) is no longer in progress; its
    status then ('committed', 'aborted'), 'in progress' on timeout, None if unknown."""
    deadline = time.monotonic() + timeout
    with pool.connection() as conn:
        conn.autocommit = True  # each poll in a fresh snapshot
        try:
            while True:
                row = conn.execute("SELECT pg_xact_status(%s::xid8) AS status", (txid,)).fetchone()
                status = None if row is None else _first(row)
                if status != "in progress" or time.monotonic() >= deadline:
                    return None if status is None else str(status)
                time.sleep(interval)
        finally:
            conn.autocommit = False


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def publish_after_commit(
    pool: ConnectionPool[Any], sink: ChangeSink, event: dict[str, Any], commit_wait: float
) -> dict[str, Any]:
    """The publisher's work for one wake-up (or a manual run, without ``txid``)."""
    status = None
    if txid := event.get("txid"):
        status = wait_for_transaction(pool, str(txid), commit_wait)
        if status == "in progress":
            log.info(
                "transaction %s still running after %.1f s: the sweeper follows", txid, commit_wait
            )
    published = drain(pool, sink)
    return {"published": published, "transaction": status}


def _resources() -> tuple[ConnectionPool[Any], SnsSink, Settings]:
    from services.core import wiring

    deps = wiring.dependencies()
    settings = deps.settings
    if not settings.cdc_topic_arn:
        raise RuntimeError("the change capture Lambdas need MUSICSYNC_CDC_TOPIC_ARN")
    sink = SnsSink(
        settings.cdc_topic_arn, region=settings.aws_region, endpoint_url=settings.aws_endpoint_url
    )
    return deps.pool, sink, settings


def publisher_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    pool, sink, settings = _resources()
    return publish_after_commit(pool, sink, event or {}, settings.cdc_commit_wait_seconds)


def sweeper_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    pool, sink, settings = _resources()
    result = sweep(
        pool,
        sink,
        older_than=timedelta(seconds=settings.cdc_sweep_after_seconds),
        retention=timedelta(days=settings.cdc_retention_days),
    )
    return {"republished": result.republished, "purged": result.purged}
