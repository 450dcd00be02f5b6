"""Compaction of events partitions: fewer, sorted files; every row exactly once, crash or not."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from ingest.events.arrow import file_schema
from ingest.events.envelope import UsageEvent
from ingest.events.lake_writer import LocalLakeWriter
from lake import compaction
from lake.compaction import CompactionReport, compact
from services.core.clock import ManualClock, SystemClock
from services.core.ids import uuid7

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def event(event_type: str, at: datetime) -> UsageEvent:
    return UsageEvent(
        event_id=uuid7(at),
        event_type=event_type,
        event_version=1,
        occurred_at=at,
        actor_type="user",
        source="tests",
        position_ms=1,
        latency_ms=5,
    )


def write_small_files(root: Path, *, flushes: int, per_flush: int = 10, day: int = 0) -> list[str]:
    """``flushes`` flushes of ``per_flush`` events of two types (so a file per partition each),
    their times shuffled; their ids."""
    sink = LocalLakeWriter(root, ManualClock(T0), max_buffer_events=per_flush)
    times = [T0 + timedelta(days=day, seconds=s) for s in range(flushes * per_flush)]
    random.Random(day).shuffle(times)
    events = [event(("track_played", "track_paused")[i % 2], at) for i, at in enumerate(times)]
    for i in range(0, len(events), per_flush):
        sink.send(events[i : i + per_flush])
    sink.close()
    return [str(e.event_id) for e in events]


def parquet_files(root: Path) -> list[Path]:
    return sorted(root.glob("events/*/*/*.parquet"))


def lake_ids(root: Path) -> list[str]:
    """Every event id a reader of ``*.parquet`` sees (hidden files are not read)."""
    if not parquet_files(root):
        return []
    sql = f"SELECT event_id FROM read_parquet('{root}/events/*/*/*.parquet')"
    with duckdb.connect() as db:
        return [row[0] for row in db.execute(sql).fetchall()]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.glob("events/*/*/*")
    }


def test_small_files_become_one_sorted_zstd_file_per_partition_with_every_row(
    tmp_path: Path,
) -> None:
    # Given two partitions of 15 small files each, rows written out of time order
    ids = write_small_files(tmp_path, flushes=15)
    before = parquet_files(tmp_path)
    bytes_before = sum(p.stat().st_size for p in before)
    inputs_by_partition = Counter(p.parent for p in before)
    assert set(inputs_by_partition.values()) == {15}

    # When compacted
    report = compact(tmp_path)

    # Then each partition holds one file, and every row is there exactly once
    after = parquet_files(tmp_path)
    assert sorted(p.parent for p in after) == sorted(inputs_by_partition)
    assert sorted(lake_ids(tmp_path)) == sorted(ids)
    assert report == CompactionReport(
        partitions=2,
        files_before=30,
        files_after=2,
        rows=150,
        bytes_before=bytes_before,
        bytes_after=sum(p.stat().st_size for p in after),
    )
    for path in after:
        parquet = pq.ParquetFile(path)
        table = parquet.read()
        # sorted by occurred_at, then event_id; zstd; the file schema; its inputs named
        keys = list(
            zip(table["occurred_at"].to_pylist(), table["event_id"].to_pylist(), strict=True)
        )
        assert keys == sorted(keys)
        assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
        assert table.schema.equals(file_schema(), check_metadata=False)
        named = json.loads(parquet.schema_arrow.metadata[b"musicsync.compacted_from"])
        assert sorted(named) == sorted(p.name for p in before if p.parent == path.parent)
    # And nothing hidden is left behind
    assert list(tmp_path.glob("events/*/*/.*")) == []


def test_a_second_run_changes_nothing(tmp_path: Path) -> None:
    write_small_files(tmp_path, flushes=5)
    compact(tmp_path)
    files_then = snapshot(tmp_path)
    assert compact(tmp_path) == CompactionReport()
    assert snapshot(tmp_path) == files_then


def test_new_small_files_are_merged_with_the_earlier_output_on_the_next_run(
    tmp_path: Path,
) -> None:
    first = write_small_files(tmp_path, flushes=3)
    compact(tmp_path)
    later = write_small_files(tmp_path, flushes=3)
    report = compact(tmp_path)
    assert (report.files_before, report.files_after) == (2 * (3 + 1), 2)
    assert sorted(lake_ids(tmp_path)) == sorted(first + later)


def test_files_are_grouped_up_to_the_target_size(tmp_path: Path) -> None:
    # Given 12 small files per partition and a target of about four of them
    ids = write_small_files(tmp_path, flushes=12)
    size = max(p.stat().st_size for p in parquet_files(tmp_path))
    # When compacted
    report = compact(tmp_path, target_bytes=4 * size)
    # Then each partition has about three files instead of 12, and no row is lost or doubled
    assert report.files_before == 24
    assert 4 <= report.files_after <= 8
    assert sorted(lake_ids(tmp_path)) == sorted(ids)


def test_only_the_given_date_is_compacted(tmp_path: Path) -> None:
    write_small_files(tmp_path, flushes=4, day=0)
    write_small_files(tmp_path, flushes=4, day=1)
    other_day = {k: v for k, v in snapshot(tmp_path).items() if "dt=2026-03-02" in k}
    report = compact(tmp_path, dt="2026-03-01")
    assert report.partitions == 2
    assert {k: v for k, v in snapshot(tmp_path).items() if "dt=2026-03-02" in k} == other_day
    with pytest.raises(ValueError, match="invalid date"):
        compact(tmp_path, dt="2026-3-1")


def test_every_row_stays_exactly_once_while_a_writer_appends_during_compaction(
    tmp_path: Path,
) -> None:
    # Given a writer thread flushing a small file every 20 events, in three partitions
    sink = LocalLakeWriter(tmp_path, SystemClock(), max_buffer_events=20)
    sent: list[str] = []
    done = threading.Event()

    def produce() -> None:
        for n in range(150):
            batch = [event(f"type_{n % 3}", datetime.now(UTC)) for _ in range(10)]
            sent.extend(str(e.event_id) for e in batch)
            sink.send(batch)
        sink.close()
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    # When compaction runs again and again meanwhile, and a reader counts rows between runs
    runs: list[CompactionReport] = []
    while not done.is_set():
        runs.append(compact(tmp_path))
        ids = lake_ids(tmp_path)
        # Then no reader ever sees a row twice
        assert len(ids) == len(set(ids))
    producer.join()
    runs.append(compact(tmp_path))
    # And at the end every event sent is in the lake exactly once
    assert sum(r.files_before for r in runs) > 0
    assert sorted(lake_ids(tmp_path)) == sorted(sent)


def test_a_crash_between_reveal_and_cleanup_leaves_no_row_visible_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a compaction that dies after renaming its output in, before removing its inputs
    ids = write_small_files(tmp_path, flushes=4)

    def crash(*args: Any) -> None:
        raise SystemError("the process died here")

    monkeypatch.setattr(compaction, "_remove_hidden", crash)
    with pytest.raises(SystemError):
        compact(tmp_path)
    monkeypatch.undo()
    # Then readers see every row exactly once (the inputs are hidden, not yet removed)
    assert list(tmp_path.glob("events/*/*/.*.compacted"))
    assert sorted(lake_ids(tmp_path)) == sorted(ids)
    # And the next run removes the leftovers, then compacts the partition it had not reached
    assert compact(tmp_path).partitions == 1
    assert list(tmp_path.glob("events/*/*/.*")) == []
    assert sorted(lake_ids(tmp_path)) == sorted(ids)


def test_a_crash_while_hiding_the_inputs_is_finished_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a compaction that dies after hiding one input of the first partition
    ids = write_small_files(tmp_path, flushes=4)
    hide = compaction._hide

    def crash(directory: Path, inputs: list[str]) -> None:
        hide(directory, inputs[:1])
        raise SystemError("the process died here")

    monkeypatch.setattr(compaction, "_hide", crash)
    with pytest.raises(SystemError):
        compact(tmp_path)
    monkeypatch.undo()
    # Then no row is visible twice (one file's rows are hidden for now)
    visible = lake_ids(tmp_path)
    assert len(visible) == len(set(visible)) < len(ids)
    # And the next run finishes the job: every row exactly once, nothing hidden left
    compact(tmp_path)
    assert sorted(lake_ids(tmp_path)) == sorted(ids)
    assert list(tmp_path.glob("events/*/*/.*")) == []
    assert len(parquet_files(tmp_path)) == 2


def test_an_output_cut_short_while_being_written_is_discarded_by_the_next_run(
    tmp_path: Path,
) -> None:
    ids = write_small_files(tmp_path, flushes=4)
    partition = parquet_files(tmp_path)[0].parent
    (partition / ".c-0.parquet.compacting").write_bytes(b"PAR1 torn")
    compact(tmp_path)
    assert list(tmp_path.glob("events/*/*/.*")) == []
    assert sorted(lake_ids(tmp_path)) == sorted(ids)


def test_a_file_written_before_a_column_existed_is_compacted_with_that_column_null(
    tmp_path: Path,
) -> None:
    # Given a partition where one file lacks the latency_ms column (written by an older version)
    ids = write_small_files(tmp_path, flushes=4)
    old = parquet_files(tmp_path)[0]
    pq.write_table(pq.read_table(old).drop_columns(["latency_ms"]), old)
    # When compacted, Then its rows read latency_ms as null and the others keep theirs
    compact(tmp_path)
    table = pq.read_table(parquet_files(tmp_path)[0])
    assert table.schema.equals(file_schema(), check_metadata=False)
    assert set(table["latency_ms"].to_pylist()) == {None, 5}
    assert sorted(lake_ids(tmp_path)) == sorted(ids)
