"""Dead letters: events a sink could not deliver, kept whole so that they can be replayed.

One batch per ``put``: a JSON-lines file whose first line describes the batch (id, reason, count,
creation time) and whose other lines are the events, every field included, so that an event read
back is equal to the one written (``received_at`` None stays None). Batches live under
``dead-letters/<date>/<id>.jsonl`` below the lake root, on disk or in S3.

``replay`` sends each batch through a sink and removes it once the sink has accepted it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote

from ingest.events.envelope import COLUMNS, UsageEvent
from ingest.events.sink import EventSink
from lake.layout import DEAD_LETTERS
from services.core.clock import Clock

log = logging.getLogger(__name__)

_FORMAT_VERSION = 1
# The id starts with the UTC creation time, so ids sort in the order batches were written and
# the date folder of a batch can be found from its id alone.
_BATCH_ID = re.compile(r"^(\d{4})(\d{2})(\d{2})T\d{12}Z-[0-9a-f]{16}$")
_FIELDS = tuple(f.name for f in fields(UsageEvent))
_UUID_FIELDS = frozenset(c.name for c in COLUMNS if c.kind == "uuid")
_TIME_FIELDS = frozenset(c.name for c in COLUMNS if c.kind == "timestamp")


@dataclass(frozen=True)
class DeadLetterBatch:
    id: str
    reason: str
    count: int
    created_at: datetime


class DeadLetterStore(Protocol):
    def put(self, events: Sequence[UsageEvent], reason: str) -> None:
        """Keep the events as one batch (nothing is written for no events)."""
        ...

    def batches(self) -> list[DeadLetterBatch]:
        """Every batch, oldest first."""
        ...

    def load(self, batch_id: str) -> list[UsageEvent]:
        """The batch's events; KeyError when there is no such batch."""
        ...

    def remove(self, batch_id: str) -> None:
        """Delete the batch; removing a batch that is gone already does nothing."""
        ...


# -- events as JSON ------------------------------------------------------------------------------
def event_to_json(event: UsageEvent) -> str:
    """One event as a JSON object in text, every field included."""
    obj: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(event, name)
        if value is None:
            obj[name] = None
        elif name in _UUID_FIELDS:
            obj[name] = str(value)
        elif name in _TIME_FIELDS:
            obj[name] = value.isoformat(timespec="microseconds")
        elif name == "properties":
            obj[name] = dict(value)
        else:
            obj[name] = value
    # Non-JSON property values become text, as they do in the lake's properties column.
    return json.dumps(obj, separators=(",", ":"), default=str)


