"""The Firehose sink: records, batching limits, partial failures, backoff, dead letters, replay.

A real boto3 Firehose client with botocore's Stubber in front of it: no network. Every request
the client would have sent is captured, so what was "delivered" is known exactly.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import ANY, Stubber
from botocore.validate import ParamValidator

from ingest.events.dead_letters import (
    LocalDeadLetters,
    event_from_json,
    event_to_json,
    replay,
)
from ingest.events.envelope import COLUMNS, PARTITION_COLUMNS, UsageEvent, to_row
from ingest.events.firehose import (
    FIREHOSE_SETTINGS,
    MAX_BATCH_BYTES,
    MAX_RECORD_BYTES,
    FirehoseSink,
    extended_s3_destination,
)
from services.core.clock import ManualClock

pytestmark = pytest.mark.unit

STREAM = "usage-events"
T0 = datetime(2026, 3, 14, 23, 59, 58, 123456, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def make_event(event_type: str = "playback_progress", **fields: Any) -> UsageEvent:
    values: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "event_type": event_type,
        "event_version": 1,
        "occurred_at": T0,
        "actor_type": "user",
        "source": "library",
        "actor_id": "user-1",
        "track_id": uuid.uuid4(),
        "position_ms": 1000,
    }
    values.update(fields)
    return UsageEvent(**values)


def expected_record(event: UsageEvent, received_at: datetime) -> bytes:
    """What the sink must send for ``event``, built independently of the sink's encoder."""
    row = to_row(event, received_at)
    for name in ("occurred_at", "received_at"):
        row[name] = row[name].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (json.dumps(row, separators=(",", ":")) + "\n").encode()


def ok(n: int) -> dict[str, Any]:
    return {"FailedPutCount": 0, "RequestResponses": [{"RecordId": f"r{i}"} for i in range(n)]}


def partly(n: int, failed: dict[int, str]) -> dict[str, Any]:
    """A response of ``n`` entries where the entries at the positions in ``failed`` failed."""
    entries: list[dict[str, Any]] = [
        {"ErrorCode": failed[i], "ErrorMessage": "try again"}
        if i in failed
        else {"RecordId": f"r{i}"}
        for i in range(n)
    ]
    return {"FailedPutCount": len(failed), "RequestResponses": entries}


@dataclass
class StubbedFirehose:
    """A stubbed client that remembers each request's records and the response it got."""

    client: Any
    stubber: Stubber
    requests: list[list[bytes]] = field(default_factory=list)
    responses: list[dict[str, Any] | None] = field(default_factory=list)

    def respond(self, response: dict[str, Any], records: Sequence[bytes] | None = None) -> None:
        expected = {
            "DeliveryStreamName": STREAM,
            "Records": ANY if records is None else [{"Data": r} for r in records],
        }
        self.stubber.add_response("put_record_batch", response, expected)
        self.responses.append(response)

    def fail(self, code: str) -> None:
        self.stubber.add_client_error("put_record_batch", service_error_code=code)
        self.responses.append(None)

    def delivered_ids(self) -> list[str]:
        """event_ids of every record that a response accepted."""
        ids = []
        for records, response in zip(self.requests, self.responses, strict=True):
            if response is None:
                continue
            for data, entry in zip(records, response["RequestResponses"], strict=True):
                if "ErrorCode" not in entry:
                    ids.append(json.loads(data)["event_id"])
        return ids


@pytest.fixture
def stubbed() -> Iterator[StubbedFirehose]:
    client = boto3.client(
        "firehose", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stub = StubbedFirehose(client, Stubber(client))

    def capture(params: dict[str, Any], **_: Any) -> None:
        stub.requests.append([r["Data"] for r in params["Records"]])

    client.meta.events.register("before-parameter-build.firehose.PutRecordBatch", capture)
    with stub.stubber:
        yield stub
        stub.stubber.assert_no_pending_responses()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0 + timedelta(seconds=2))


@pytest.fixture
def dead_letters(tmp_path: Path, clock: ManualClock) -> LocalDeadLetters:
    return LocalDeadLetters(tmp_path, clock)


@dataclass
class Sleeps:
    delays: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def make_sink(
    stubbed: StubbedFirehose, clock: ManualClock, dead_letters: LocalDeadLetters, **kw: Any
) -> FirehoseSink:
    kw.setdefault("sleep", Sleeps())
    return FirehoseSink(STREAM, clock, dead_letters, client=stubbed.client, **kw)


