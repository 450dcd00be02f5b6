"""Incremental builds: late and resent events change the marts exactly as they should, and an
incremental run after a new day equals a full refresh.

The lake is ten days of ``tests/support/lake_events.py``'s seeded product, built once in full.
Then, through the product's ``LocalLakeWriter``:

1. late events (a recipient's complete play of a pitch track, and a search, both of
   yesterday, written after the build into yesterday's partitions) and resent events (copies of
   a whole day's events: the same ``event_id`` again, received later) land; an incremental run
   changes exactly the rows the late events belong to, by exactly what they add;
2. the simulation's next day lands (with what was still in flight from the days before); the
   incremental run's marts equal those of a full refresh, row for row.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ingest.events.envelope import UsageEvent
from musicsync.analytics import build, warehouse_path
from services.core.ids import uuid7
from tests.support.lake_events import (
    Delivery,
    SeededLake,
    deliver,
    read_events,
    seeded_lake,
    write_snapshots,
)

pytestmark = pytest.mark.integration

# Each mart and its grain.
MARTS: Mapping[str, tuple[str, ...]] = {
    "fct_pitch_engagement": ("pitch_id", "recipient_id", "track_id"),
    "fct_pitch_funnel": ("pitch_id", "recipient_id"),
    "mart_track_popularity_daily": ("track_id", "dt"),
    "mart_user_activity_daily": ("dt",),
    "mart_retention_weekly": ("cohort_week", "weeks_since_first"),
    "mart_search_terms": ("query", "dt"),
    "mart_catalog_growth": ("dt", "container", "codec"),
    "dim_tracks": ("track_id",),
}
Rows = dict[tuple[Any, ...], dict[str, Any]]


def marts(data_dir: Path) -> dict[str, Rows]:
    """Every mart's rows by grain (doubles rounded: sums in another order may differ in the
    last bit)."""
    out: dict[str, Rows] = {}
    with duckdb.connect(str(warehouse_path(data_dir)), read_only=True) as con:
        for mart, grain in MARTS.items():
            cursor = con.execute(f"select * from main.{mart}")
            names = [d[0] for d in cursor.description]
            rows: Rows = {}
            for values in cursor.fetchall():
                row = {
                    n: round(v, 9) if isinstance(v, float) else v
                    for n, v in zip(names, values, strict=True)
                }
                key = tuple(row[k] for k in grain)
                assert key not in rows, f"{mart}: {key} twice"
                rows[key] = row
            out[mart] = rows
    return out


def changes(
    before: Rows, after: Rows
) -> dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any]]]:
    """The rows that differ, by key: (before, after), {} for a row missing on one side."""
    return {
        key: (before.get(key, {}), after.get(key, {}))
        for key in before.keys() | after.keys()
        if before.get(key) != after.get(key)
    }


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[SeededLake, Path]:
    data_dir = tmp_path_factory.mktemp("incremental")
    seeded = seeded_lake(data_dir, seed=5, days=10, users=30)
    build(data_dir, full_refresh=True, check_quality=False)
    return seeded, data_dir


def _at(day: date, seconds: float) -> datetime:
    return datetime.combine(day, time(), UTC) + timedelta(seconds=seconds)


def _late_play(
    pitch: str, recipient: str, track: str, day: date, duration_ms: int
) -> list[UsageEvent]:
    """A whole play, start to end, as the pitch page reports it (what late events look like
    after a phone was offline)."""
    start = _at(day, 20 * 3600 + 17)
    common: dict[str, Any] = {
        "event_version": 1,
        "actor_type": "recipient",
        "actor_id": recipient,
        "source": "collector",
        "pitch_id": uuid.UUID(pitch),
        "recipient_id": uuid.UUID(recipient),
        "track_id": uuid.UUID(track),
    }
    reports: list[tuple[str, int, int | None]] = [("pitch_track_played", 0, None)]
    reports += [("pitch_track_progress", ms, 10_000) for ms in range(10_000, duration_ms, 10_000)]
    reports.append(("pitch_track_completed", duration_ms, duration_ms % 10_000 or 10_000))
    return [
        UsageEvent(
            event_id=uuid.uuid4(),
            event_type=kind,
            occurred_at=start + timedelta(milliseconds=position),
            position_ms=position,
            listened_ms=listened,
            **common,
        )
        for kind, position, listened in reports
    ]


def test_late_and_resent_events_change_exactly_what_they_should(
    lake: tuple[SeededLake, Path],
) -> None:
    seeded, data_dir = lake
    before = marts(data_dir)
    yesterday = seeded.last_day
    today = yesterday + timedelta(days=1)
    with duckdb.connect(str(warehouse_path(data_dir)), read_only=True) as con:
        # A recipient who played a track before yesterday, and a user active yesterday.
        target = con.execute(
            """select pitch_id, recipient_id, track_id, duration_ms from main.fct_pitch_engagement
               where plays > 0 and duration_ms is not null and first_played_at < ?
               order by pitch_id, recipient_id, track_id limit 1""",
            [datetime.combine(yesterday, time())],
        ).fetchone()
        user = con.execute(
            "select min(user_id) from main.int_user_activity_aggregated_to_days where dt = ?",
            [yesterday],
        ).fetchone()
    assert target is not None and user is not None and user[0] is not None
    pitch, recipient, track, duration = target
    play = _late_play(pitch, recipient, track, yesterday, duration)
    listened = sum(e.listened_ms or 0 for e in play)
    search = UsageEvent(
        event_id=uuid7(_at(yesterday, 23 * 3600)),
        event_type="search_performed",
        event_version=1,
        occurred_at=_at(yesterday, 23 * 3600),
        actor_type="user",
        actor_id=user[0],
        source="search",
        result_count=0,
        latency_ms=4,
        properties={"query": "ZZZ  late night query"},
    )
    resent = read_events(seeded.lake_dir, yesterday) + read_events(
        seeded.lake_dir, yesterday - timedelta(days=1)
    )
    assert len(resent) > 100
    arrival = _at(today, 600)
    deliver(
        seeded.lake_dir,
        [Delivery(arrival, e) for e in [*play, search]]
        + [Delivery(arrival + timedelta(seconds=5), e) for e in resent],
    )

    build(data_dir, check_quality=False)
    after = marts(data_dir)

    engagement = changes(before["fct_pitch_engagement"], after["fct_pitch_engagement"])
    assert set(engagement) == {(pitch, recipient, track)}
    old, new = engagement[(pitch, recipient, track)]
    assert new["plays"] == old["plays"] + 1
    assert new["listened_ms"] == old["listened_ms"] + listened
    assert new["completed"] and new["furthest_position_share"] == 1.0
    assert new["downloads"] == old["downloads"]

    funnel = changes(before["fct_pitch_funnel"], after["fct_pitch_funnel"])
    assert set(funnel) == {(pitch, recipient)}
    old, new = funnel[(pitch, recipient)]
    assert (new["plays"], new["listened_ms"]) == (old["plays"] + 1, old["listened_ms"] + listened)
    assert new["played_at"] == old["played_at"]

    popularity = changes(
        before["mart_track_popularity_daily"], after["mart_track_popularity_daily"]
    )
    assert set(popularity) == {(track, yesterday)}
    old, new = popularity[(track, yesterday)]
    assert new["pitch_plays"] == old.get("pitch_plays", 0) + 1
    assert new["pitch_listened_ms"] == old.get("pitch_listened_ms", 0) + listened
    assert new["pitch_completions"] == old.get("pitch_completions", 0) + 1

    searches = changes(before["mart_search_terms"], after["mart_search_terms"])
    assert set(searches) == {("zzz late night query", yesterday)}
    assert searches[("zzz late night query", yesterday)][1]["zero_result_searches"] == 1

    activity = changes(before["mart_user_activity_daily"], after["mart_user_activity_daily"])
    assert set(activity) == {(yesterday,)}
    old, new = activity[(yesterday,)]
    assert new["events"] == old["events"] + 1
    assert {k: v for k, v in new.items() if k != "events"} == {
        k: v for k, v in old.items() if k != "events"
    }

    for mart in ("mart_retention_weekly", "mart_catalog_growth", "dim_tracks"):
        assert changes(before[mart], after[mart]) == {}, mart


def test_an_incremental_run_after_a_new_day_equals_a_full_refresh(
    lake: tuple[SeededLake, Path],
) -> None:
    seeded, data_dir = lake
    new_day = seeded.last_day + timedelta(days=1)
    deliveries = seeded.simulation.day(new_day)
    assert {d.event.occurred_at.date() for d in deliveries} > {new_day}  # late ones too
    deliver(seeded.lake_dir, deliveries)
    write_snapshots(seeded.lake_dir, seeded.simulation, new_day)

    incremental = build(data_dir, check_quality=False)
    assert not incremental.full_refresh
    assert not [n for n in incremental.nodes if n.resource_type == "unit_test"]
    after_incremental = marts(data_dir)
    assert max(k[1] for k in after_incremental["mart_track_popularity_daily"]) == new_day

    build(data_dir, full_refresh=True, check_quality=False)
    after_full = marts(data_dir)
    for mart in MARTS:
        assert changes(after_full[mart], after_incremental[mart]) == {}, mart