def event_from_json(text: str) -> UsageEvent:
    """The event written by ``event_to_json``."""
    obj = json.loads(text)
    unknown = set(obj) - set(_FIELDS)
    if unknown:
        raise ValueError(f"unknown event fields: {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, value in obj.items():
        if value is not None and name in _UUID_FIELDS:
            values[name] = uuid.UUID(value)
        elif value is not None and name in _TIME_FIELDS:
            values[name] = datetime.fromisoformat(value)
        else:
            values[name] = value
    return UsageEvent(**values)


# -- batch files ---------------------------------------------------------------------------------
def _new_batch(clock: Clock, reason: str, count: int) -> DeadLetterBatch:
    created_at = clock.now().astimezone(UTC)
    batch_id = f"{created_at:%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:16]}"
    return DeadLetterBatch(batch_id, reason, count, created_at)


def _batch_key(batch_id: str) -> str:
    """``dead-letters/<date>/<id>.jsonl``: the batch's key below the lake root."""
    match = _BATCH_ID.fullmatch(batch_id)
    if match is None:
        # Also what keeps a caller's id from naming a path outside the store.
        raise KeyError(f"not a dead-letter batch id: {batch_id!r}")
    year, month, day = match.groups()
    return f"{DEAD_LETTERS}/{year}-{month}-{day}/{batch_id}.jsonl"


def _encode_batch(batch: DeadLetterBatch, events: Sequence[UsageEvent]) -> bytes:
    header = {
        "dead_letter_batch": {
            "version": _FORMAT_VERSION,
            "id": batch.id,
            "reason": batch.reason,
            "count": batch.count,
            "created_at": batch.created_at.isoformat(timespec="microseconds"),
        }
    }
    lines = [json.dumps(header, separators=(",", ":")), *map(event_to_json, events)]
    return ("\n".join(lines) + "\n").encode()


def _decode_header(line: str) -> DeadLetterBatch:
    header = json.loads(line)["dead_letter_batch"]
    if header["version"] != _FORMAT_VERSION:
        raise ValueError(f"unsupported dead-letter format version {header['version']}")
    return DeadLetterBatch(
        header["id"],
        header["reason"],
        header["count"],
        datetime.fromisoformat(header["created_at"]),
    )


def _decode_events(body: str) -> list[UsageEvent]:
    header, *lines = body.splitlines()
    batch = _decode_header(header)
    events = [event_from_json(line) for line in lines if line]
    if len(events) != batch.count:
        raise ValueError(f"dead-letter batch {batch.id} holds {len(events)} of {batch.count}")
    return events


# -- adapters ------------------------------------------------------------------------------------
class LocalDeadLetters:
    """Batches as files below a local lake root (``<root>/dead-letters/<date>/<id>.jsonl``)."""

    def __init__(self, root: Path, clock: Clock) -> None:
        self._root = root
        self._clock = clock

    def put(self, events: Sequence[UsageEvent], reason: str) -> None:
        if not events:
            return
        batch = _new_batch(self._clock, reason, len(events))
        path = self._root / _batch_key(batch.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as f:
            f.write(_encode_batch(batch, events))
            f.flush()
            os.fsync(f.fileno())
        # Readers never see half a batch: the file appears whole or not at all.
        tmp.replace(path)
        log.warning("dead-lettered %d events (%s) as batch %s", len(events), reason, batch.id)

    def batches(self) -> list[DeadLetterBatch]:
        found = []
        for path in (self._root / DEAD_LETTERS).glob("*/*.jsonl"):
            with path.open(encoding="utf-8") as f:
                found.append(_decode_header(f.readline()))
        return sorted(found, key=lambda b: b.id)

    def load(self, batch_id: str) -> list[UsageEvent]:
        path = self._root / _batch_key(batch_id)
        try:
            body = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise KeyError(batch_id) from None
        return _decode_events(body)

    def remove(self, batch_id: str) -> None:
        (self._root / _batch_key(batch_id)).unlink(missing_ok=True)


class S3DeadLetters:
    """Batches as S3 objects (``<prefix>/dead-letters/<date>/<id>.jsonl``).

    The batch description is also stored as object metadata, so listing reads no bodies.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str,
        clock: Clock,
        *,
        client: Any | None = None,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
    ) -> None:
        if client is None:
            import boto3

            client = boto3.client("s3", region_name=region, endpoint_url=endpoint_url)
        self._s3: Any = client
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._clock = clock

    def _key(self, batch_id: str) -> str:
        key = _batch_key(batch_id)
        return f"{self._prefix}/{key}" if self._prefix else key

    def put(self, events: Sequence[UsageEvent], reason: str) -> None:
        if not events:
            return
        batch = _new_batch(self._clock, reason, len(events))
        self._s3.put_object(
            Bucket=self._bucket,
            Key=self._key(batch.id),
            Body=_encode_batch(batch, events),
            ContentType="application/x-ndjson",
            # Metadata travels as HTTP headers: ASCII only, hence the quoting.
            Metadata={
                "reason": quote(batch.reason),
                "count": str(batch.count),
                "created-at": batch.created_at.isoformat(timespec="microseconds"),
            },
        )
        log.warning("dead-lettered %d events (%s) as batch %s", len(events), reason, batch.id)

    def batches(self) -> list[DeadLetterBatch]:
        root = f"{self._prefix}/{DEAD_LETTERS}/" if self._prefix else f"{DEAD_LETTERS}/"
        found = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=root
        ):
            for item in page.get("Contents", []):
                batch_id = item["Key"].rsplit("/", 1)[-1].removesuffix(".jsonl")
                if not _BATCH_ID.fullmatch(batch_id):
                    continue
                meta = self._s3.head_object(Bucket=self._bucket, Key=item["Key"])["Metadata"]
                found.append(
                    DeadLetterBatch(
                        batch_id,
                        unquote(meta["reason"]),
                        int(meta["count"]),
                        datetime.fromisoformat(meta["created-at"]),
                    )
                )
        return sorted(found, key=lambda b: b.id)

    def load(self, batch_id: str) -> list[UsageEvent]:
        try:
            got = self._s3.get_object(Bucket=self._bucket, Key=self._key(batch_id))
        except self._s3.exceptions.NoSuchKey:
            raise KeyError(batch_id) from None
        return _decode_events(got["Body"].read().decode("utf-8"))

    def remove(self, batch_id: str) -> None:
        self._s3.delete_object(Bucket=self._bucket, Key=self._key(batch_id))


# -- replay --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplayReport:
    """What a replay did. A batch is replayed once the sink accepted its events (delivered
    them, or dead-lettered again those that failed once more, as a new batch); a failed batch
    is one the sink raised on, and it stays in the store as it was."""

    replayed_batches: int = 0
    replayed_events: int = 0
    failed_batches: int = 0
    failed_events: int = 0
    # Left in the store afterwards: failed batches, and events the sink dead-lettered again.
    remaining_batches: int = 0
    remaining_events: int = 0


def replay(store: DeadLetterStore, sink: EventSink) -> ReplayReport:
    """Send every batch now in the store through the sink; remove each one the sink accepted.

    Events keep their ``event_id``, so the lake can tell a replayed event from a new one. The
    batches are listed once at the start: batches the sink writes while replaying wait for the
    next replay rather than going round in a loop.
    """
    replayed = replayed_events = failed = failed_events = 0
    for batch in store.batches():
        events: list[UsageEvent] = []
        try:
            events = store.load(batch.id)
            sink.send(events)
        except Exception:
            # The sink could neither deliver nor dead-letter: the batch itself is the record.
            log.exception("replay of dead-letter batch %s failed; it stays", batch.id)
            failed += 1
            failed_events += len(events)
            continue
        store.remove(batch.id)
        replayed += 1
        replayed_events += len(events)
    remaining = store.batches()
    return ReplayReport(
        replayed,
        replayed_events,
        failed,
        failed_events,
        remaining_batches=len(remaining),
        remaining_events=sum(b.count for b in remaining),
    )
