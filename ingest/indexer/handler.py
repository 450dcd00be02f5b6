"""The indexer Lambda: SQS batches of change messages -> the search index.

Wired with ``ReportBatchItemFailures`` on the event source mapping: the response names exactly
the messages that failed (a malformed body, a track the database could not give, an index
write that failed), which go back to the queue and, after the queue's ``maxReceiveCount``, to
its DLQ (``ingest.cdc.dlq``). The rest of the batch is done. Bodies are change messages as SNS
delivers them to SQS: the JSON itself with raw message delivery, or inside the SNS envelope.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)

from ingest.cdc.outbox import ChangeMessage, MalformedMessage, parse_body
from ingest.indexer.core import ChangeWriter, index_changes

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from psycopg_pool import ConnectionPool

    from services.core.search.port import SearchIndex

log = logging.getLogger(__name__)


class MessageFailed(Exception):
    """This message is not done: SQS delivers it again (then dead-letters it)."""


def handle_sqs_event(
    event: dict[str, Any],
    pool: ConnectionPool[Any],
    index: ChangeWriter,
    context: Any = None,
) -> PartialItemFailureResponse:
    """Index a Lambda SQS event's messages; the partial batch response."""
    records: list[dict[str, Any]] = event.get("Records", [])
    failures: dict[str, str] = {}
    parsed: list[tuple[str, ChangeMessage]] = []
    for record in records:
        message_id = record.get("messageId", "")
        try:
            parsed.append((message_id, parse_body(record.get("body", ""))))
        except MalformedMessage as exc:
            log.error("malformed change message %s: %s", message_id, exc)
            failures[message_id] = f"malformed: {exc}"
    if parsed:
        result = index_changes(pool, index, [message for _, message in parsed])
        for position, reason in result.failed.items():
            failures[parsed[position][0]] = reason

    def record_handler(record: SQSRecord) -> None:
        if (reason := failures.get(record.message_id)) is not None:
            raise MessageFailed(reason)

    # The whole batch failing is reported like any partial failure (every message named), not
    # raised: the outcome for SQS is the same, and the response says which and why in the logs.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )


def _resources() -> tuple[ConnectionPool[Any], SearchIndex]:
    """This process's pool and search index, from the composition root (built on first use)."""
    from services.core import wiring

    deps = wiring.dependencies()
    return deps.pool, deps.search_index


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    pool, index = _resources()
    return handle_sqs_event(event, pool, index, context)
