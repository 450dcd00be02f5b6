"""The emitter: events checked at emit time, buffered, sent once per flush, never lost silently."""

from __future__ import annotations

import logging
import typing
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from ingest.events.emitter import Emitter, EventColumns
from ingest.events.envelope import MEASURE_COLUMNS, OBJECT_COLUMNS, UsageEvent
from services.core.clock import ManualClock

pytestmark = pytest.mark.unit

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class ListSink:
    """Records each batch it is sent."""

    def __init__(self) -> None:
        self.batches: list[list[UsageEvent]] = []

    def send(self, events: Sequence[UsageEvent]) -> None:
        self.batches.append(list(events))

    def close(self) -> None:
        """Nothing is buffered here."""


class FailingSink(ListSink):
    def send(self, events: Sequence[UsageEvent]) -> None:
        super().send(events)
        raise ConnectionError("firehose and dead-letter store both down")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


def _emit_plays(emitter: Emitter, clock: ManualClock, count: int) -> list[UsageEvent]:
    events = []
    for n in range(count):
        events.append(
            emitter.emit(
                "track_playback_progress",
                actor_type="user",
                actor_id="user-1",
                session_id="sess-1",
                track_id=uuid.uuid4(),
                position_ms=n * 10_000,
                listened_ms=10_000,
            )
        )
        clock.advance(timedelta(milliseconds=5))
    return events


def test_emitted_events_are_buffered_until_flush_then_sent_in_one_call(
    clock: ManualClock,
) -> None:
    # Given an emitter over a recording sink
    sink = ListSink()
    emitter = Emitter(sink, clock, source="library")

    # When three events are emitted
    events = _emit_plays(emitter, clock, 3)

    # Then nothing is sent yet and they wait in order
    assert sink.batches == []
    assert emitter.pending == tuple(events)

    # When the emitter is flushed
    emitter.flush()

    # Then the sink gets them in one call and the buffer is empty
    assert sink.batches == [events]
    assert emitter.pending == ()


def test_each_flush_sends_only_what_was_emitted_since_the_previous_one(
    clock: ManualClock,
) -> None:
    sink = ListSink()
    emitter = Emitter(sink, clock, source="library")
    first = _emit_plays(emitter, clock, 2)
    emitter.flush()
    second = _emit_plays(emitter, clock, 1)
    emitter.flush()
    assert sink.batches == [first, second]


def test_emit_fills_the_envelope_from_the_clock_catalogue_and_source(clock: ManualClock) -> None:
    emitter = Emitter(ListSink(), clock, source="search")
    event = emitter.emit(
        "search_performed",
        actor_type="user",
        actor_id="user-1",
        correlation_id="corr-1",
        result_count=3,
        latency_ms=12,
        properties={"query": "drum"},
    )
    assert (event.event_type, event.event_version, event.source) == (
        "search_performed",
        1,
        "search",
    )
    assert event.occurred_at == START and event.received_at is None
    assert event.event_id.version == 7
    assert event.correlation_id == "corr-1" and event.properties == {"query": "drum"}


def test_an_emitted_event_keeps_its_properties_when_the_caller_reuses_the_dict(
    clock: ManualClock,
) -> None:
    # Given a properties dict the caller goes on changing after the emit
    emitter = Emitter(ListSink(), clock, source="library")
    properties = {"upload_id": "u-1", "reason": "too_large"}
    event = emitter.emit("track_upload_rejected", actor_type="system", properties=properties)

    # When the caller reuses it
    properties["upload_id"] = "u-2"

    # Then the buffered event still holds what was emitted
    assert event.properties == {"upload_id": "u-1", "reason": "too_large"}


def test_event_ids_are_ordered_by_emission_time(clock: ManualClock) -> None:
    # Given events emitted as the clock moves on
    emitter = Emitter(ListSink(), clock, source="library")

    # When their ids are compared
    ids = [e.event_id for e in _emit_plays(emitter, clock, 20)]

    # Then they sort in emission order
    assert ids == sorted(ids)