def dead_ids(store: LocalDeadLetters) -> list[str]:
    return [str(e.event_id) for b in store.batches() for e in store.load(b.id)]


# -- records -------------------------------------------------------------------------------------
def test_each_event_is_one_json_line_with_partition_keys_and_openx_timestamps(
    stubbed: StubbedFirehose, clock: ManualClock, dead_letters: LocalDeadLetters
) -> None:
    # Given an event stamped in UTC+2 just after midnight (the day before in UTC), one with
    # properties, and one a sink already received
    paris = timezone(timedelta(hours=2))
    late = make_event("stream_started", occurred_at=datetime(2026, 3, 15, 1, 0, 0, 5, tzinfo=paris))
    search = make_event("search_performed", properties={"query": "ñu", "filters": {"bpm": [90]}})
    seen = make_event("signed_in", received_at=datetime(2026, 3, 14, 12, 0, tzinfo=UTC))
    events = [late, search, seen]
    stubbed.respond(ok(3), [expected_record(e, clock.now()) for e in events])

    # When they are sent
    make_sink(stubbed, clock, dead_letters).send(events)

    # Then each record is a single JSON object ending in one newline
    (records,) = stubbed.requests
    assert all(r.endswith(b"\n") and r.count(b"\n") == 1 for r in records)
    rows = [json.loads(r) for r in records]
    # and carries the partition keys, with dt the UTC date of occurred_at
    assert [(r["dt"], r["event_type"]) for r in rows] == [
        ("2026-03-14", "stream_started"),
        ("2026-03-14", "search_performed"),
        ("2026-03-14", "signed_in"),
    ]
    # and timestamps as yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z' in UTC, microseconds kept
    assert rows[0]["occurred_at"] == "2026-03-14T23:00:00.000005Z"
    assert rows[0]["received_at"] == "2026-03-15T00:00:00.123456Z"
    assert rows[2]["received_at"] == "2026-03-14T12:00:00.000000Z"
    stamp = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
    assert all(stamp.match(r[k]) for r in rows for k in ("occurred_at", "received_at"))
    # and every column of the Glue table (generated from the envelope) by its name, nothing more
    assert all(set(r) == {c.name for c in (*PARTITION_COLUMNS, *COLUMNS)} for r in rows)
    # and properties as JSON text, ids as text
    assert json.loads(rows[1]["properties"]) == {"query": "ñu", "filters": {"bpm": [90]}}
    assert rows[1]["event_id"] == str(search.event_id)
    assert dead_letters.batches() == []


# -- batching ------------------------------------------------------------------------------------
def test_1201_events_go_out_as_500_500_and_201_in_order(
    stubbed: StubbedFirehose, clock: ManualClock, dead_letters: LocalDeadLetters
) -> None:
    # Given 1,201 small events
    events = [make_event() for _ in range(1201)]
    for n in (500, 500, 201):
        stubbed.respond(ok(n))

    # When they are sent at once
    make_sink(stubbed, clock, dead_letters).send(events)

    # Then three PutRecordBatch calls carry them, none over 500 records, in their order
    assert [len(r) for r in stubbed.requests] == [500, 500, 201]
    assert stubbed.delivered_ids() == [str(e.event_id) for e in events]


def test_large_events_are_chunked_below_4_mib_per_call(
    stubbed: StubbedFirehose, clock: ManualClock, dead_letters: LocalDeadLetters
) -> None:
    # Given 30 events of about 300 KB each (13 fit in 4 MiB, 14 do not)
    events = [make_event(properties={"pad": "x" * 300_000}) for _ in range(30)]
    for n in (13, 13, 4):
        stubbed.respond(ok(n))

    # When they are sent
    make_sink(stubbed, clock, dead_letters).send(events)

    # Then each call stays within 4 MiB and a full call could not have taken the next record
    sizes = [[len(r) for r in request] for request in stubbed.requests]
    assert [len(s) for s in sizes] == [13, 13, 4]
    assert all(sum(s) <= MAX_BATCH_BYTES for s in sizes)
    assert all(sum(s) + nxt[0] > MAX_BATCH_BYTES for s, nxt in itertools.pairwise(sizes))
    assert stubbed.delivered_ids() == [str(e.event_id) for e in events]


