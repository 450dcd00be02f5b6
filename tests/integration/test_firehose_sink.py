"""The Firehose sink and the S3 dead-letter store over real HTTP, against moto.

moto's Firehose writes each PutRecordBatch at once as one S3 object under the stream's prefix,
taken literally (no dynamic partitioning, no Parquet conversion), so the objects hold exactly the
records the sink sent.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import boto3
import pytest

from ingest.events.dead_letters import S3DeadLetters, replay
from ingest.events.envelope import UsageEvent, to_row
from ingest.events.firehose import FirehoseSink
from services.core.clock import ManualClock
from tests.support.aws import REGION, create_event_stream

pytestmark = pytest.mark.integration

T0 = datetime(2026, 5, 1, 9, 30, 0, 250_000, tzinfo=UTC)
EVENTS_PREFIX = "events/"


def no_sleep(_: float) -> None:
    """Retries here need no real waiting."""


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    return boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"musicsync-lake-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def stream(moto_endpoint: str, bucket: str) -> str:
    return create_event_stream(moto_endpoint, bucket)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0 + timedelta(seconds=1))


@pytest.fixture
def dead_letters(bucket: str, clock: ManualClock, moto_endpoint: str) -> S3DeadLetters:
    return S3DeadLetters(bucket, "lake", clock, region=REGION, endpoint_url=moto_endpoint)


def several_types(n: int) -> list[UsageEvent]:
    """Events of five types with their typical fields, across two days and two time zones."""
    in_moscow = datetime(2026, 5, 1, 1, 15, tzinfo=timezone(timedelta(hours=3)))
    shapes: list[dict[str, Any]] = [
        {"event_type": "playback_progress", "position_ms": 61_000, "listened_ms": 10_000},
        {
            "event_type": "search_performed",
            "source": "search",
            "result_count": 17,
            "latency_ms": 12,
            "properties": {"query": "dub techno", "filters": {"key": ["Am"]}},
        },
        {
            "event_type": "pitch_opened",
            "actor_type": "recipient",
            "source": "pitching",
            "occurred_at": in_moscow,
            "pitch_id": uuid.uuid4(),
            "recipient_id": uuid.uuid4(),
        },
        {"event_type": "track_downloaded", "bytes": 1_234_567},
        {"event_type": "signed_in", "source": "gateway", "properties": {"method": "oidc"}},
    ]
    events = []
    for i in range(n):
        values: dict[str, Any] = {
            "event_id": uuid.uuid4(),
            "event_version": 1,
            "occurred_at": T0 - timedelta(hours=12 * (i % 3), microseconds=i),
            "actor_type": "user",
            "source": "library",
            "actor_id": f"user-{i % 7}",
            "session_id": f"s-{i % 11}",
            "correlation_id": uuid.uuid4().hex,
            "track_id": uuid.uuid4(),
        }
        values.update(shapes[i % len(shapes)])
        events.append(UsageEvent(**values))
    return events


def lake_rows(s3: Any, bucket: str) -> tuple[int, list[dict[str, Any]]]:
    """(number of objects, every record) written under events/, timestamps parsed back."""
    rows: list[dict[str, Any]] = []
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=EVENTS_PREFIX
        )
        for item in page.get("Contents", [])
    ]
    for key in keys:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        assert body.endswith("\n")
        for line in body.splitlines():
            row = json.loads(line)
            for name in ("occurred_at", "received_at"):
                row[name] = datetime.strptime(row[name], "%Y-%m-%dT%H:%M:%S.%f%z")
            rows.append(row)
    return len(keys), rows


def test_events_of_several_types_arrive_in_s3_exactly_as_sent(
    s3: Any,
    bucket: str,
    stream: str,
    clock: ManualClock,
    dead_letters: S3DeadLetters,
    moto_endpoint: str,
) -> None:
    # Given 700 events of five types and a sink on the stream
    events = several_types(700)
    sink = FirehoseSink(
        stream, clock, dead_letters, region=REGION, endpoint_url=moto_endpoint, sleep=no_sleep
    )

    # When they are sent
    sink.send(events)
    sink.close()

    # Then two PutRecordBatch calls (500 + 200) made two objects
    objects, rows = lake_rows(s3, bucket)
    assert objects == 2
    # and every event is there once, each field equal to its lake row
    by_id = {row["event_id"]: row for row in rows}
    assert len(rows) == len(by_id) == len(events)
    for event in events:
        assert by_id[str(event.event_id)] == to_row(event, clock.now())
    assert {row["event_type"] for row in rows} == {
        "playback_progress",
        "search_performed",
        "pitch_opened",
        "track_downloaded",
        "signed_in",
    }
    assert {row["dt"] for row in rows} == {"2026-04-30", "2026-05-01"}
    assert dead_letters.batches() == []


def test_s3_dead_letters_round_trip_and_are_removed_once(
    s3: Any, bucket: str, clock: ManualClock, dead_letters: S3DeadLetters
) -> None:
    # Given two batches put a minute apart
    first = several_types(3)
    second = [several_types(2)[1]]
    dead_letters.put(first, "ServiceUnavailableException")
    clock.advance(timedelta(minutes=1))
    dead_letters.put(second, "record_too_large")

    # Then they are listed oldest first with reason, size and time, under the lake prefix
    a, b = dead_letters.batches()
    assert (a.reason, a.count, a.created_at) == (
        "ServiceUnavailableException",
        3,
        T0 + timedelta(seconds=1),
    )
    assert (b.reason, b.count) == ("record_too_large", 1)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="lake/")["Contents"]]
    assert keys == [
        f"lake/dead-letters/2026-05-01/{a.id}.jsonl",
        f"lake/dead-letters/2026-05-01/{b.id}.jsonl",
    ]
    # and read back equal to what was put, received_at None included
    assert dead_letters.load(a.id) == first
    assert dead_letters.load(b.id) == second
    assert all(e.received_at is None for e in dead_letters.load(a.id))

    # When one is removed, then it is gone and cannot be loaded
    dead_letters.remove(a.id)
    assert [x.id for x in dead_letters.batches()] == [b.id]
    with pytest.raises(KeyError):
        dead_letters.load(a.id)


def test_events_dead_lettered_by_a_broken_stream_are_replayed_into_the_lake_once(
    s3: Any,
    bucket: str,
    stream: str,
    clock: ManualClock,
    dead_letters: S3DeadLetters,
    moto_endpoint: str,
) -> None:
    # Given a sink pointed at a stream that does not exist, so its events are dead-lettered in S3
    events = several_types(12)
    broken = FirehoseSink(
        "no-such-stream",
        clock,
        dead_letters,
        region=REGION,
        endpoint_url=moto_endpoint,
        sleep=no_sleep,
    )
    broken.send(events)
    (batch,) = dead_letters.batches()
    assert (batch.reason, batch.count) == ("ResourceNotFoundException", 12)
    assert lake_rows(s3, bucket) == (0, [])

    # When the dead letters are replayed an hour later through a sink on the real stream
    clock.advance(timedelta(hours=1))
    sink = FirehoseSink(
        stream, clock, dead_letters, region=REGION, endpoint_url=moto_endpoint, sleep=no_sleep
    )
    report = replay(dead_letters, sink)
    again = replay(dead_letters, sink)

    # Then every event is in the lake exactly once, received at the replay, and the store is empty
    _, rows = lake_rows(s3, bucket)
    assert sorted(r["event_id"] for r in rows) == sorted(str(e.event_id) for e in events)
    assert {r["received_at"] for r in rows} == {clock.now()}
    assert (report.replayed_batches, report.replayed_events, report.failed_batches) == (1, 12, 0)
    assert again.replayed_batches == 0
    assert dead_letters.batches() == []
