"""The local lake writer: Firehose's layout and schema, buffering, atomic files, crash safety."""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from ingest.events import lake_writer
from ingest.events.arrow import file_schema
from ingest.events.envelope import UsageEvent, to_row
from ingest.events.lake_writer import SPOOL_DIR, LocalLakeWriter, recover
from services.core.clock import ManualClock, SystemClock
from services.core.ids import uuid7

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FILE_NAME = re.compile(r"^\d{8}T\d{12}Z-\d+-[0-9a-f]{16}-(\d{6}|recovered)\.parquet$")
CHILD_BATCH = 20


def event(event_type: str = "track_played", at: datetime = T0, **columns: Any) -> UsageEvent:
    fields: dict[str, Any] = {"event_version": 1, "actor_type": "user", "source": "tests"}
    fields |= columns
    return UsageEvent(event_id=uuid7(at), event_type=event_type, occurred_at=at, **fields)


def files(root: Path) -> list[Path]:
    return sorted(root.glob("events/*/*/*.parquet"))


def lake_rows(root: Path) -> list[dict[str, Any]]:
    """Every row of the lake as DuckDB reads it, dt and event_type taken from the path."""
    if not files(root):
        return []
    with duckdb.connect() as db:
        db.execute("SET TimeZone = 'UTC'")
        cursor = db.execute(
            "SELECT * REPLACE (CAST(dt AS VARCHAR) AS dt) FROM read_parquet("
            f"'{root}/events/*/*/*.parquet', hive_partitioning = true)"
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def lake_ids(root: Path) -> list[str]:
    return [row["event_id"] for row in lake_rows(root)]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def writer(lake: Path, clock: ManualClock) -> Iterator[LocalLakeWriter]:
    sink = LocalLakeWriter(lake, clock)
    try:
        yield sink
    finally:
        sink.close()


# -- layout, schema, round trip ------------------------------------------------------------------
def test_every_column_of_every_kind_of_event_round_trips_through_parquet_and_duckdb(
    lake: Path, clock: ManualClock
) -> None:
    # Given events of several types: one with every optional column (zeros, nested and
    # non-ASCII properties, an occurred_at in another zone on the next UTC day), a bare one,
    # one whose received_at is already set, and a system one
    late_evening = datetime(2026, 3, 1, 23, 30, 0, 123456, tzinfo=timezone(timedelta(hours=-2)))
    full = event(
        "pitch_track_downloaded",
        late_evening,
        actor_id="recipient-1",
        session_id="session-1",
        correlation_id=str(uuid.uuid4()),
        track_id=uuid.uuid4(),
        playlist_id=uuid.uuid4(),
        pitch_id=uuid.uuid4(),
        recipient_id=uuid.uuid4(),
        share_id=uuid.uuid4(),
        position_ms=0,
        listened_ms=1,
        bytes=2**40,
        result_count=0,
        latency_ms=12,
        properties={"query": "café ☕", "filters": {"genre": ["jazz"]}, "n": 1.5, "none": None},
    )
    events = [
        full,
        event("user_signed_in"),
        event("search_performed", received_at=T0 - timedelta(seconds=3), result_count=7),
        event("track_upload_rejected", properties={"reason": "too_large"}),
    ]
    clock.advance(timedelta(seconds=5))
    received_at = clock.now()

    # When they go through the writer
    sink = LocalLakeWriter(lake, clock)
    sink.send(events)
    sink.close()

    # Then DuckDB reads back exactly to_row's values, dt and event_type from the path
    expected = {str(e.event_id): to_row(e, received_at) for e in events}
    assert {row["event_id"]: row for row in lake_rows(lake)} == expected
    assert expected[str(full.event_id)]["dt"] == "2026-03-02"
    # And every file is zstd Parquet of file_schema(), named and placed as Firehose would
    assert len(files(lake)) == 4
    for path in files(lake):
        assert FILE_NAME.match(path.name)
        assert re.fullmatch(r"dt=\d{4}-\d{2}-\d{2}", path.parent.parent.name)
        assert path.parent.name.startswith("event_type=")
        parquet = pq.ParquetFile(path)
        assert parquet.schema_arrow.remove_metadata().equals(file_schema(), check_metadata=False)
        assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"


def test_a_send_with_a_missing_required_column_or_a_bad_event_type_fails_and_keeps_nothing(
    lake: Path, writer: LocalLakeWriter
) -> None:
    # Given a good event next to one without a source, then one with an invalid type name
    good = event()
    no_source = event(source=None)
    # When each pair is sent, Then the send fails
    with pytest.raises(ValueError, match="source"):
        writer.send([good, no_source])
    with pytest.raises(ValueError, match="event type"):
        writer.send([good, event("Track-Played")])
    writer.close()
    # And nothing of either batch reached the lake
    assert lake_rows(lake) == []


# -- buffering -----------------------------------------------------------------------------------
def test_the_buffer_flushes_when_it_reaches_its_event_count(lake: Path, clock: ManualClock) -> None:
    sink = LocalLakeWriter(lake, clock, max_buffer_events=10)
    # Given nine buffered events
    sink.send([event() for _ in range(9)])
    assert files(lake) == []
    # When the tenth arrives, Then all ten are in one file
    sink.send([event()])
    assert [pq.read_metadata(p).num_rows for p in files(lake)] == [10]
    sink.close()


def test_the_buffer_flushes_when_it_reaches_its_byte_size(lake: Path, clock: ManualClock) -> None:
    # Given a byte hint smaller than one batch, When a batch is sent, Then it is flushed at once
    sink = LocalLakeWriter(lake, clock, max_buffer_bytes=1024)
    sink.send([event(properties={"pad": "x" * 2000})])
    assert len(files(lake)) == 1
    sink.close()


def test_the_buffer_flushes_on_send_once_its_oldest_event_is_max_seconds_old(
    lake: Path, clock: ManualClock
) -> None:
    sink = LocalLakeWriter(lake, clock, max_buffer_seconds=60)
    # Given an event buffered 59 s ago and another one now
    sink.send([event()])
    clock.advance(timedelta(seconds=59))
    sink.send([event()])
    assert files(lake) == []
    # When a send comes 60 s after the first, Then the three are flushed
    clock.advance(timedelta(seconds=1))
    sink.send([event()])
    assert sum(pq.read_metadata(p).num_rows for p in files(lake)) == 3
    sink.close()


def test_the_background_thread_flushes_an_old_buffer_without_another_send(
    lake: Path, clock: ManualClock
) -> None:
    # Given a started writer with one buffered event
    sink = LocalLakeWriter(lake, clock, max_buffer_seconds=0.2)
    sink.start()
    sink.send([event()])
    # When the clock passes the interval and nothing else is sent
    clock.advance(timedelta(seconds=1))
    deadline = time.monotonic() + 5
    while not files(lake) and time.monotonic() < deadline:
        time.sleep(0.02)
    # Then the background thread has written it
    assert len(files(lake)) == 1
    sink.close()


def test_close_flushes_the_buffer_and_removes_the_writers_spool_and_lock(
    lake: Path, clock: ManualClock
) -> None:
    sink = LocalLakeWriter(lake, clock)
    sink.send([event() for _ in range(5)])
    assert files(lake) == []
    sink.close()
    assert len(lake_rows(lake)) == 5
    assert list((lake / SPOOL_DIR).iterdir()) == []
    with pytest.raises(RuntimeError, match="closed"):
        sink.send([event()])


def test_without_spool_the_writer_warns_at_start_what_a_crash_loses(
    lake: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=lake_writer.__name__):
        sink = LocalLakeWriter(lake, clock, spool=False)
    assert "a crash loses the events buffered in memory" in caplog.text
    sink.send([event()])
    sink.close()
    assert len(lake_rows(lake)) == 1


# -- atomic files, threads, processes ------------------------------------------------------------
def test_readers_only_ever_see_complete_files(lake: Path) -> None:
    # Given a writer that flushes a small file every 50 events, from several threads at once
    sink = LocalLakeWriter(lake, SystemClock(), max_buffer_events=50)
    sent: list[str] = []
    lock = threading.Lock()

    def produce() -> None:
        for _ in range(40):
            batch = [event(f"type_{i % 4}") for i in range(25)]
            with lock:
                sent.extend(str(e.event_id) for e in batch)
            sink.send(batch)

    producers = [threading.Thread(target=produce) for _ in range(3)]
    for producer in producers:
        producer.start()
    # When a reader keeps listing *.parquet and reading every file it finds meanwhile
    read = 0
    while any(p.is_alive() for p in producers):
        for path in files(lake):
            try:
                read += pq.read_table(path).num_rows
            except FileNotFoundError:
                pytest.fail(f"{path} vanished: a visible file must stay")
    for producer in producers:
        producer.join()
    sink.close()
    # Then every file it found was whole, and every event is in the lake once
    assert read > 0
    assert sorted(lake_ids(lake)) == sorted(sent)


def _child(root: str, mode: str, batches: int) -> None:
    """A writer process for the tests below: announces each batch, sends it, acknowledges it.

    ``loop`` sends until killed; ``count`` sends ``batches`` batches and closes; ``hold`` sends
    them and waits to be killed.
    """
    sink = LocalLakeWriter(Path(root), SystemClock(), max_buffer_events=10 * CHILD_BATCH)
    sent = 0
    while mode == "loop" or sent < batches:
        batch = [event(f"type_{i % 3}", datetime.now(UTC)) for i in range(CHILD_BATCH)]
        sys.stdout.write("S " + " ".join(str(e.event_id) for e in batch) + "\n")
        sys.stdout.flush()
        sink.send(batch)
        sys.stdout.write("A\n")
        sys.stdout.flush()
        sent += 1
    if mode == "hold":
        time.sleep(600)
    sink.close()


def start_child(root: Path, mode: str, batches: int = 0) -> subprocess.Popen[str]:
    code = (
        "import sys; from tests.integration.test_lake_writer import _child; "
        "_child(sys.argv[1], sys.argv[2], int(sys.argv[3]))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(root), mode, str(batches)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )


def announced_and_acknowledged(output: str) -> tuple[set[str], set[str]]:
    """Ids the child announced, and those whose send returned (a torn last line is ignored)."""
    announced: set[str] = set()
    acknowledged: set[str] = set()
    current: list[str] = []
    for line in output.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        kind, *ids = line.split()
        if kind == "S":
            current = ids
            announced.update(ids)
        else:
            acknowledged.update(current)
    return announced, acknowledged


def test_two_processes_writing_at_once_put_every_event_in_the_lake_exactly_once(
    lake: Path,
) -> None:
    # Given two writer processes sending into the same lake at the same time
    children = [start_child(lake, "count", 60) for _ in range(2)]
    outputs = [child.communicate(timeout=60)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0]
    # Then each acknowledged event is there once (a clash of names would have replaced a file)
    acknowledged = set().union(*(announced_and_acknowledged(out)[1] for out in outputs))
    assert len(acknowledged) == 2 * 60 * CHILD_BATCH
    ids = lake_ids(lake)
    assert len(ids) == len(set(ids))
    assert set(ids) == acknowledged
    # And the file names carry the writing process's id
    assert {p.name.split("-")[1] for p in files(lake)} == {str(c.pid) for c in children}


# -- crash safety --------------------------------------------------------------------------------
@pytest.mark.parametrize("delay", [0.0, 0.013, 0.037])
def test_after_kill_9_recover_puts_every_acknowledged_event_in_the_lake_exactly_once(
    lake: Path, delay: float
) -> None:
    # Given a process sending batches in a loop (a flush every 10 sends), killed with SIGKILL
    # at some point after its 60th acknowledged send
    with start_child(lake, "loop") as child:
        assert child.stdout is not None
        lines: list[str] = []
        while sum(line == "A\n" for line in lines) < 60:
            lines.append(child.stdout.readline())
            assert lines[-1], "the writer process stopped early"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        # read(), not communicate(): that would skip what readline() has already buffered
        lines.append(child.stdout.read())
    announced, acknowledged = announced_and_acknowledged("".join(lines))

    # When the lake's owner recovers
    recovered = recover(lake, ManualClock(T0))

    # Then every acknowledged event is in the lake exactly once: none lost
    ids = lake_ids(lake)
    assert len(ids) == len(set(ids))
    assert acknowledged <= set(ids) <= announced
    # And beyond them at most the batch whose send was cut short
    assert len(set(ids) - acknowledged) <= CHILD_BATCH
    assert recovered <= len(ids)
    # And only complete files are left: no staged file, no spool, all readable
    assert list(lake.glob("events/*/*/.*")) == []
    assert list((lake / SPOOL_DIR).iterdir()) == []
    for path in files(lake):
        pq.read_table(path)


def test_recover_skips_a_torn_last_record_and_logs_how_many_events_it_held(
    lake: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a dead writer whose spool ends in a record cut short (a crash mid-append)
    with start_child(lake, "hold", 3) as child:
        assert child.stdout is not None
        acknowledged = 0
        while acknowledged < 3:
            line = child.stdout.readline()
            assert line, "the writer process stopped early"
            acknowledged += line == "A\n"
        child.send_signal(signal.SIGKILL)
    (spool,) = (lake / SPOOL_DIR).glob("*.spool")
    with spool.open("r+b") as f:
        f.truncate(spool.stat().st_size - 10)

    # When the owner recovers
    with caplog.at_level(logging.WARNING, logger=lake_writer.__name__):
        recovered = recover(lake, ManualClock(T0))

    # Then the two whole records are in the lake, and the log counts the torn one's events
    assert recovered == 2 * CHILD_BATCH
    assert len(lake_ids(lake)) == 2 * CHILD_BATCH
    assert "ends in a torn record" in caplog.text
    assert f"{CHILD_BATCH} events lost" in caplog.text


@pytest.mark.parametrize("step", ["_commit", "_reveal"])
def test_recover_finishes_a_flush_interrupted_before_or_after_its_commit_exactly_once(
    lake: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    # Given a writer whose last flush dies at a step (its files staged, committed or not)
    def crash(*args: object) -> None:
        raise SystemError("the process died here")

    sink = LocalLakeWriter(lake, clock)
    events = [event(f"type_{i % 3}") for i in range(30)]
    sink.send(events)
    monkeypatch.setattr(lake_writer, step, crash)
    with pytest.raises(SystemError):
        sink.close()
    monkeypatch.undo()
    assert files(lake) == []

    # When the owner recovers, Then every event is in the lake exactly once
    assert recover(lake, clock) == 30
    assert sorted(lake_ids(lake)) == sorted(str(e.event_id) for e in events)
    assert list((lake / SPOOL_DIR).iterdir()) == []
    # And a second recovery finds nothing to do
    assert recover(lake, clock) == 0


@pytest.mark.parametrize("spool", [True, False])
def test_a_failed_flush_during_send_is_retried_later_without_losing_or_repeating_events(
    lake: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, spool: bool
) -> None:
    # Given a flush that fails once, after some files were renamed in
    reveal = lake_writer._reveal
    calls = 0

    def flaky(stem: str, directories: list[Path]) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            reveal(stem, directories[:1])
            raise OSError("disk hiccup")
        return reveal(stem, directories)

    monkeypatch.setattr(lake_writer, "_reveal", flaky)
    sink = LocalLakeWriter(lake, clock, max_buffer_events=30, spool=spool)
    events = [event(f"type_{i % 3}") for i in range(30)]
    # When the send that triggers it returns (the events are accepted) and the writer closes
    sink.send(events)
    assert 0 < len(lake_ids(lake)) < 30
    sink.close()
    # Then each event is in the lake once
    assert sorted(lake_ids(lake)) == sorted(str(e.event_id) for e in events)


def test_recover_leaves_a_live_writers_spool_alone(lake: Path, clock: ManualClock) -> None:
    sink = LocalLakeWriter(lake, clock)
    sink.send([event()])
    assert recover(lake, clock) == 0
    assert files(lake) == []
    sink.close()
    assert len(lake_ids(lake)) == 1