def padded_to(size: int, received_at: datetime) -> UsageEvent:
    """An event whose record is exactly ``size`` bytes."""
    base = make_event(properties={"pad": ""})
    pad = size - len(expected_record(base, received_at))
    event = make_event(
        event_id=base.event_id, track_id=base.track_id, properties={"pad": "x" * pad}
    )
    assert len(expected_record(event, received_at)) == size
    return event


def test_a_record_of_exactly_1000_kib_is_sent(
    stubbed: StubbedFirehose, clock: ManualClock, dead_letters: LocalDeadLetters
) -> None:
    # Given an event whose record is exactly at Firehose's limit
    event = padded_to(MAX_RECORD_BYTES, clock.now())
    stubbed.respond(ok(1), [expected_record(event, clock.now())])

    # When it is sent, then it goes out and nothing is dead-lettered
    make_sink(stubbed, clock, dead_letters).send([event])
    assert stubbed.delivered_ids() == [str(event.event_id)]
    assert dead_letters.batches() == []


def test_a_record_over_1000_kib_is_dead_lettered_and_never_sent(
    stubbed: StubbedFirehose,
    clock: ManualClock,
    dead_letters: LocalDeadLetters,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given one event a byte over the limit between two ordinary ones
    big = padded_to(MAX_RECORD_BYTES + 1, clock.now())
    small = [make_event(), make_event()]
    stubbed.respond(ok(2), [expected_record(e, clock.now()) for e in small])

    # When they are sent
    with caplog.at_level(logging.WARNING, logger="ingest.events"):
        make_sink(stubbed, clock, dead_letters).send([small[0], big, small[1]])

    # Then only the ordinary ones were sent
    assert stubbed.delivered_ids() == [str(e.event_id) for e in small]
    # and the big one waits, whole, in the dead-letter store with the reason, and was logged
    (batch,) = dead_letters.batches()
    assert (batch.reason, batch.count) == ("record_too_large", 1)
    assert dead_letters.load(batch.id) == [big]
    assert str(big.event_id) in caplog.text


# -- failures ------------------------------------------------------------------------------------
def test_only_the_failed_entries_are_resent(
    stubbed: StubbedFirehose, clock: ManualClock, dead_letters: LocalDeadLetters
) -> None:
    # Given five events, of which the second and fourth fail on the first call
    events = [make_event(event_type=f"type_{i}") for i in range(5)]
    records = [expected_record(e, clock.now()) for e in events]
    stubbed.respond(partly(5, {1: "ServiceUnavailableException", 3: "InternalFailure"}), records)
    # then the second call must carry exactly those two, by content, in order
    stubbed.respond(ok(2), [records[1], records[3]])
    sleeps = Sleeps()

    # When they are sent
    make_sink(stubbed, clock, dead_letters, sleep=sleeps, base_delay=0.1).send(events)

    # Then every event was delivered exactly once, after one short pause
    assert Counter(stubbed.delivered_ids()) == Counter(str(e.event_id) for e in events)
    assert len(sleeps.delays) == 1 and 0 <= sleeps.delays[0] <= 0.1
    assert dead_letters.batches() == []


def test_entries_failing_every_attempt_are_dead_lettered_then_replayed_without_duplicates(
    stubbed: StubbedFirehose, clock: ManualClock, dead_letters: LocalDeadLetters
) -> None:
    # Given four events: the first fails once, the third fails on all three attempts
    events = [make_event() for _ in range(4)]
    records = [expected_record(e, clock.now()) for e in events]
    stubbed.respond(partly(4, {0: "InternalFailure", 2: "InternalFailure"}), records)
    stubbed.respond(partly(2, {1: "ServiceUnavailableException"}), [records[0], records[2]])
    stubbed.respond(partly(1, {0: "ServiceUnavailableException"}), [records[2]])
    all_ids = Counter(str(e.event_id) for e in events)

    # When they are sent with three attempts at most
    make_sink(stubbed, clock, dead_letters, max_attempts=3).send(events)

    # Then the third is in the dead-letter store with the last error code, nothing else is
    (batch,) = dead_letters.batches()
    assert (batch.reason, batch.count) == ("ServiceUnavailableException", 1)
    assert dead_letters.load(batch.id) == [events[2]]
    # and delivered plus dead-lettered holds every event exactly once
    assert Counter(stubbed.delivered_ids() + dead_ids(dead_letters)) == all_ids

    # When the dead letters are replayed later (received_at is the replay's time)
    clock.advance(timedelta(hours=1))
    stubbed.respond(ok(1), [expected_record(events[2], clock.now())])
    report = replay(dead_letters, make_sink(stubbed, clock, dead_letters))

    # Then the event is delivered, the store is empty, and no event came twice or got lost
    assert (report.replayed_batches, report.replayed_events, report.failed_batches) == (1, 1, 0)
    assert dead_letters.batches() == []
    assert Counter(stubbed.delivered_ids()) == all_ids


def test_events_that_fail_again_on_replay_stay_dead_lettered_once(
    stubbed: StubbedFirehose, clock: ManualClock, dead_letters: LocalDeadLetters
) -> None:
    # Given a dead-letter batch of two events
    events = [make_event(), make_event()]
    dead_letters.put(events, "InternalFailure")
    # and a stream that now accepts the first and keeps refusing the second
    stubbed.respond(partly(2, {1: "InternalFailure"}))
    stubbed.respond(partly(1, {0: "ServiceUnavailableException"}))

    # When the store is replayed through a sink with two attempts
    report = replay(dead_letters, make_sink(stubbed, clock, dead_letters, max_attempts=2))

    # Then the second event is in the store once, in a new batch with the new reason
    (batch,) = dead_letters.batches()
    assert (batch.reason, dead_letters.load(batch.id)) == (
        "ServiceUnavailableException",
        [events[1]],
    )
    assert report.replayed_batches == 1
    assert (report.remaining_batches, report.remaining_events) == (1, 1)
    assert Counter(stubbed.delivered_ids() + dead_ids(dead_letters)) == Counter(
        str(e.event_id) for e in events
    )


class RefusingStore(LocalDeadLetters):
    """A dead-letter store whose disk is full."""

    def put(self, events: Sequence[UsageEvent], reason: str) -> None:
        raise OSError("no space left on device")


def test_when_the_dead_letter_store_fails_only_the_events_that_ended_nowhere_are_lost(
    stubbed: StubbedFirehose, clock: ManualClock, tmp_path: Path
) -> None:
    from ingest.events.sink import EventsLost

    # Given 501 events (two chunks): in the first, one entry keeps failing; the second is fine
    events = [make_event() for _ in range(501)]
    stubbed.respond(partly(500, {7: "InternalFailure"}))
    stubbed.respond(partly(1, {0: "InternalFailure"}))
    stubbed.respond(ok(1))
    sink = make_sink(stubbed, clock, RefusingStore(tmp_path, clock), max_attempts=2)

    # When they are sent and the dead-letter store refuses the failing one
    with pytest.raises(EventsLost) as lost:
        sink.send(events)

    # Then the second chunk was still delivered, and exactly that one event is reported lost
    assert len(stubbed.delivered_ids()) == 500
    assert lost.value.events == (events[7],)


def test_a_throttled_call_is_resent_whole(
    stubbed: StubbedFirehose, clock: ManualClock, dead_letters: LocalDeadLetters
) -> None:
    # Given a stream that throttles the first call
    events = [make_event() for _ in range(3)]
    records = [expected_record(e, clock.now()) for e in events]
    stubbed.fail("ThrottlingException")
    stubbed.respond(ok(3), records)

    # When the events are sent, then the whole chunk goes again and arrives
    make_sink(stubbed, clock, dead_letters).send(events)
    assert stubbed.delivered_ids() == [str(e.event_id) for e in events]
    assert dead_letters.batches() == []


class DroppingConnection:
    """A client whose connection fails ``failures`` times before it reaches ``client``."""

    def __init__(self, client: Any, failures: int) -> None:
        self._client = client
        self._failures = failures

    def put_record_batch(self, **params: Any) -> Any:
        if self._failures:
            self._failures -= 1
            raise EndpointConnectionError(endpoint_url="https://firehose.us-east-1.amazonaws.com")
        return self._client.put_record_batch(**params)


def test_a_connection_error_resends_the_chunk_then_dead_letters_it(
    stubbed: StubbedFirehose, clock: ManualClock, dead_letters: LocalDeadLetters
) -> None:
    # Given a connection that drops once, then a connection that never comes back
    events = [make_event(), make_event()]
    stubbed.respond(ok(2), [expected_record(e, clock.now()) for e in events])
    flaky = DroppingConnection(stubbed.client, failures=1)
    down = DroppingConnection(stubbed.client, failures=3)

    # When events are sent over each
    FirehoseSink(STREAM, clock, dead_letters, client=flaky, sleep=Sleeps()).send(events)
    lost = [make_event()]
    FirehoseSink(STREAM, clock, dead_letters, client=down, max_attempts=3, sleep=Sleeps()).send(
        lost
    )

    # Then the first pair arrived on the second attempt, the other went to the dead letters
    assert stubbed.delivered_ids() == [str(e.event_id) for e in events]
    (batch,) = dead_letters.batches()
    assert (batch.reason, dead_letters.load(batch.id)) == ("EndpointConnectionError", lost)


def test_backoff_doubles_up_to_the_cap_and_uses_the_injected_sleep(
    stubbed: StubbedFirehose,
    clock: ManualClock,
    dead_letters: LocalDeadLetters,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a stream that throttles every call, and jitter pinned to its ceiling
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    for _ in range(6):
        stubbed.fail("ThrottlingException")
    sleeps = Sleeps()
    sink = make_sink(
        stubbed, clock, dead_letters, sleep=sleeps, max_attempts=6, base_delay=0.1, max_delay=1.0
    )

    # When an event is sent
    event = make_event()
    sink.send([event])

    # Then the pauses between the six attempts double and stop at the cap
    assert sleeps.delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0])
    (batch,) = dead_letters.batches()
    assert (batch.reason, dead_letters.load(batch.id)) == ("ThrottlingException", [event])


