"""Quality checks on lake partitions: bad partitions are quarantined, never deleted, and cleared
when fixed; unchanged partitions are not checked twice."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest.events.arrow import file_schema
from ingest.events.envelope import UsageEvent, to_row
from ingest.events.lake_writer import LocalLakeWriter
from lake.layout import event_partition
from lake.quality import QualityReport, check
from services.core.clock import ManualClock
from services.core.ids import uuid7

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = T0.date().isoformat()
PROGRESS = "track_playback_progress"
SEARCH = "search_performed"
PROGRESS_KEY = event_partition(DAY, PROGRESS)
SEARCH_KEY = event_partition(DAY, SEARCH)


def progress(at: datetime = T0, **columns: Any) -> UsageEvent:
    """A valid playback progress event; ``columns`` override its fields."""
    fields: dict[str, Any] = {
        "event_id": uuid7(at),
        "event_type": PROGRESS,
        "event_version": 1,
        "occurred_at": at,
        "actor_type": "user",
        "actor_id": "user-1",
        "source": "tests",
        "track_id": uuid7(at),
        "position_ms": 10_000,
        "listened_ms": 10_000,
    }
    return UsageEvent(**(fields | columns))


def search(at: datetime = T0) -> UsageEvent:
    return UsageEvent(
        event_id=uuid7(at),
        event_type=SEARCH,
        event_version=1,
        occurred_at=at,
        actor_type="user",
        actor_id="user-1",
        source="tests",
        result_count=3,
        latency_ms=12,
        properties={"query": "ambient"},
    )


def minutes_before(at: datetime, count: int) -> list[datetime]:
    return [at - timedelta(minutes=m) for m in range(1, count + 1)]


def send(root: Path, events: list[UsageEvent], received_at: datetime = T0) -> None:
    """Through the local lake writer, which stamps ``received_at``: one file per partition."""
    writer = LocalLakeWriter(root, ManualClock(received_at), spool=False)
    writer.send(events)
    writer.close()


def write_file(
    root: Path,
    events: list[UsageEvent],
    name: str,
    *,
    dt: str = DAY,
    event_type: str = PROGRESS,
    drop: str | None = None,
) -> Path:
    """Events written straight into a partition with pyarrow, bypassing the writer's checks."""
    rows = [to_row(e, T0) for e in events]
    table = pa.Table.from_pylist(rows, schema=file_schema())
    if drop is not None:
        table = table.drop_columns([drop])
    directory = root / event_partition(dt, event_type)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    pq.write_table(table, path)
    return path


def quarantine(root: Path) -> dict[str, list[str]]:
    entries = json.loads((root / "quality" / "quarantine.json").read_text())["partitions"]
    return {e["partition"]: e["reasons"] for e in entries}


