"""The ``aws`` profile's event sink: Amazon Data Firehose ``PutRecordBatch`` into the lake.

Each event becomes one record: its lake row (``to_row``) as one JSON object ending in a newline.
Timestamps are written as ``yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'`` (UTC, microseconds), one of the
forms the OpenX JSON SerDe parses into a ``timestamp`` column when Firehose converts records to
Parquet; epoch milliseconds would lose the microseconds the envelope promises. ``dt`` and
``event_type`` are in every record so that dynamic partitioning can read them.

The delivery stream (``FIREHOSE_SETTINGS``, an ``ExtendedS3DestinationConfiguration`` without
the deployment's ARNs; ``extended_s3_destination`` adds them) makes the lake layout:

- dynamic partitioning on, keys from a MetadataExtraction processor (JQ-1.6,
  ``{dt: .dt, event_type: .event_type}``), S3 prefix
  ``events/dt=!{partitionKeyFromQuery:dt}/event_type=!{partitionKeyFromQuery:event_type}/``,
  and an error output prefix (required with dynamic partitioning) outside ``events/``;
- record format conversion: OpenX JSON SerDe in, Parquet SerDe out (Snappy; Firehose offers no
  zstd), schema from the Glue table ``musicsync.events``, whose partition keys are ``dt`` and
  ``event_type`` (so they are not data columns: they live in the path only), files ``.parquet``;
- buffering 128 MiB / 300 s: dynamic partitioning needs at least 64 MiB, and bigger buffers make
  fewer, larger Parquet files. S3-level compression stays off: Parquet compresses its pages.

Sending: chunks of at most 500 records and 4 MiB; a record over 1,000 KiB is never sent and goes
to the dead-letter store ("record_too_large"). Entries that fail (an ``ErrorCode`` in their
response entry) are resent alone, with exponential backoff and full jitter, and what still fails
after ``max_attempts`` attempts is dead-lettered with its last error code.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from ingest.events.dead_letters import DeadLetterStore
from ingest.events.envelope import UsageEvent, to_row
from ingest.events.sink import EventsLost
from lake.layout import EVENTS
from services.core.clock import Clock

log = logging.getLogger(__name__)

MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1000 * 1024
RECORD_TOO_LARGE = "record_too_large"
GLUE_DATABASE = "musicsync"
GLUE_TABLE = "events"

# Error codes for which another attempt cannot help: the stream or the request itself is wrong.
_PERMANENT_ERRORS = frozenset(
    {
        "ResourceNotFoundException",
        "InvalidArgumentException",
        "InvalidKMSResourceException",
        "InvalidSourceException",
        "AccessDeniedException",
    }
)

FIREHOSE_SETTINGS: dict[str, Any] = {
    "Prefix": (
        f"{EVENTS}/dt=!{{partitionKeyFromQuery:dt}}"
        "/event_type=!{partitionKeyFromQuery:event_type}/"
    ),
    # Outside events/, so that failed records never look like a partition of the table.
    "ErrorOutputPrefix": (
        "firehose-errors/!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/"
    ),
    "BufferingHints": {"SizeInMBs": 128, "IntervalInSeconds": 300},
    "CompressionFormat": "UNCOMPRESSED",
    "FileExtension": ".parquet",
    "DynamicPartitioningConfiguration": {
        "Enabled": True,
        "RetryOptions": {"DurationInSeconds": 300},
    },
    "ProcessingConfiguration": {
        "Enabled": True,
        "Processors": [
            {
                "Type": "MetadataExtraction",
                "Parameters": [
                    {
                        "ParameterName": "MetadataExtractionQuery",
                        "ParameterValue": "{dt: .dt, event_type: .event_type}",
                    },
                    {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"},
                ],
            }
        ],
    },
    "DataFormatConversionConfiguration": {
        "Enabled": True,
        "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
        "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {"Compression": "SNAPPY"}}},
        "SchemaConfiguration": {
            "DatabaseName": GLUE_DATABASE,
            "TableName": GLUE_TABLE,
            "VersionId": "LATEST",
        },
    },
}


def extended_s3_destination(
    bucket_arn: str, role_arn: str, *, region: str = "us-east-1"
) -> dict[str, Any]:
    """``FIREHOSE_SETTINGS`` completed with a deployment's bucket, role and Glue region."""
    config = copy.deepcopy(FIREHOSE_SETTINGS)
    config["BucketARN"] = bucket_arn
    config["RoleARN"] = role_arn
    schema = config["DataFormatConversionConfiguration"]["SchemaConfiguration"]
    schema["RoleARN"] = role_arn
    schema["Region"] = region
    return config


def _timestamp(value: datetime) -> str:
    # Callers pass UTC datetimes only (to_row converts), so the offset is always +00:00.
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


# Every value reaching it is text, a number or None (to_row turns ids and JSON into text).
_dumps = json.JSONEncoder(separators=(",", ":")).encode


_Record = tuple[UsageEvent, bytes]