@pytest.mark.parametrize(
    ("event_type", "columns", "message"),
    [
        ("track_exploded", {}, "unknown event type"),
        ("track_deleted", {}, "track_id is required"),
        ("pitch_expired", {"pitch_id": uuid.uuid4()}, "actor_type 'user' not allowed"),
        ("track_downloaded", {"track_id": uuid.uuid4(), "bytes": -1}, "bytes is negative"),
    ],
)
def test_emitting_an_invalid_event_raises_and_buffers_nothing(
    clock: ManualClock, event_type: str, columns: EventColumns, message: str
) -> None:
    emitter = Emitter(ListSink(), clock, source="library")
    with pytest.raises(ValueError, match=message):
        emitter.emit(event_type, actor_type="user", actor_id="user-1", **columns)
    assert emitter.pending == ()


def test_emitting_at_a_naive_clock_time_raises() -> None:
    class NaiveClock:
        def now(self) -> datetime:
            return datetime(2026, 3, 1, 12)

    emitter = Emitter(ListSink(), NaiveClock(), source="library")
    with pytest.raises(ValueError, match="occurred_at is not timezone-aware"):
        emitter.emit("track_deleted", actor_type="user", actor_id="u", track_id=uuid.uuid4())


def test_a_sink_failure_is_logged_with_every_event_id_and_not_raised(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Given buffered events and a sink that can neither deliver nor dead-letter
    sink = FailingSink()
    emitter = Emitter(sink, clock, source="library")
    events = _emit_plays(emitter, clock, 3)

    # When the emitter is flushed
    with caplog.at_level(logging.ERROR, logger="musicsync.events"):
        emitter.flush()

    # Then the sink was tried once, nothing is raised, and one error line names every event
    assert len(sink.batches) == 1
    assert emitter.pending == ()
    [record] = [r for r in caplog.records if r.name == "musicsync.events"]
    assert record.levelno == logging.ERROR
    assert "3 events" in record.getMessage()
    for event in events:
        assert str(event.event_id) in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], ConnectionError)


def test_flushing_an_empty_buffer_does_not_call_the_sink(clock: ManualClock) -> None:
    sink = ListSink()
    Emitter(sink, clock, source="library").flush()
    assert sink.batches == []


def test_event_columns_are_the_envelope_object_and_measure_columns() -> None:
    keys = set(typing.get_type_hints(EventColumns))
    assert keys == {*OBJECT_COLUMNS, *MEASURE_COLUMNS, "properties"}


def test_the_invocations_correlation_id_is_stamped_on_every_event() -> None:
    # Given an emitter made for one request
    emitter = Emitter(ListSink(), ManualClock(START), source="library", correlation_id="req-7")

    # When events are emitted without naming a correlation id, and one that names its own
    emitter.emit("track_deleted", actor_type="user", actor_id="u1", track_id=uuid.uuid4())
    own = emitter.emit(
        "track_deleted", actor_type="user", actor_id="u1", track_id=uuid.uuid4(), correlation_id="x"
    )

    # Then the first carries the request's id and the second its own
    assert [e.correlation_id for e in emitter.pending] == ["req-7", "x"]
    assert own.correlation_id == "x"


def test_a_sink_naming_the_events_it_lost_gets_only_those_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ingest.events.sink import EventsLost

    # Given a sink that delivers all but the second event of a batch, and says so
    class PartlyLosingSink(ListSink):
        def send(self, events: Sequence[UsageEvent]) -> None:
            raise EventsLost([events[1]])

    clock = ManualClock(START)
    emitter = Emitter(PartlyLosingSink(), clock, source="library")
    made = [
        emitter.emit("track_deleted", actor_type="user", actor_id="u1", track_id=uuid.uuid4())
        for _ in range(3)
    ]

    # When the emitter flushes
    with caplog.at_level(logging.ERROR, logger="musicsync.events"):
        emitter.flush()

    # Then the log names that one event, not the whole batch
    [record] = caplog.records
    assert record.event_ids == [str(made[1].event_id)]  # type: ignore[attr-defined]