def test_jittered_pauses_stay_between_zero_and_their_ceiling(
    stubbed: StubbedFirehose, clock: ManualClock, dead_letters: LocalDeadLetters
) -> None:
    # Given a stream that throttles every call
    for _ in range(5):
        stubbed.fail("ThrottlingException")
    sleeps = Sleeps()

    # When an event is sent with real jitter
    make_sink(stubbed, clock, dead_letters, sleep=sleeps, base_delay=0.5, max_delay=2.0).send(
        [make_event()]
    )

    # Then each pause lies within [0, min(cap, base * 2**retry)]
    ceilings = [0.5, 1.0, 2.0, 2.0]
    assert len(sleeps.delays) == len(ceilings)
    assert all(0 <= d <= c for d, c in zip(sleeps.delays, ceilings, strict=True))


def test_a_missing_stream_is_not_retried(
    stubbed: StubbedFirehose, clock: ManualClock, dead_letters: LocalDeadLetters
) -> None:
    # Given a stream name that does not exist
    stubbed.fail("ResourceNotFoundException")
    sleeps = Sleeps()

    # When events are sent, then they are dead-lettered at once, without waiting
    make_sink(stubbed, clock, dead_letters, sleep=sleeps).send([make_event()])
    assert sleeps.delays == []
    assert [b.reason for b in dead_letters.batches()] == ["ResourceNotFoundException"]


