"""The activity simulator: real handlers, simulated time, believable and repeatable history."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
from psycopg.rows import dict_row
from starlette.testclient import TestClient

from musicsync.simulate import SimulationSummary, simulate
from musicsync.stack import local_settings, open_stack
from services.core import migrate
from services.core.clock import ManualClock
from tests.conftest import with_database

pytestmark = pytest.mark.integration

START = date(2026, 3, 2)  # a Monday
DAYS = 3
USERS = 4
SEED = 9  # a seed whose three days include pitches that are opened, played and downloaded

# What four people do in three days, whatever the seed's details: every part of the product.
EXPECTED_TYPES = {
    "track_upload_started",
    "track_uploaded",
    "track_updated",
    "track_stream_started",
    "track_playback_progress",
    "search_performed",
    "playlist_created",
    "playlist_track_added",
    "pitch_created",
    "pitch_sent",
    "pitch_opened",
    "pitch_track_played",
    "pitch_track_progress",
    "pitch_track_downloaded",
    "pitch_track_shortlisted",
}


@dataclass
class Run:
    data_dir: Path
    summary: SimulationSummary
    days_reported: list[tuple[int, int, int]]


def _run(data_dir: Path, database_url: str) -> Run:
    reported: list[tuple[int, int, int]] = []

    def on_day(day_index: int, days: int, summary: SimulationSummary) -> None:
        reported.append((day_index, days, summary.days_done))

    summary = simulate(
        data_dir,
        users=USERS,
        days=DAYS,
        seed=SEED,
        start=START,
        on_day=on_day,
        database_url=database_url,
    )
    return Run(data_dir, summary, reported)


@pytest.fixture(scope="module")
def other_database_url(server_url: str) -> Iterator[str]:
    """A second fresh database: the scheduled jobs sweep a whole database, so a run sharing one
    would also expire what the other run left open (uploads, pitches) and count those events."""
    name = f"musicsync_sim_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    migrate.upgrade(url)
    try:
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def runs(
    database_url: str, other_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Run, Run]:
    """The same seed, twice, each into a data dir and a database of its own."""
    return (
        _run(tmp_path_factory.mktemp("simulation-a"), database_url),
        _run(tmp_path_factory.mktemp("simulation-b"), other_database_url),
    )


def _sql(query: str) -> list[tuple[Any, ...]]:
    with duckdb.connect() as db:
        return db.execute(query).fetchall()


def _lake(data_dir: Path) -> str:
    path = data_dir / "lake" / "events" / "*" / "*" / "*.parquet"
    return f"read_parquet('{path}', hive_partitioning = true, union_by_name = true)"


def test_a_run_walks_the_days_without_a_single_unexpected_answer(runs: tuple[Run, Run]) -> None:
    run = runs[0]
    summary = run.summary
    assert dict(summary.errors) == {}
    assert run.days_reported == [(0, DAYS, 1), (1, DAYS, 2), (2, DAYS, 3)]
    start = datetime(START.year, START.month, START.day, tzinfo=UTC)
    assert summary.start == start and summary.end == start + timedelta(days=DAYS)
    assert summary.first_at is not None and summary.last_at is not None
    assert start <= summary.first_at < summary.last_at < summary.end
    assert summary.users_joined == USERS
    assert summary.actions["sign_in"] >= USERS and summary.actions["upload"] >= 3 * USERS
    assert summary.pitches >= 1 and summary.recipients >= summary.pitches
    assert summary.requests > summary.total_actions


def test_the_lake_holds_every_kind_of_activity_over_the_simulated_days(
    runs: tuple[Run, Run],
) -> None:
    run = runs[0]
    lake = _lake(run.data_dir)
    by_type = dict(_sql(f"SELECT event_type, count(*) FROM {lake} GROUP BY 1"))
    # The summary's counts are the lake's, and the lake has a bit of everything
    assert by_type == run.summary.events
    assert set(by_type) >= EXPECTED_TYPES
    # Every simulated day has its partition, and nothing lies outside them: dt is the UTC date
    # of the simulated occurred_at, and events were received at the simulated time as well
    days = [START + timedelta(days=n) for n in range(DAYS)]
    partitions = _sql(f"SELECT DISTINCT CAST(dt AS DATE) FROM {lake} ORDER BY 1")
    assert [row[0] for row in partitions] == days
    [(misplaced, early, late)] = _sql(
        f"""SELECT count(*) FILTER (WHERE CAST(dt AS DATE) <> CAST(timezone('UTC', occurred_at) AS DATE)),
                   count(*) FILTER (WHERE received_at < occurred_at),
                   count(*) FILTER (WHERE received_at > TIMESTAMPTZ '{START + timedelta(days=DAYS)} 00:00:00+00')
              FROM {lake}"""  # noqa: E501
    )
    assert (misplaced, early, late) == (0, 0, 0)
    # Recipients report through their link: their events name the pitch and the recipient
    [(unattributed,)] = _sql(
        f"""SELECT count(*) FROM {lake}
             WHERE event_type LIKE 'pitch_track_%'
               AND (pitch_id IS NULL OR recipient_id IS NULL OR actor_type <> 'recipient')"""
    )
    assert unattributed == 0


def test_the_same_seed_gives_the_same_actions_and_events(runs: tuple[Run, Run]) -> None:
    first, second = runs[0].summary, runs[1].summary
    assert first.actions == second.actions
    assert first.events == second.events
    assert (first.pitches, first.recipients) == (second.pitches, second.recipients)


def test_a_small_run_is_fast(runs: tuple[Run, Run]) -> None:
    # Four users over three days: a few hundred requests, a few seconds (loaded machine: 30 s)
    assert all(run.summary.wall_seconds < 30 for run in runs)


def test_the_owner_sees_the_recipients_engagement_on_a_pitch(
    runs: tuple[Run, Run], database_url: str
) -> None:
    run = runs[0]
    lake = _lake(run.data_dir)
    # A pitch whose recipient played something, and its owner (from the pitch_created event)
    rows = _sql(
        f"""SELECT c.pitch_id, c.actor_id
              FROM {lake} c
              JOIN {lake} p ON p.pitch_id = c.pitch_id AND p.event_type = 'pitch_track_played'
             WHERE c.event_type = 'pitch_created'
             GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1"""
    )
    assert rows, "no pitch was played"
    pitch_id, owner_id = str(rows[0][0]), str(rows[0][1])
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        owner = conn.execute(
            "SELECT subject, email, name FROM users WHERE id = %s", (owner_id,)
        ).fetchone()
    assert owner is not None
    detail = _owner_reads(run, database_url, owner, f"/v1/pitches/{pitch_id}")
    engaged = [r["engagement"] for r in detail["recipients"] if r["engagement"]["plays"]]
    assert engaged, detail
    for engagement in engaged:
        assert engagement["opened"] and engagement["opens"] >= 1
        assert engagement["listened_ms"] > 0 and engagement["tracks"]
        durations = {t["id"]: t["duration_ms"] for t in detail["tracks"]}
        for track in engagement["tracks"]:
            # Listening never runs past the track: at most one track length per play
            assert track["listened_ms"] <= track["plays"] * durations[track["track_id"]]
            assert (
                track["furthest_ms"] is None or track["furthest_ms"] <= durations[track["track_id"]]
            )


def _owner_reads(run: Run, database_url: str, owner: dict[str, Any], path: str) -> dict[str, Any]:
    """Reopen the run's stack at its end and read ``path`` as ``owner``."""
    settings = local_settings(
        run.data_dir,
        database_url=database_url,
        redis_url=os.environ.get("REDIS_URL"),
        sweep_seconds=10.0**9,
    )
    clock = ManualClock(run.summary.end)
    with open_stack(settings, clock) as stack, TestClient(stack.app) as client:
        token = stack.idp.mint(owner["subject"], email=owner["email"], name=owner["name"])
        response = client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_marts_of_a_simulation_equal_a_recomputation_from_the_raw_events(
    runs: tuple[Run, Run], database_url: str
) -> None:
    from lake.snapshots import snapshot
    from musicsync.analytics import build, warehouse_path

    # Given a seeded simulation, its database snapshotted and the marts built by dbt
    run = runs[0]
    snapshot(database_url, run.data_dir / "lake", (START + timedelta(days=DAYS)).isoformat())
    build(run.data_dir, full_refresh=True)

    # When plays and downloads per pitch x recipient x track are counted straight from the
    # Parquet events (each event once) in plain DuckDB
    recomputed = _sql(
        f"""SELECT pitch_id, recipient_id, track_id,
                   count(DISTINCT event_id) FILTER (WHERE event_type = 'pitch_track_played'),
                   count(DISTINCT event_id) FILTER (WHERE event_type = 'pitch_track_downloaded')
            FROM {_lake(run.data_dir)}
            WHERE event_type IN ('pitch_track_played', 'pitch_track_downloaded')
            GROUP BY ALL ORDER BY ALL"""
    )
    with duckdb.connect(str(warehouse_path(run.data_dir)), read_only=True) as db:
        marts = db.execute(
            """SELECT CAST(pitch_id AS VARCHAR), CAST(recipient_id AS VARCHAR),
                      CAST(track_id AS VARCHAR), plays, downloads
               FROM fct_pitch_engagement WHERE plays > 0 OR downloads > 0 ORDER BY ALL"""
        ).fetchall()

    # Then the mart says exactly that
    assert recomputed, "the simulation played nothing"
    assert [tuple(str(v) for v in row) for row in marts] == [
        tuple(str(v) for v in row) for row in recomputed
    ]
