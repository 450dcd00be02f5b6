"""The marts, built by ``musicsync.analytics.build`` over a seeded lake, equal an independent
recomputation from the raw Parquet files in plain DuckDB SQL (not through dbt).

The lake (``tests/support/lake_events.py``) is two weeks of a small product written through the
product's ``LocalLakeWriter``: late events landing in earlier partitions, resent events (the
same ``event_id`` twice), pitch recipients who skip, seek back, pause, download, shortlist and
change their mind. The expected tables below are written from the marts' definitions (their
YAML), in different SQL from the models' (DISTINCT ON rather than a ranked subquery, counted
play starts rather than a running sum, moving windows as range joins rather than span edges),
and compared row for row.

Also here: what ``build`` does around dbt (quality checks, quarantine, errors, the summary).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from uuid import UUID

import duckdb
import pytest

from ingest.events.envelope import UsageEvent
from musicsync.analytics import (
    AnalyticsBuildError,
    BuildSummary,
    build,
    generate_docs,
    project_dir,
    warehouse_path,
)
from services.core.ids import uuid7
from tests.support.lake_events import Delivery, SeededLake, deliver, seeded_lake, write_snapshots

pytestmark = pytest.mark.integration

SKIP_MS = 30_000


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[SeededLake, BuildSummary]:
    data_dir = tmp_path_factory.mktemp("marts")
    lake = seeded_lake(data_dir, seed=11, days=14, users=40, snapshot_days=(6,))
    progress: list[tuple[str, str]] = []
    summary = build(
        data_dir,
        full_refresh=True,
        check_quality=False,
        on_model=lambda name, status, _: progress.append((name, status)),
    )
    assert ("fct_pitch_engagement", "started") in progress
    assert ("fct_pitch_engagement", "success") in progress
    return lake, summary


@pytest.fixture
def con(built: tuple[SeededLake, BuildSummary]) -> Iterator[duckdb.DuckDBPyConnection]:
    """DuckDB over the raw lake (views ``raw``, ``ev`` (deduplicated), ``snap_<table>``) with
    the warehouse attached read-only as ``w``."""
    lake, summary = built
    connection = duckdb.connect()
    connection.execute("set TimeZone = 'UTC'")
    connection.execute(f"attach '{summary.warehouse}' as w (read_only)")
    root = lake.lake_dir
    connection.execute(
        f"""create temp view raw as select * from read_parquet('{root}/events/*/*/*.parquet',
            hive_partitioning = true, union_by_name = true)"""
    )
    # One row per event_id: the copy received first.
    connection.execute(
        """create temp view ev as
           select distinct on (event_id)
               * replace (timezone('UTC', occurred_at) as occurred_at,
                          timezone('UTC', received_at) as received_at)
           from raw order by event_id, received_at"""
    )
    for table in ("tracks", "pitches", "pitch_recipients", "pitch_tracks"):
        files = f"read_parquet('{root}/snapshots/{table}/*/*.parquet', hive_partitioning = true)"
        connection.execute(
            f"create temp view snap_{table} as select * from {files} "
            f"where dt = (select max(dt) from {files})"
        )
    yield connection
    connection.close()


def assert_same(con: duckdb.DuckDBPyConnection, mart: str, expected: str) -> int:
    """The two queries give the same rows (as multisets); returns how many."""
    missing = con.execute(f"({expected}) except all ({mart})").fetchall()
    extra = con.execute(f"({mart}) except all ({expected})").fetchall()
    assert not missing and not extra, (
        f"rows expected but not in the mart: {missing[:5]}\n"
        f"rows in the mart, not expected: {extra[:5]}"
    )
    row = con.execute(f"select count(*) from ({expected})").fetchone()
    count = int(row[0]) if row else 0
    assert count > 0
    return count


# -- the lake exercises what the marts must get right ------------------------------------------
def test_the_seeded_lake_has_duplicates_late_events_and_varied_recipients(
    con: duckdb.DuckDBPyConnection, built: tuple[SeededLake, BuildSummary]
) -> None:
    one = con.execute
    duplicates = one("select count(*) - count(distinct event_id) from raw").fetchone()
    late = one(
        "select count(*) from raw where cast(timezone('UTC', received_at) as date) > dt"
    ).fetchone()
    behaviours = one(
        """select count(*) filter (where skipped), count(*) filter (where completed),
                  count(*) filter (where rewound_ms > 0), count(*) filter (where plays = 0),
                  count(*) filter (where shortlisted), count(*) filter (where downloads > 0)
           from w.main.fct_pitch_engagement"""
    ).fetchone()
    changed_minds = one(
        "select count(*) from ev where event_type = 'pitch_track_unshortlisted'"
    ).fetchone()
    assert duplicates and duplicates[0] > 0
    assert late and late[0] > 0
    assert behaviours and all(n > 0 for n in behaviours), behaviours
    assert changed_minds and changed_minds[0] > 0
    _, summary = built
    assert summary.models_built == len(summary.models) == 22  # one model is ephemeral
    assert summary.tests_failed == 0
    assert summary.tests_passed + summary.tests_warned == len(summary.tests) > 40
    assert len([n for n in summary.tests if n.resource_type == "unit_test"]) == 6
    assert summary.warehouse == warehouse_path(summary.warehouse.parents[1])


# -- the marts, recomputed -------------------------------------------------------------------------
_PLAYBACK = (
    "'pitch_track_played', 'pitch_track_progress', 'pitch_track_paused', "
    "'pitch_track_seeked', 'pitch_track_completed', 'pitch_track_skipped'"
)
# Per pitch, recipient and track: plays (a play is a pitch_track_played and the reports after it
# up to the next one; in one instant a play's end comes before the next start, and the start
# before that play's reports), listening, furthest position (not seeks), rewinds, skips, and
# the downloads, final shortlist state and comments.
_PER_TRACK = f"""
with reports as (
    select *,
        epoch_us(occurred_at) * 4 + case
            when event_type in ('pitch_track_completed', 'pitch_track_skipped',
                                'pitch_track_paused') then 0
            when event_type = 'pitch_track_played' then 1 else 2 end as ord,
        try_cast(json_extract_string(properties, '$.from_ms') as bigint) as from_ms
    from ev
    where event_type in ({_PLAYBACK})
        and pitch_id is not null and recipient_id is not null and track_id is not null
),
numbered as (
    select r.*, (
        select count(*) from reports s
        where s.event_type = 'pitch_track_played' and s.pitch_id = r.pitch_id
            and s.recipient_id = r.recipient_id and s.track_id = r.track_id
            and (s.ord < r.ord or (s.ord = r.ord and s.event_id <= r.event_id))
    ) as play
    from reports r
),
plays as (
    select pitch_id, recipient_id, track_id, play,
        coalesce(sum(listened_ms), 0) as listened,
        max(position_ms) filter (
            where event_type not in ('pitch_track_seeked', 'pitch_track_played')) as furthest,
        sum(case when event_type = 'pitch_track_seeked' and from_ms > position_ms
                 then from_ms - position_ms else 0 end) as rewound,
        bool_or(event_type = 'pitch_track_completed') as completed,
        min(occurred_at) filter (where event_type = 'pitch_track_played') as started,
        max(occurred_at) as last_at
    from numbered group by pitch_id, recipient_id, track_id, play
),
played as (
    select pitch_id, recipient_id, track_id,
        count(*) filter (where play > 0) as plays,
        sum(listened) as listened_ms,
        max(furthest) as furthest_ms,
        sum(rewound) as rewound_ms,
        count(*) filter (where completed) as completed_plays,
        count(*) filter (where play > 0 and not completed and listened < {SKIP_MS})
            as skipped_plays,
        min(started) as first_played_at,
        max(last_at) as last_at
    from plays group by pitch_id, recipient_id, track_id
),
feedback as (
    select pitch_id, recipient_id, track_id,
        count(*) filter (where event_type = 'pitch_track_downloaded') as downloads,
        min(occurred_at) filter (where event_type = 'pitch_track_downloaded')
            as first_downloaded_at,
        count(*) filter (where event_type = 'pitch_comment_added') as comments,
        arg_max(event_type, (occurred_at, received_at, event_id)) filter (
            where event_type in ('pitch_track_shortlisted', 'pitch_track_unshortlisted'))
            as last_change,
        max(occurred_at) filter (
            where event_type in ('pitch_track_shortlisted', 'pitch_track_unshortlisted'))
            as last_change_at,
        max(occurred_at) as last_at
    from ev
    where event_type in ('pitch_track_downloaded', 'pitch_comment_added',
                         'pitch_track_shortlisted', 'pitch_track_unshortlisted')
        and pitch_id is not null and recipient_id is not null and track_id is not null
    group by pitch_id, recipient_id, track_id
),
per_track as (
    select pitch_id, recipient_id, track_id,
        coalesce(p.plays, 0) as plays, coalesce(p.listened_ms, 0) as listened_ms,
        p.furthest_ms, coalesce(p.rewound_ms, 0) as rewound_ms,
        coalesce(p.completed_plays, 0) > 0 as completed,
        coalesce(p.skipped_plays, 0) as skipped_plays, p.first_played_at,
        coalesce(f.downloads, 0) as downloads, f.first_downloaded_at,
        coalesce(f.last_change = 'pitch_track_shortlisted', false) as shortlisted,
        case when f.last_change = 'pitch_track_shortlisted' then f.last_change_at end
            as shortlisted_at,
        coalesce(f.comments, 0) as comment_count,
        greatest(p.last_at, f.last_at) as last_activity_at
    from played p full join feedback f using (pitch_id, recipient_id, track_id)
)
"""
_SENDS = """
sends as (
    select pitch_id, recipient_id,
        min(occurred_at) filter (where event_type = 'pitch_sent') as sent_at,
        count(*) filter (where event_type = 'pitch_sent') as sends,
        min(occurred_at) filter (where event_type = 'pitch_opened') as first_opened_at,
        count(*) filter (where event_type = 'pitch_opened') as opens,
        count(*) filter (where event_type = 'pitch_comment_added' and track_id is null)
            as pitch_comments
    from ev
    where event_type in ('pitch_sent', 'pitch_opened', 'pitch_comment_added')
        and pitch_id is not null and recipient_id is not null
    group by pitch_id, recipient_id
)
"""


def test_pitch_engagement(con: duckdb.DuckDBPyConnection) -> None:
    columns = (
        "pitch_id, recipient_id, track_id, pitch_title, pitch_owner_id, recipient_company, "
        "track_position, track_title, duration_ms, sent_at, first_opened_at, plays, listened_ms, "
        "furthest_position_ms, round(furthest_position_share, 9), completed, skipped, "
        "skipped_plays, rewound_ms, downloads, shortlisted, shortlisted_at, comment_count, "
        "first_played_at, first_downloaded_at, last_activity_at"
    )
    expected = f"""
        {_PER_TRACK}, {_SENDS},
        grid as (
            select r.pitch_id, r.id as recipient_id, t.track_id
            from snap_pitch_recipients r join snap_pitch_tracks t on t.pitch_id = r.pitch_id
            union
            select pitch_id, recipient_id, track_id from per_track
        )
        select
            g.pitch_id, g.recipient_id, g.track_id, p.title as pitch_title,
            p.owner_id as pitch_owner_id, r.company as recipient_company,
            pt.position as track_position, t.title as track_title, t.duration_ms,
            s.sent_at, s.first_opened_at,
            coalesce(x.plays, 0) as plays, coalesce(x.listened_ms, 0) as listened_ms,
            x.furthest_ms as furthest_position_ms,
            round(case when t.duration_ms > 0 and x.furthest_ms is not null
                       then least(x.furthest_ms / t.duration_ms, 1.0) end, 9)
                as furthest_position_share,
            coalesce(x.completed, false) as completed,
            coalesce(x.skipped_plays, 0) > 0 as skipped,
            coalesce(x.skipped_plays, 0) as skipped_plays,
            coalesce(x.rewound_ms, 0) as rewound_ms, coalesce(x.downloads, 0) as downloads,
            coalesce(x.shortlisted, false) as shortlisted, x.shortlisted_at,
            coalesce(x.comment_count, 0) as comment_count,
            x.first_played_at, x.first_downloaded_at, x.last_activity_at
        from grid g
        left join per_track x using (pitch_id, recipient_id, track_id)
        left join sends s using (pitch_id, recipient_id)
        left join snap_pitches p on p.id = g.pitch_id
        left join snap_pitch_recipients r on r.id = g.recipient_id
        left join snap_pitch_tracks pt on pt.pitch_id = g.pitch_id and pt.track_id = g.track_id
        left join snap_tracks t on t.id = g.track_id
    """
    rows = assert_same(con, f"select {columns} from w.main.fct_pitch_engagement", expected)
    assert rows > 100


def test_pitch_funnel(con: duckdb.DuckDBPyConnection) -> None:
    columns = (
        "pitch_id, recipient_id, pitch_title, recipient_company, sent_at, opened_at, played_at, "
        "downloaded_at, shortlisted_at, is_sent, is_opened, is_played, is_downloaded, "
        "is_shortlisted, furthest_step, round(seconds_sent_to_opened, 6), "
        "round(seconds_opened_to_played, 6), round(seconds_played_to_downloaded, 6), "
        "round(seconds_downloaded_to_shortlisted, 6), sends, opens, plays, listened_ms, "
        "downloads, shortlisted_tracks, comment_count"
    )
    expected = f"""
        {_PER_TRACK}, {_SENDS},
        tracks as (
            select pitch_id, recipient_id,
                sum(plays) as plays, sum(listened_ms) as listened_ms, sum(downloads) as downloads,
                count(*) filter (where shortlisted) as shortlisted_tracks,
                sum(comment_count) as comments,
                min(first_played_at) as first_played_at,
                min(first_downloaded_at) as first_downloaded_at,
                min(shortlisted_at) as first_shortlisted_at
            from per_track group by pitch_id, recipient_id
        ),
        recipients as (
            select pitch_id, id as recipient_id from snap_pitch_recipients
            union select pitch_id, recipient_id from sends
            union select pitch_id, recipient_id from tracks
        ),
        steps as (
            select r.pitch_id, r.recipient_id, s.sent_at, s.first_opened_at, t.first_played_at,
                t.first_downloaded_at, t.first_shortlisted_at,
                coalesce(s.sends, 0) as sends, coalesce(s.opens, 0) as opens,
                coalesce(t.plays, 0) as plays, coalesce(t.listened_ms, 0) as listened_ms,
                coalesce(t.downloads, 0) as downloads,
                coalesce(t.shortlisted_tracks, 0) as shortlisted_tracks,
                coalesce(t.comments, 0) + coalesce(s.pitch_comments, 0) as comment_count
            from recipients r left join sends s using (pitch_id, recipient_id)
            left join tracks t using (pitch_id, recipient_id)
        ),
        reached as (
            select *,
                case when sent_at is not null and first_opened_at is not null
                     then greatest(sent_at, first_opened_at) end as opened_at,
                case when sent_at is not null and first_opened_at is not null
                      and first_played_at is not null
                     then greatest(sent_at, first_opened_at, first_played_at) end as played_at,
                case when sent_at is not null and first_opened_at is not null
                      and first_played_at is not null and first_downloaded_at is not null
                     then greatest(sent_at, first_opened_at, first_played_at, first_downloaded_at)
                end as downloaded_at,
                case when sent_at is not null and first_opened_at is not null
                      and first_played_at is not null and first_downloaded_at is not null
                      and first_shortlisted_at is not null
                     then greatest(sent_at, first_opened_at, first_played_at,
                                   first_downloaded_at, first_shortlisted_at)
                end as shortlisted_at
            from steps
        )
        select x.pitch_id, x.recipient_id, p.title, r.company, sent_at, opened_at, played_at,
            downloaded_at, x.shortlisted_at,
            sent_at is not null, opened_at is not null, played_at is not null,
            downloaded_at is not null, x.shortlisted_at is not null,
            case when x.shortlisted_at is not null then 'shortlisted'
                 when downloaded_at is not null then 'downloaded'
                 when played_at is not null then 'played'
                 when opened_at is not null then 'opened'
                 when sent_at is not null then 'sent' else 'not sent' end,
            round(epoch(opened_at) - epoch(sent_at), 6),
            round(epoch(played_at) - epoch(opened_at), 6),
            round(epoch(downloaded_at) - epoch(played_at), 6),
            round(epoch(x.shortlisted_at) - epoch(downloaded_at), 6),
            sends, opens, plays, listened_ms, downloads, shortlisted_tracks, comment_count
        from reached x
        left join snap_pitches p on p.id = x.pitch_id
        left join snap_pitch_recipients r on r.id = x.recipient_id
    """
    rows = assert_same(con, f"select {columns} from w.main.fct_pitch_funnel", expected)
    steps = dict(
        con.execute(
            "select furthest_step, count(*) from w.main.fct_pitch_funnel group by all"
        ).fetchall()
    )
    assert rows > 20
    assert {"sent", "opened", "played"} <= set(steps), steps


def test_track_popularity_daily(con: duckdb.DuckDBPyConnection) -> None:
    columns = (
        "track_id, dt, plays, listened_ms, listeners, streams, stream_listened_ms, "
        "stream_completions, downloads, pitch_plays, pitch_listened_ms, pitch_completions, "
        "pitch_downloads, shortlists, playlist_adds"
    )
    expected = """
        with daily as (
            select track_id, dt,
                count(*) filter (where event_type = 'track_stream_started') as streams,
                coalesce(sum(listened_ms) filter (where event_type in
                    ('track_playback_progress', 'track_playback_completed')), 0)
                    as stream_listened_ms,
                count(*) filter (where event_type = 'track_playback_completed')
                    as stream_completions,
                count(*) filter (where event_type = 'track_downloaded') as downloads,
                count(*) filter (where event_type = 'pitch_track_played') as pitch_plays,
                coalesce(sum(listened_ms) filter (where event_type in ('pitch_track_progress',
                    'pitch_track_paused', 'pitch_track_completed', 'pitch_track_skipped')), 0)
                    as pitch_listened_ms,
                count(*) filter (where event_type = 'pitch_track_completed') as pitch_completions,
                count(*) filter (where event_type = 'pitch_track_downloaded') as pitch_downloads,
                count(*) filter (where event_type = 'pitch_track_shortlisted') as shortlists,
                count(*) filter (where event_type = 'playlist_track_added') as playlist_adds,
                count(distinct (actor_type, actor_id)) filter (
                    where event_type in ('track_stream_started', 'pitch_track_played')) as listeners
            from ev
            where track_id is not null and event_type in ('track_stream_started',
                'track_playback_progress', 'track_playback_completed', 'track_downloaded',
                'pitch_track_played', 'pitch_track_progress', 'pitch_track_paused',
                'pitch_track_completed', 'pitch_track_skipped', 'pitch_track_downloaded',
                'pitch_track_shortlisted', 'playlist_track_added')
            group by track_id, dt
        )
        select track_id, dt, streams + pitch_plays, stream_listened_ms + pitch_listened_ms,
            listeners, streams, stream_listened_ms, stream_completions, downloads, pitch_plays,
            pitch_listened_ms, pitch_completions, pitch_downloads, shortlists, playlist_adds
        from daily
    """
    assert (
        assert_same(con, f"select {columns} from w.main.mart_track_popularity_daily", expected) > 50
    )


def test_user_activity_daily(con: duckdb.DuckDBPyConnection) -> None:
    expected = """
        with user_days as (
            select dt, actor_id as user_id, count(*) as events,
                count(distinct session_id) as sessions
            from ev where actor_type = 'user' and actor_id is not null group by dt, actor_id
        ),
        days as (
            select cast(unnest(range(min(dt), max(dt) + 1, interval 1 day)) as date) as day
            from user_days
        ),
        firsts as (select user_id, min(dt) as first_dt from user_days group by user_id)
        select d.day,
            count(distinct u.user_id) filter (where u.dt = d.day) as dau,
            count(distinct u.user_id) filter (where u.dt > d.day - 7) as wau,
            count(distinct u.user_id) as mau,
            (select count(*) from firsts f where f.first_dt = d.day) as new_users,
            round(count(distinct u.user_id) filter (where u.dt = d.day)
                  / nullif(count(distinct u.user_id), 0), 9) as dau_over_mau,
            coalesce(sum(u.events) filter (where u.dt = d.day), 0) as events,
            coalesce(sum(u.sessions) filter (where u.dt = d.day), 0) as sessions
        from days d left join user_days u on u.dt between d.day - 27 and d.day
        group by d.day
    """
    mart = """select dt, dau, wau, mau, new_users, round(dau_over_mau, 9), events, sessions
              from w.main.mart_user_activity_daily"""
    assert assert_same(con, mart, expected) == 14


def test_retention_weekly(con: duckdb.DuckDBPyConnection) -> None:
    expected = """
        with weeks as (
            select distinct actor_id as user_id, date_trunc('week', dt)::date as week
            from ev where actor_type = 'user' and actor_id is not null
        ),
        cohorts as (select user_id, min(week) as cohort_week from weeks group by user_id),
        sizes as (select cohort_week, count(*) as users from cohorts group by cohort_week),
        calendar as (
            select unnest(range(min(week), max(week) + 1, interval 7 day))::date as week from weeks
        )
        select s.cohort_week, (c.week - s.cohort_week) // 7 as weeks_since_first, c.week,
            s.users,
            (select count(*) from weeks w join cohorts k using (user_id)
             where k.cohort_week = s.cohort_week and w.week = c.week) as active,
            round((select count(*) from weeks w join cohorts k using (user_id)
                   where k.cohort_week = s.cohort_week and w.week = c.week) / s.users, 9)
        from sizes s join calendar c on c.week >= s.cohort_week
    """
    mart = """select cohort_week, weeks_since_first, activity_week, cohort_users, active_users,
                     round(retention_rate, 9)
              from w.main.mart_retention_weekly"""
    assert assert_same(con, mart, expected) >= 3


def test_search_terms(con: duckdb.DuckDBPyConnection) -> None:
    expected = r"""
        with searches as (
            select dt, actor_id, result_count, latency_ms,
                lower(trim(regexp_replace(coalesce(properties ->> '$.query', ''), '\s+', ' ', 'g')))
                    as query
            from ev where event_type = 'search_performed'
        )
        select query, dt, count(*), count(*) filter (where result_count = 0),
            round(count(*) filter (where result_count = 0) / count(*), 9),
            count(distinct actor_id), round(avg(result_count), 9), round(avg(latency_ms), 9),
            row_number() over (partition by dt order by count(*) desc, query)
        from searches group by query, dt
    """
    mart = """select query, dt, searches, zero_result_searches, round(zero_result_rate, 9),
                     searchers, round(avg_result_count, 9), round(avg_latency_ms, 9), daily_rank
              from w.main.mart_search_terms"""
    assert assert_same(con, mart, expected) > 14
    # Different spellings of one query are one term; typos find nothing.
    terms = dict(
        con.execute(
            "select query, sum(zero_result_searches) from w.main.mart_search_terms group by query"
        ).fetchall()
    )
    assert "lo-fi beats" in terms and "Lo-Fi  Beats" not in terms
    assert terms["xylophnoe"] > 0


def test_catalog_growth(con: duckdb.DuckDBPyConnection) -> None:
    expected = """
        with uploads as (
            select distinct on (track_id) track_id, dt, bytes,
                coalesce(properties ->> '$.container', 'unknown') as container,
                coalesce(properties ->> '$.codec', 'unknown') as codec,
                cast(properties ->> '$.duration_ms' as bigint) as duration_ms
            from ev where event_type = 'track_uploaded' and track_id is not null
            order by track_id, occurred_at, event_id
        ),
        deletions as (
            select distinct on (track_id) track_id, dt
            from ev where event_type = 'track_deleted' and track_id is not null
            order by track_id, occurred_at, event_id
        ),
        changes as (
            select dt, container, codec, 1 as up, bytes as up_bytes, duration_ms as up_ms,
                0 as del, 0 as del_bytes, 1 as stored, bytes as stored_bytes
            from uploads
            union all
            select d.dt, coalesce(u.container, 'unknown'), coalesce(u.codec, 'unknown'), 0, 0, 0,
                1, coalesce(u.bytes, 0), case when u.track_id is null then 0 else -1 end,
                -coalesce(u.bytes, 0)
            from deletions d left join uploads u using (track_id)
        ),
        daily as (
            select dt, container, codec, sum(up) as up, sum(up_bytes) as up_bytes,
                sum(up_ms) as up_ms, sum(del) as del, sum(del_bytes) as del_bytes,
                sum(stored) as stored, sum(stored_bytes) as stored_bytes
            from changes group by dt, container, codec
        )
        select dt, container, codec, up, up_bytes, up_ms, del, del_bytes,
            sum(stored) over (partition by container, codec order by dt),
            sum(stored_bytes) over (partition by container, codec order by dt)
        from daily
    """
    mart = """select dt, container, codec, uploads, uploaded_bytes, uploaded_duration_ms,
                     deletions, deleted_bytes, tracks_stored, bytes_stored
              from w.main.mart_catalog_growth"""
    assert assert_same(con, mart, expected) > 14
    deleted = con.execute("select sum(deletions) from w.main.mart_catalog_growth").fetchone()
    assert deleted and deleted[0] > 0


def test_tracks_dimension(con: duckdb.DuckDBPyConnection) -> None:
    expected = "select id, title, duration_ms, container, codec, size_bytes from snap_tracks"
    mart = (
        "select track_id, title, duration_ms, container, codec, size_bytes from w.main.dim_tracks"
    )
    assert assert_same(con, mart, expected) > 20


def test_the_marts_read_only_the_latest_snapshot(con: duckdb.DuckDBPyConnection) -> None:
    """The lake holds two snapshots (day 7 and day 14): staging reads the later."""
    days = con.execute(
        "select count(distinct snapshot_dt), max(snapshot_dt) from w.main.stg_lake__tracks"
    ).fetchone()
    assert days == (1, date(2025, 3, 16))


def test_docs_generate(built: tuple[SeededLake, BuildSummary]) -> None:
    """``dbt docs generate`` works: the site and the catalogue of every model."""
    _, summary = built
    index = generate_docs(summary.warehouse.parents[1])
    catalog = json.loads((index.parent / "catalog.json").read_text())
    assert index.is_file()
    assert "model.musicsync.fct_pitch_engagement" in catalog["nodes"]


# -- build() around dbt ------------------------------------------------------------------------
def _day(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), UTC)


def _event(event_type: str, at: datetime, **columns: object) -> UsageEvent:
    return UsageEvent(
        event_id=uuid7(at),
        event_type=event_type,
        event_version=1,
        occurred_at=at,
        actor_type="user",
        actor_id="u-1",
        source="gateway",
        **columns,  # type: ignore[arg-type]
    )


def test_quality_checks_leave_bad_partitions_out_and_tolerate_resent_events(
    tmp_path: Path, built: tuple[SeededLake, BuildSummary]
) -> None:
    """A partition failing the quality suite stays out of the marts; one failing only because
    an event was resent (the same event_id twice) stays in: staging keeps one copy."""
    lake, _ = built
    data_dir = tmp_path / "data"
    day = date(2025, 3, 3)
    good = _event("user_signed_in", _day(day, 9), session_id="s-1")
    bad = _event("track_stream_started", _day(day, 10), session_id="s-1", track_id=UUID(int=7))
    bad.listened_ms = -5  # a measure below zero fails the suite
    deliveries = [
        Delivery(_day(day, 9) + timedelta(seconds=1), good),
        Delivery(_day(day, 9) + timedelta(seconds=90), good),  # resent
        Delivery(_day(day, 10) + timedelta(seconds=1), bad),
    ]
    lake_dir = data_dir / "lake"
    for delivery in deliveries:
        deliver(lake_dir, [delivery])
    write_snapshots(lake_dir, lake.simulation, day)
    summary = build(data_dir, check_quality=True)
    assert summary.quality is not None
    assert set(summary.quality.failed) == {
        "events/dt=2025-03-03/event_type=user_signed_in",
        "events/dt=2025-03-03/event_type=track_stream_started",
    }
    assert summary.left_out == ("events/dt=2025-03-03/event_type=track_stream_started",)
    assert summary.duplicates_tolerated == ("events/dt=2025-03-03/event_type=user_signed_in",)
    with duckdb.connect(str(summary.warehouse), read_only=True) as warehouse:
        activity = warehouse.execute(
            "select dt, dau, events from main.mart_user_activity_daily"
        ).fetchall()
        popularity = warehouse.execute(
            "select count(*) from main.mart_track_popularity_daily"
        ).fetchone()
    assert activity == [(day, 1, 1)]
    assert popularity == (0,)


def test_a_lake_without_snapshots_is_refused_before_dbt(tmp_path: Path) -> None:
    at = _day(date(2025, 3, 3), 9)
    deliver(tmp_path / "lake", [Delivery(at, _event("user_signed_in", at, session_id="s"))])
    with pytest.raises(AnalyticsBuildError, match="musicsync lake snapshot"):
        build(tmp_path, check_quality=False)


def test_a_failing_model_is_named(tmp_path: Path, built: tuple[SeededLake, BuildSummary]) -> None:
    """dbt's failure comes back as one error naming the model and dbt's log, no traceback."""
    lake, _ = built
    project = tmp_path / "project"
    shutil.copytree(project_dir(), project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "models" / "marts" / "catalog" / "dim_tracks.sql").write_text(
        "select track_id, no_such_column from {{ ref('stg_lake__tracks') }}\n"
    )
    data_dir = tmp_path / "data"
    shutil.copytree(lake.lake_dir, data_dir / "lake")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MUSICSYNC_DBT_PROJECT_DIR", str(project))
        with pytest.raises(AnalyticsBuildError) as raised:
            build(data_dir, check_quality=False, select=["stg_lake__tracks", "dim_tracks"])
    message = str(raised.value)
    assert "model dim_tracks" in message
    assert "no_such_column" in message
    assert "dbt.log" in message