# -- dead letters and replay ---------------------------------------------------------------------
def test_events_round_trip_through_json_exactly() -> None:
    # Given events with every field set, none set, non-UTC zones and whole seconds
    full = make_event(
        occurred_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5))),
        received_at=datetime(2026, 1, 2, 8, 4, 6, 7, tzinfo=UTC),
        actor_type="recipient",
        actor_id="r-1",
        session_id="s",
        correlation_id="c",
        playlist_id=uuid.uuid4(),
        pitch_id=uuid.uuid4(),
        recipient_id=uuid.uuid4(),
        share_id=uuid.uuid4(),
        listened_ms=5,
        bytes=10,
        result_count=0,
        latency_ms=3,
        properties={"a": [1, 2.5, None, True], "b": {"c": "ü"}},
    )
    bare = UsageEvent(uuid.uuid4(), "signed_in", 2, T0, "system", "gateway")

    # When they are written and read back, then they are equal, zones and None included
    for event in (full, bare):
        back = event_from_json(event_to_json(event))
        assert back == event
        assert back.occurred_at.utcoffset() == event.occurred_at.utcoffset()
    assert event_from_json(event_to_json(bare)).received_at is None


def test_local_dead_letters_keep_batches_until_removed(
    tmp_path: Path, clock: ManualClock, dead_letters: LocalDeadLetters
) -> None:
    # Given two puts a second apart
    first, second = [make_event(), make_event()], [make_event()]
    dead_letters.put(first, "InternalFailure")
    clock.advance(timedelta(seconds=1))
    dead_letters.put(second, "record_too_large")
    dead_letters.put([], "nothing")

    # Then they are listed oldest first with their reason, size and time, one file each
    a, b = dead_letters.batches()
    assert (a.reason, a.count, a.created_at) == ("InternalFailure", 2, T0 + timedelta(seconds=2))
    assert (b.reason, b.count) == ("record_too_large", 1)
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert files == [f"{a.id}.jsonl", f"{b.id}.jsonl"]
    assert (tmp_path / "dead-letters" / "2026-03-15" / f"{a.id}.jsonl").is_file()
    assert dead_letters.load(a.id) == first

    # When one is removed (twice), then only the other is left
    dead_letters.remove(a.id)
    dead_letters.remove(a.id)
    assert [x.id for x in dead_letters.batches()] == [b.id]
    with pytest.raises(KeyError):
        dead_letters.load(a.id)
    with pytest.raises(KeyError):
        dead_letters.load("../../etc/passwd")