def result(root: Path, key: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((root / "quality" / key / "result.json").read_text())
    return loaded


def lake_files(root: Path) -> list[Path]:
    return sorted(root.glob("events/*/*/*.parquet"))


def test_clean_partitions_written_by_the_lake_writer_pass_and_are_not_quarantined(
    tmp_path: Path,
) -> None:
    # Given two days of progress and search events written by the lake writer
    next_day = T0 + timedelta(days=1)
    send(tmp_path, [progress(at) for at in minutes_before(T0, 20)])
    send(tmp_path, [search(at) for at in minutes_before(T0, 5)])
    send(tmp_path, [progress(at) for at in minutes_before(next_day, 5)], received_at=next_day)
    clock = ManualClock(T0 + timedelta(hours=1))

    # When the partitions are checked
    report = check(tmp_path, clock=clock)

    # Then each passes, its result records the files and time checked, and none is quarantined
    next_key = event_partition(next_day.date().isoformat(), PROGRESS)
    assert sorted(report.passed) == sorted([PROGRESS_KEY, SEARCH_KEY, next_key])
    assert report.failed == {}
    assert report.skipped == ()
    saved = result(tmp_path, PROGRESS_KEY)
    assert saved["success"] is True
    assert saved["rows"] == 20
    assert saved["checked_at"] == clock.now().isoformat()
    files = sorted(tmp_path.glob(f"{PROGRESS_KEY}/*.parquet"))
    assert saved["fingerprint"] == [{"name": f.name, "size": f.stat().st_size} for f in files]
    assert all(e["success"] for e in saved["expectations"])
    assert quarantine(tmp_path) == {}


def duplicate_event_ids(root: Path) -> tuple[str, str]:
    events = [progress(at) for at in minutes_before(T0, 3)]
    write_file(root, events, "first.parquet")
    write_file(root, events, "second.parquet")
    return PROGRESS_KEY, "expect_column_values_to_be_unique(event_id): 6 of 6 rows"


def negative_listened_ms(root: Path) -> tuple[str, str]:
    send(root, [progress(T0 - timedelta(minutes=1), listened_ms=-250)])
    return PROGRESS_KEY, "expect_column_values_to_be_between(listened_ms): 1 of 1 rows"


def required_column_missing(root: Path) -> tuple[str, str]:
    write_file(root, [progress(at) for at in minutes_before(T0, 2)], "f.parquet", drop="track_id")
    return PROGRESS_KEY, "expect_column_values_to_not_be_null(track_id): 2 of 2 rows"


def required_property_missing(root: Path) -> tuple[str, str]:
    event = replace(search(T0 - timedelta(minutes=1)), properties={"query": ""})
    write_file(root, [event], "f.parquet", event_type=SEARCH)
    return SEARCH_KEY, "expect_column_values_to_not_be_null(properties.query)"


def occurred_on_another_date(root: Path) -> tuple[str, str]:
    write_file(root, [progress(T0 - timedelta(days=1))], "f.parquet")
    return PROGRESS_KEY, (
        "expect_column_values_to_be_in_set(occurred_on): 1 of 1 rows unexpected, "
        'e.g. ["2026-02-28"]'
    )


def occurred_after_it_was_received(root: Path) -> tuple[str, str]:
    write_file(root, [progress(T0 + timedelta(minutes=6))], "f.parquet")
    return PROGRESS_KEY, (
        "expect_column_values_to_be_between(occurred_after_received_s): 1 of 1 rows unexpected, "
        "e.g. [360.0]"
    )


def occurred_before_2024(root: Path) -> tuple[str, str]:
    at = datetime(2023, 12, 31, 12, tzinfo=UTC)
    write_file(root, [progress(at)], "f.parquet", dt="2023-12-31")
    return event_partition("2023-12-31", PROGRESS), (
        "expect_column_values_to_be_between(occurred_at)"
    )


def object_id_not_a_uuid(root: Path) -> tuple[str, str]:
    path = write_file(root, [progress(T0 - timedelta(minutes=1))], "f.parquet")
    table = pq.read_table(path)
    column = table.schema.get_field_index("track_id")
    pq.write_table(table.set_column(column, "track_id", pa.array(["TRACK-9"])), path)
    return PROGRESS_KEY, (
        'expect_column_values_to_match_regex(track_id): 1 of 1 rows unexpected, e.g. ["TRACK-9"]'
    )


def unknown_actor_type(root: Path) -> tuple[str, str]:
    write_file(root, [progress(T0 - timedelta(minutes=1), actor_type="robot")], "f.parquet")
    return PROGRESS_KEY, "expect_column_values_to_be_in_set(actor_type)"


def unknown_event_type(root: Path) -> tuple[str, str]:
    events = [progress(T0 - timedelta(minutes=1), event_type="track_scratched")]
    write_file(root, events, "f.parquet", event_type="track_scratched")
    return event_partition(DAY, "track_scratched"), "unknown event type 'track_scratched'"


def unreadable_file(root: Path) -> tuple[str, str]:
    write_file(root, [progress(T0 - timedelta(minutes=1))], "good.parquet")
    (root / PROGRESS_KEY / "torn.parquet").write_bytes(b"PAR1 not really")
    return PROGRESS_KEY, "unreadable Parquet files"


@pytest.mark.parametrize(
    "write_bad_partition",
    [
        duplicate_event_ids,
        negative_listened_ms,
        required_column_missing,
        required_property_missing,
        occurred_on_another_date,
        occurred_after_it_was_received,
        occurred_before_2024,
        object_id_not_a_uuid,
        unknown_actor_type,
        unknown_event_type,
        unreadable_file,
    ],
)
def test_a_bad_partition_fails_naming_the_expectation_and_is_quarantined_not_deleted(
    tmp_path: Path, write_bad_partition: Callable[[Path], tuple[str, str]]
) -> None:
    # Given a clean search partition and a bad partition
    send(tmp_path, [search(at) for at in minutes_before(T0, 3)])
    bad_key, expected_reason = write_bad_partition(tmp_path)
    files_before = {p: p.read_bytes() for p in lake_files(tmp_path)}

    # When the partitions are checked
    report = check(tmp_path, clock=ManualClock(T0))

    # Then the bad one fails with a reason naming the expectation, and is quarantined
    assert list(report.failed) == [bad_key]
    assert any(expected_reason in reason for reason in report.failed[bad_key]), report.failed
    assert quarantine(tmp_path) == {bad_key: list(report.failed[bad_key])}
    assert result(tmp_path, bad_key)["success"] is False
    # And the clean one is not held back by it
    if bad_key != SEARCH_KEY:
        assert report.passed == (SEARCH_KEY,)
    # And every file stays, untouched
    assert {p: p.read_bytes() for p in lake_files(tmp_path)} == files_before


def test_partitions_of_one_type_pass_in_one_validation_and_a_bad_one_is_judged_alone(
    tmp_path: Path,
) -> None:
    # Given three days of progress events, all clean
    days = [T0 - timedelta(days=n) for n in range(3)]
    for day in days:
        send(tmp_path, [progress(at) for at in minutes_before(day, 4)], received_at=day)
    keys = [event_partition(day.date().isoformat(), PROGRESS) for day in days]
    clock = ManualClock(T0 + timedelta(hours=1))

    # When they are checked, Then all pass in one suite run, each with its own row count
    assert sorted(check(tmp_path, clock=clock).passed) == sorted(keys)
    assert [result(tmp_path, key)["validated_with"] for key in keys] == [3, 3, 3]
    assert [result(tmp_path, key)["rows"] for key in keys] == [4, 4, 4]

    # When one day gets a bad file, another a clean one, and the lake is checked again
    write_file(
        tmp_path,
        [progress(days[1] - timedelta(minutes=9), listened_ms=-5)],
        "bad.parquet",
        dt=days[1].date().isoformat(),
    )
    write_file(
        tmp_path,
        [progress(days[2] - timedelta(minutes=9))],
        "more.parquet",
        dt=days[2].date().isoformat(),
    )
    report = check(tmp_path, clock=clock)

    # Then the bad day alone fails, with its own reason and counts, and the other passes
    assert list(report.failed) == [keys[1]]
    assert report.failed[keys[1]] == (
        "expect_column_values_to_be_between(listened_ms): 1 of 5 rows unexpected, e.g. [-5]",
    )
    assert report.passed == (keys[2],) and report.skipped == (keys[0],)
    assert result(tmp_path, keys[2])["validated_with"] == 1
    assert result(tmp_path, keys[2])["rows"] == 5
    assert list(quarantine(tmp_path)) == [keys[1]]


def test_a_second_run_without_changes_skips_every_partition(tmp_path: Path) -> None:
    # Given a checked lake with a clean and a bad partition
    send(tmp_path, [search(at) for at in minutes_before(T0, 3)])
    duplicate_event_ids(tmp_path)
    clock = ManualClock(T0)
    check(tmp_path, clock=clock)
    results_before = {k: result(tmp_path, k) for k in (PROGRESS_KEY, SEARCH_KEY)}

    # When it is checked again, later, with no file changed
    clock.advance(timedelta(hours=1))
    report = check(tmp_path, clock=clock)

    # Then nothing is checked, the results stay as they were, and the bad one stays quarantined
    assert report == QualityReport(skipped=(SEARCH_KEY, PROGRESS_KEY))
    assert report.checked == ()
    assert {k: result(tmp_path, k) for k in (PROGRESS_KEY, SEARCH_KEY)} == results_before
    assert list(quarantine(tmp_path)) == [PROGRESS_KEY]


def test_a_fixed_partition_is_checked_again_passes_and_leaves_quarantine(tmp_path: Path) -> None:
    # Given a partition quarantined for a negative listened_ms in one of its files
    good = write_file(tmp_path, [progress(T0 - timedelta(minutes=2))], "good.parquet")
    bad_event = progress(T0 - timedelta(minutes=1), listened_ms=-1)
    bad = write_file(tmp_path, [bad_event], "bad.parquet")
    clock = ManualClock(T0)
    check(tmp_path, clock=clock)
    assert list(quarantine(tmp_path)) == [PROGRESS_KEY]

    # When the bad file is replaced by a corrected one and the lake is checked again
    bad.unlink()
    fixed = write_file(tmp_path, [replace(bad_event, listened_ms=0)], "fixed.parquet")
    clock.advance(timedelta(minutes=10))
    report = check(tmp_path, clock=clock)

    # Then the partition passes, on its new files, and is no longer quarantined
    assert report == QualityReport(passed=(PROGRESS_KEY,))
    saved = result(tmp_path, PROGRESS_KEY)
    assert saved["success"] is True
    assert saved["checked_at"] == clock.now().isoformat()
    assert [f["name"] for f in saved["fingerprint"]] == [fixed.name, good.name]
    assert quarantine(tmp_path) == {}


def test_a_date_filter_checks_only_that_dates_partitions(tmp_path: Path) -> None:
    # Given partitions on two dates, the earlier one bad
    earlier = T0 - timedelta(days=1)
    send(tmp_path, [progress(earlier, listened_ms=-1)])
    send(tmp_path, [progress(at) for at in minutes_before(T0, 3)])
    earlier_key = event_partition(earlier.date().isoformat(), PROGRESS)

    # When only the later date is checked
    report = check(tmp_path, dt=DAY, clock=ManualClock(T0))

    # Then only its partition is checked, and the other date has no result and no quarantine
    assert report == QualityReport(passed=(PROGRESS_KEY,))
    assert not (tmp_path / "quality" / earlier_key).exists()
    assert quarantine(tmp_path) == {}


def test_a_date_filter_that_is_not_a_date_is_refused(tmp_path: Path) -> None:
    # Given a lake; When a malformed date is asked for; Then the check refuses it
    with pytest.raises(ValueError, match="invalid date"):
        check(tmp_path, dt="2026-3-1", clock=ManualClock(T0))


def test_a_run_prints_no_progress_bars_and_logs_nothing_from_great_expectations(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Given a partition to check, and logging at INFO
    send(tmp_path, [progress(at) for at in minutes_before(T0, 3)])
    caplog.set_level(logging.INFO)

    # When it is checked
    check(tmp_path, clock=ManualClock(T0))

    # Then neither stdout nor stderr carries GE's tqdm bars, and GE logged nothing
    captured = capfd.readouterr()
    assert "Calculating Metrics" not in captured.err + captured.out
    assert [r.getMessage() for r in caplog.records if r.name.startswith("great_expectations")] == []
