"""The CLI's data commands: events replay, lake compact/check/snapshot, db upgrade."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from ingest.events.dead_letters import LocalDeadLetters
from ingest.events.envelope import UsageEvent
from musicsync.cli import app
from services.core.clock import SystemClock

pytestmark = pytest.mark.integration


def _events(count: int) -> list[UsageEvent]:
    now = datetime.now(UTC)
    return [
        UsageEvent(
            event_id=uuid.uuid4(),
            event_type="track_stream_started",
            event_version=1,
            occurred_at=now,
            actor_type="user",
            actor_id="u1",
            source="test",
            track_id=uuid.uuid4(),
        )
        for _ in range(count)
    ]


def test_replay_moves_dead_letters_into_the_lake_exactly_once(tmp_path: Path) -> None:
    # Given events that a sink once could not take, in the local dead-letter store
    data_dir = tmp_path / "data"
    lake = data_dir / "lake"
    store = LocalDeadLetters(lake, SystemClock())
    sent = _events(5) + _events(3)
    store.put(sent[:5], "ServiceUnavailableException")
    store.put(sent[5:], "record_too_large")

    # When the user replays them, twice
    runner = CliRunner()
    first = runner.invoke(app, ["events", "replay", "--data-dir", str(data_dir)])
    second = runner.invoke(app, ["events", "replay", "--data-dir", str(data_dir)])

    # Then every event is in the lake once, and nothing is left to replay
    assert first.exit_code == 0, first.output
    assert "Replayed 8 event(s) in 2 batch(es)" in first.output
    assert "0 event(s) in 0 batch(es) are still dead-lettered" in first.output
    assert "Replayed 0 event(s)" in second.output
    pattern = lake / "events" / "*" / "*" / "*.parquet"
    ids = duckdb.connect().execute(f"SELECT event_id FROM read_parquet('{pattern}')").fetchall()
    assert sorted(i for (i,) in ids) == sorted(str(e.event_id) for e in sent)
    assert store.batches() == []


def test_compact_merges_a_partitions_files_and_keeps_every_event(tmp_path: Path) -> None:
    from ingest.events.lake_writer import LocalLakeWriter

    # Given a lake with one partition written in many small files
    data_dir = tmp_path / "data"
    lake = data_dir / "lake"
    writer = LocalLakeWriter(lake, SystemClock(), max_buffer_events=10)
    sent = _events(100)
    for start in range(0, 100, 10):
        writer.send(sent[start : start + 10])
    writer.close()
    pattern = lake / "events" / "*" / "*" / "*.parquet"
    before = len(list(lake.glob("events/*/*/*.parquet")))

    # When the user compacts the lake
    result = CliRunner().invoke(app, ["lake", "compact", "--data-dir", str(data_dir)])

    # Then the files are merged and every event is still there once
    assert result.exit_code == 0, result.output
    assert before == 10
    assert len(list(lake.glob("events/*/*/*.parquet"))) == 1
    assert "10 file(s)" in result.output and "100 row(s) kept" in result.output
    ids = duckdb.connect().execute(f"SELECT event_id FROM read_parquet('{pattern}')").fetchall()
    assert sorted(i for (i,) in ids) == sorted(str(e.event_id) for e in sent)


def test_compact_refuses_a_malformed_date(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["lake", "compact", "--dt", "yesterday"])
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.output


def test_snapshot_exports_the_tables_of_the_database_it_is_given(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the database named by DATABASE_URL (as `musicsync lake snapshot` reads it)
    monkeypatch.setenv("DATABASE_URL", database_url)
    data_dir = tmp_path / "data"

    # When the user snapshots it for a day, twice
    args = ["lake", "snapshot", "--dt", "2026-11-01", "--data-dir", str(data_dir)]
    first = CliRunner().invoke(app, args)
    second = CliRunner().invoke(app, args)

    # Then each table has one file for that day, and a bad table name is a usage error
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    for table in ("users", "tracks", "uploads"):
        files = list((data_dir / "lake" / "snapshots" / table / "dt=2026-11-01").glob("*.parquet"))
        assert len(files) == 1, table
    bad = CliRunner().invoke(app, [*args, "--table", "secrets"])
    assert bad.exit_code == 2


def test_check_passes_clean_partitions_and_quarantines_a_bad_one(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ingest.events.arrow import file_schema
    from ingest.events.envelope import to_row
    from ingest.events.lake_writer import LocalLakeWriter

    # Given a lake with a clean partition and one holding the same event twice
    data_dir = tmp_path / "data"
    lake = data_dir / "lake"
    writer = LocalLakeWriter(lake, SystemClock())
    good = _events(3)
    writer.send(good)
    writer.close()
    twice = _events(1)[0]
    row = {
        k: v for k, v in to_row(twice, twice.occurred_at).items() if k not in ("dt", "event_type")
    }
    bad_dir = lake / "events" / f"dt={twice.dt}" / "event_type=track_playback_completed"
    bad_dir.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([row, row], schema=file_schema()), bad_dir / "x.parquet")

    # When the user checks the lake, twice
    first = CliRunner().invoke(app, ["lake", "check", "--data-dir", str(data_dir)])
    second = CliRunner().invoke(app, ["lake", "check", "--data-dir", str(data_dir)])

    # Then the bad partition fails and is quarantined, kept; the clean one passes; nothing reruns
    assert first.exit_code == 1, first.output
    assert "1 partition(s) passed, 1 failed" in first.output
    assert "event_type=track_playback_completed" in first.output
    quarantine = json.loads((lake / "quality" / "quarantine.json").read_text())
    assert [q["event_type"] for q in quarantine["partitions"]] == ["track_playback_completed"]
    assert (bad_dir / "x.parquet").exists()
    assert "0 partition(s) passed, 0 failed, 2 unchanged" in second.output


def test_db_upgrade_applies_pending_migrations_once(
    tmp_path: Path, server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from services.core.migrate import MIGRATIONS_DIR
    from tests.conftest import with_database

    # Given an empty database named by DATABASE_URL
    name = f"musicsync_upgrade_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    monkeypatch.setenv("DATABASE_URL", with_database(server_url, name))
    try:
        # When the user upgrades it twice
        args = ["db", "upgrade", "--data-dir", str(tmp_path)]
        first = CliRunner().invoke(app, args)
        second = CliRunner().invoke(app, args)

        # Then the first applies the migrations and the second finds nothing to do
        assert first.exit_code == 0, first.output
        shipped = sorted(path.stem for path in MIGRATIONS_DIR.glob("*.sql"))
        assert f"Applied {len(shipped)} migration(s): {', '.join(shipped)}" in first.output
        assert "up to date" in second.output
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_search_dlq_lists_changes_that_failed_to_index_and_redrives_them(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    # Given an outbox row whose indexing failed twice and waits for its backoff
    monkeypatch.setenv("DATABASE_URL", database_url)
    track_id = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO outbox (aggregate_type, aggregate_id, version, operation, attempts,
                                   last_error, retry_at)
               VALUES ('track', %s, 3, 'upsert', 2, 'index unavailable', now() + interval '1h')""",
            (track_id,),
        )
    args = ["search", "dlq", "--data-dir", str(tmp_path / "data")]
    try:
        # When the user lists the failures, then redrives them
        listed = CliRunner().invoke(app, args)
        redriven = CliRunner().invoke(app, [*args, "--redrive"])

        # Then the change is listed with its error, and is due again after the redrive
        assert listed.exit_code == 0, listed.output
        assert str(track_id) in listed.output and "index unavailable" in listed.output
        assert redriven.exit_code == 0, redriven.output
        assert "due now" in redriven.output
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT retry_at FROM outbox WHERE aggregate_id = %s", (track_id,)
            ).fetchone()
        assert row is not None and row[0] is None
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM outbox WHERE aggregate_id = %s", (track_id,))