def _chunks(records: Sequence[_Record]) -> Iterator[list[_Record]]:
    chunk: list[_Record] = []
    size = 0
    for record in records:
        n = len(record[1])
        if chunk and (len(chunk) == MAX_BATCH_RECORDS or size + n > MAX_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(record)
        size += n
    if chunk:
        yield chunk


class FirehoseSink:
    """``EventSink`` over Firehose ``PutRecordBatch``; failures end in the dead-letter store."""

    def __init__(
        self,
        stream_name: str,
        clock: Clock,
        dead_letters: DeadLetterStore,
        *,
        client: Any | None = None,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        max_attempts: int = 5,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "firehose",
                region_name=region,
                endpoint_url=endpoint_url,
                # This sink retries only the failed entries; SDK retries would resend them all.
                # Short timeouts: the flush runs before the response goes out, and a Firehose
                # brown-out must end in the dead-letter store, not in a timed-out request.
                config=Config(
                    retries={"mode": "standard", "total_max_attempts": 1},
                    connect_timeout=1,
                    read_timeout=3,
                ),
            )
        self._client: Any = client
        self._stream = stream_name
        self._clock = clock
        self._dead_letters = dead_letters
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep

    def send(self, events: Sequence[UsageEvent]) -> None:
        if not events:
            return
        received_at = self._clock.now().astimezone(UTC)
        received_text = _timestamp(received_at)
        records: list[_Record] = []
        too_large: list[UsageEvent] = []
        # Locals, not globals, in the loop that sets the sink's throughput.
        dumps, timestamp, row_of = _dumps, _timestamp, to_row
        for event in events:
            row = row_of(event, received_at)
            row["occurred_at"] = timestamp(row["occurred_at"])
            # One send shares one receipt time: formatted once, not per event.
            if event.received_at is None:
                row["received_at"] = received_text
            else:
                row["received_at"] = timestamp(row["received_at"])
            data = (dumps(row) + "\n").encode()
            if len(data) <= MAX_RECORD_BYTES:
                records.append((event, data))
                continue
            log.warning(
                "event %s (%s) is %d bytes, over Firehose's record limit; dead-lettered",
                event.event_id,
                event.event_type,
                len(data),
            )
            too_large.append(event)
        # Every chunk is tried even if one could not be dead-lettered; only the events that
        # ended nowhere are reported lost, not the whole batch.
        lost = self._dead_letter_each(too_large, [RECORD_TOO_LARGE] * len(too_large))
        for chunk in _chunks(records):
            lost += self._deliver(chunk)
        if lost:
            raise EventsLost(lost)

    def close(self) -> None:
        """Nothing to flush: Firehose buffers on its side."""

    def _deliver(self, chunk: list[_Record]) -> list[UsageEvent]:
        """Deliver a chunk, resending failed entries; the events neither delivered nor
        dead-lettered."""
        from botocore.exceptions import BotoCoreError, ClientError

        pending = chunk
        codes: list[str] = []
        for attempt in range(self._max_attempts):
            if attempt:
                self._sleep(self._backoff(attempt - 1))
            try:
                response = self._client.put_record_batch(
                    DeliveryStreamName=self._stream,
                    Records=[{"Data": data} for _, data in pending],
                )
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
                codes = [code] * len(pending)
                log.info("PutRecordBatch of %d records failed: %s", len(pending), code)
                if code in _PERMANENT_ERRORS:
                    break
                continue
            except BotoCoreError as exc:
                codes = [type(exc).__name__] * len(pending)
                log.info("PutRecordBatch of %d records failed: %s", len(pending), exc)
                continue
            failed: list[_Record] = []
            codes = []
            # Response entries are in the order of the request's records.
            for record, entry in zip(pending, response["RequestResponses"], strict=True):
                if code := entry.get("ErrorCode"):
                    failed.append(record)
                    codes.append(code)
            if not failed:
                return []
            log.info("%d of %d records failed: %s", len(failed), len(pending), sorted(set(codes)))
            pending = failed
        return self._dead_letter_each([event for event, _ in pending], codes)

    def _backoff(self, retry: int) -> float:
        """Full jitter: uniform below an exponentially growing, capped ceiling."""
        ceiling = min(self._max_delay, self._base_delay * 2**retry)
        return random.uniform(0, ceiling)  # noqa: S311 - spreading retries, not a secret

    def _dead_letter_each(self, events: list[UsageEvent], codes: list[str]) -> list[UsageEvent]:
        """Dead-letter the events, grouped by their last error; those the store refused."""
        by_code: dict[str, list[UsageEvent]] = {}
        for event, code in zip(events, codes, strict=True):
            by_code.setdefault(code, []).append(event)
        lost: list[UsageEvent] = []
        for code, group in by_code.items():
            log.warning(
                "%d events not accepted by Firehose stream %s (%s)", len(group), self._stream, code
            )
            try:
                self._dead_letters.put(group, code)
            except Exception:
                log.exception("the dead-letter store refused %d events", len(group))
                lost += group
        return lost
