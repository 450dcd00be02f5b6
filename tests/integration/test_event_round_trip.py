"""Contract round trip: an event of every catalogue type, emitted, through each sink, read back."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pytest

from ingest.events.catalogue import CATALOGUE, PROPERTIES_PREFIX, EventType
from ingest.events.dead_letters import LocalDeadLetters
from ingest.events.emitter import Emitter
from ingest.events.envelope import MEASURE_COLUMNS, OBJECT_COLUMNS, UsageEvent, to_row
from ingest.events.firehose import FirehoseSink
from ingest.events.lake_writer import LocalLakeWriter
from services.core.clock import ManualClock
from tests.support.aws import REGION, create_event_stream

pytestmark = pytest.mark.integration
NOW = datetime(2026, 6, 1, 12, 30, 15, 123456, tzinfo=UTC)


def _emit_one_of_each(emitter: Emitter) -> list[UsageEvent]:
    """An event of every type, with every column its entry requires (and a few more)."""
    made = []
    for entry in CATALOGUE.values():
        made.append(emitter.emit(entry.name, **_columns(entry)))
    return made


def _columns(entry: EventType) -> dict[str, Any]:
    actor = entry.actor_types[0]
    columns: dict[str, Any] = {
        "actor_type": actor,
        "actor_id": None if actor == "system" else f"{actor}-1",
        "session_id": "s-1",
    }
    properties: dict[str, Any] = {"note": "héllo ✓"}
    for required in entry.required:
        if required.startswith(PROPERTIES_PREFIX):
            properties[required.removeprefix(PROPERTIES_PREFIX)] = ["a", "b"]
        elif required in OBJECT_COLUMNS:
            columns[required] = uuid.uuid4()
        elif required in MEASURE_COLUMNS:
            columns[required] = 1234
    columns["properties"] = properties
    return columns


def _expected(events: list[UsageEvent], received_at: datetime) -> dict[str, dict[str, Any]]:
    return {str(e.event_id): to_row(e, received_at) for e in events}


def test_every_event_type_round_trips_through_the_local_lake_writer(tmp_path: Path) -> None:
    # Given the local lake writer and an emitter over it
    clock = ManualClock(NOW)
    writer = LocalLakeWriter(tmp_path / "lake", clock)
    emitter = Emitter(writer, clock, source="contract-test", correlation_id="corr-1")

    # When an event of every type is emitted, flushed and the writer closed
    sent = _emit_one_of_each(emitter)
    emitter.flush()
    writer.close()

    # Then reading the lake back gives every event, field for field, in its partition
    pattern = tmp_path / "lake" / "events" / "*" / "*" / "*.parquet"
    frame = (
        duckdb.connect()
        .execute(
            f"SELECT * REPLACE (CAST(dt AS VARCHAR) AS dt) "
            f"FROM read_parquet('{pattern}', hive_partitioning = true)"
        )
        .df()
    )
    got = {row["event_id"]: row for row in frame.to_dict("records")}
    expected = _expected(sent, NOW)
    assert set(got) == set(expected)
    for event_id, row in expected.items():
        actual = {k: _plain(got[event_id][k]) for k in row}
        assert actual == {k: _plain(v) for k, v in row.items()}, row["event_type"]


def test_every_event_type_round_trips_through_firehose_to_s3(
    tmp_path: Path, moto_endpoint: str
) -> None:
    # Given a Firehose stream into a lake bucket (moto)
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint)
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    clock = ManualClock(NOW)
    sink = FirehoseSink(
        create_event_stream(moto_endpoint, bucket),
        clock,
        LocalDeadLetters(tmp_path, clock),
        region=REGION,
        endpoint_url=moto_endpoint,
    )

    # When an event of every type is emitted and flushed
    emitter = Emitter(sink, clock, source="contract-test")
    sent = _emit_one_of_each(emitter)
    emitter.flush()

    # Then the records read back from S3 are the events, field for field
    records = {}
    for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
        for line in body.splitlines():
            record = json.loads(line)
            records[record["event_id"]] = record
    expected = _expected(sent, NOW)
    assert set(records) == set(expected)
    for event_id, row in expected.items():
        record = records[event_id]
        assert {k: _plain(_parse(k, record[k])) for k in row} == {
            k: _plain(v) for k, v in row.items()
        }, row["event_type"]


def _parse(column: str, value: Any) -> Any:
    if column in ("occurred_at", "received_at") and value is not None:
        return datetime.fromisoformat(value)
    return value


def _plain(value: Any) -> Any:
    """NaN/NaT from pandas and numpy scalars compared as plain Python values."""
    if value is None:
        return None
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime().astimezone(UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "item"):
        return value.item()
    return value