class RefusingSink:
    """A sink that can neither deliver nor dead-letter events of one type."""

    def __init__(self, refused_type: str) -> None:
        self.refused_type = refused_type
        self.sent: list[UsageEvent] = []

    def send(self, events: Sequence[UsageEvent]) -> None:
        if any(e.event_type == self.refused_type for e in events):
            raise RuntimeError("stream and dead-letter store are both down")
        self.sent.extend(events)

    def close(self) -> None:
        """Nothing buffered."""


def test_a_batch_the_sink_refuses_stays_in_the_store(
    clock: ManualClock, dead_letters: LocalDeadLetters
) -> None:
    # Given two batches, the second of which the sink cannot take
    good, bad = [make_event(), make_event()], [make_event("search_performed")]
    dead_letters.put(good, "InternalFailure")
    dead_letters.put(bad, "InternalFailure")
    sink = RefusingSink("search_performed")

    # When the store is replayed
    report = replay(dead_letters, sink)

    # Then the first was sent and removed, the second stays as it was, and the counts say so
    assert sink.sent == good
    (left,) = dead_letters.batches()
    assert dead_letters.load(left.id) == bad
    assert report.replayed_batches == 1 and report.replayed_events == 2
    assert report.failed_batches == 1 and report.failed_events == 1


# -- module and settings -------------------------------------------------------------------------
def test_importing_the_sink_does_not_import_boto3() -> None:
    # When the modules are imported in a fresh interpreter, then boto3 is not loaded
    code = (
        "import sys, ingest.events.firehose, ingest.events.dead_letters; "
        "print([m for m in ('boto3', 'botocore') if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_delivery_stream_settings_are_a_valid_destination_that_partitions_by_dt_and_type() -> None:
    # Given the settings completed for a deployment
    config = extended_s3_destination(
        "arn:aws:s3:::lake", "arn:aws:iam::123456789012:role/firehose", region="eu-west-1"
    )
    client = boto3.client(
        "firehose", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    shape = client.meta.service_model.shape_for("ExtendedS3DestinationConfiguration")

    # Then Firehose's API model accepts them
    report = ParamValidator().validate(config, shape)
    assert not report.has_errors(), report.generate_report()
    # and the prefix uses exactly the keys the JQ query extracts
    processor = config["ProcessingConfiguration"]["Processors"][0]
    params = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}
    assert params == {
        "MetadataExtractionQuery": "{dt: .dt, event_type: .event_type}",
        "JsonParsingEngine": "JQ-1.6",
    }
    assert config["Prefix"] == (
        "events/dt=!{partitionKeyFromQuery:dt}/event_type=!{partitionKeyFromQuery:event_type}/"
    )
    # and dynamic partitioning gets the buffer it needs; Parquet is written through Glue's schema
    assert config["DynamicPartitioningConfiguration"]["Enabled"] is True
    assert config["BufferingHints"]["SizeInMBs"] >= 64
    conversion = config["DataFormatConversionConfiguration"]
    assert "OpenXJsonSerDe" in conversion["InputFormatConfiguration"]["Deserializer"]
    assert "ParquetSerDe" in conversion["OutputFormatConfiguration"]["Serializer"]
    assert conversion["SchemaConfiguration"]["RoleARN"] == config["RoleARN"]
    # and the constant itself is left untouched
    assert "RoleARN" not in FIREHOSE_SETTINGS
