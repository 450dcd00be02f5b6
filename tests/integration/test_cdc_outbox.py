"""Change capture in the database: the outbox triggers, versions, NOTIFY, the publisher and
the sweeper, and the Aurora wake-up branch against stand-in ``aws_lambda`` functions.

Each module gets a database of its own: the publisher drains every unpublished row, and the
Aurora branch installs a trigger, neither of which may touch other tests' data.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ingest.cdc import publisher as publisher_module
from ingest.cdc.lambdas import publish_after_commit, wait_for_transaction
from ingest.cdc.outbox import CHANNEL, ChangeMessage, backlog
from ingest.cdc.publisher import Publisher, drain, publish_pending
from ingest.cdc.sweeper import sweep
from tests.support.cdc import (
    Conn,
    add_entry,
    add_playlist,
    add_share,
    add_track,
    add_user,
    drop_database,
    fresh_database,
    own_database,
    pool_of,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def db_url(server_url: str) -> Iterator[str]:
    with own_database(server_url) as url:
        yield url


@pytest.fixture(scope="module")
def pool(db_url: str) -> Iterator[ConnectionPool[Any]]:
    with pool_of(db_url, max_size=8) as pool:
        yield pool


@pytest.fixture(autouse=True)
def empty_outbox(pool: ConnectionPool[Any]) -> None:
    """Every test starts with nothing waiting (earlier tests' rows are marked published)."""
    with pool.connection() as conn:
        conn.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")


def connect(url: str) -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(url, row_factory=dict_row)


def outbox_rows(conn: Conn, after: int = 0) -> list[tuple[uuid.UUID, int, str]]:
    """(track, version, operation) of the outbox rows after id ``after``, in id order."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT aggregate_id, version, operation FROM outbox WHERE id > %s ORDER BY id",
            (after,),
        ).fetchall()
    return [(r["aggregate_id"], r["version"], r["operation"]) for r in rows]


def last_id(conn: Conn) -> int:
    row = conn.execute("SELECT COALESCE(max(id), 0) FROM outbox").fetchone()
    assert row is not None
    return int(next(iter(row.values())) if isinstance(row, dict) else row[0])


def version_of(conn: Conn, track_id: uuid.UUID) -> int | None:
    row = conn.execute(
        "SELECT version FROM cdc_versions WHERE aggregate_type = 'track' AND aggregate_id = %s",
        (track_id,),
    ).fetchone()
    if row is None:
        return None
    return int(row["version"] if isinstance(row, dict) else row[0])


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with connect(db_url) as conn:
        yield conn


# -- which writes make which rows ----------------------------------------------------------------


def test_track_insert_update_delete_write_rows_in_the_same_transaction(
    conn: psycopg.Connection[dict[str, Any]], db_url: str
) -> None:
    owner = add_user(conn)
    conn.commit()
    start = last_id(conn)
    track = add_track(conn, owner)
    # In the writing transaction already, and nowhere else until it commits.
    assert outbox_rows(conn, start) == [(track, 1, "upsert")]
    with connect(db_url) as other:
        assert outbox_rows(other, start) == []
    conn.commit()
    conn.execute("UPDATE tracks SET title = 'New title' WHERE id = %s", (track,))
    conn.execute("UPDATE tracks SET title = 'New title' WHERE id = %s", (track,))  # no change
    conn.commit()
    conn.execute("DELETE FROM tracks WHERE id = %s", (track,))
    conn.commit()
    assert outbox_rows(conn, start) == [
        (track, 1, "upsert"),
        (track, 2, "upsert"),
        (track, 3, "delete"),
    ]
    # The version of a deleted track is kept: its deletion is indexed with it.
    assert version_of(conn, track) == 3


def test_track_shares_create_attach_change_and_revoke(
    conn: psycopg.Connection[dict[str, Any]],
) -> None:
    owner, grantee, later = add_user(conn), add_user(conn), add_user(conn)
    track = add_track(conn, owner)
    conn.commit()
    start = last_id(conn)
    share = add_share(conn, owner, track=track, grantee=grantee, permission="view")
    pending = add_share(conn, owner, track=track, email="later@example.com")
    conn.commit()
    # A pending share shows the track to no one yet: no row.
    assert outbox_rows(conn, start) == [(track, 2, "upsert")]
    conn.execute("UPDATE shares SET grantee_id = %s WHERE id = %s", (later, pending))
    conn.execute("UPDATE shares SET permission = 'download' WHERE id = %s", (share,))
    conn.execute("UPDATE shares SET updated_at = now() WHERE id = %s", (share,))  # irrelevant
    conn.execute("UPDATE shares SET revoked_at = now() WHERE id = %s", (share,))
    conn.execute("DELETE FROM shares WHERE id = %s", (share,))  # already revoked: nothing
    conn.commit()
    assert outbox_rows(conn, start) == [
        (track, 2, "upsert"),
        (track, 3, "upsert"),  # attached
        (track, 4, "upsert"),  # permission
        (track, 5, "upsert"),  # revoked
    ]


def test_playlist_shares_touch_every_track_in_the_playlist(
    conn: psycopg.Connection[dict[str, Any]],
) -> None:
    owner, other, grantee = add_user(conn), add_user(conn), add_user(conn)
    mine = [add_track(conn, owner) for _ in range(3)]
    theirs = add_track(conn, other)
    lonely = add_track(conn, owner)
    playlist = add_playlist(conn, owner, [*mine, theirs, mine[0]])  # a track twice
    conn.commit()
    start = last_id(conn)
    share = add_share(conn, owner, playlist=playlist, grantee=grantee)
    conn.commit()
    touched = outbox_rows(conn, start)
    # One row per track (sorted by id), however often it is in the playlist.
    assert [t for t, _, _ in touched] == sorted([*mine, theirs])
    assert all(op == "upsert" for _, _, op in touched)
    assert lonely not in {t for t, _, _ in touched}

    start = last_id(conn)
    conn.execute("UPDATE shares SET permission = 'edit' WHERE id = %s", (share,))
    conn.commit()
    assert outbox_rows(conn, start) == []  # a playlist share's permission shows nothing more
    conn.execute("UPDATE shares SET revoked_at = now() WHERE id = %s", (share,))
    conn.commit()
    assert sorted(t for t, _, _ in outbox_rows(conn, start)) == sorted([*mine, theirs])


def test_playlist_entries_added_moved_and_removed(
    conn: psycopg.Connection[dict[str, Any]],
) -> None:
    owner = add_user(conn)
    first, second = add_track(conn, owner), add_track(conn, owner)
    playlist = add_playlist(conn, owner, [first])
    conn.commit()
    start = last_id(conn)
    entry = add_entry(conn, playlist, second)
    conn.commit()
    assert outbox_rows(conn, start) == [(second, 2, "upsert")]
    start = last_id(conn)
    # Reordering (positions only) changes no document.
    conn.execute(
        "UPDATE playlist_entries SET position = 1 - position WHERE playlist_id = %s", (playlist,)
    )
    conn.commit()
    assert outbox_rows(conn, start) == []
    conn.execute("DELETE FROM playlist_entries WHERE id = %s", (entry,))
    conn.commit()
    assert outbox_rows(conn, start) == [(second, 3, "upsert")]
    # Deleting the playlist removes its entries: the tracks' viewers may change.
    start = last_id(conn)
    conn.execute("DELETE FROM playlists WHERE id = %s", (playlist,))
    conn.commit()
    assert outbox_rows(conn, start) == [(first, 3, "upsert")]


def test_deleting_a_track_writes_one_delete_whatever_cascades(
    conn: psycopg.Connection[dict[str, Any]],
) -> None:
    owner, grantee = add_user(conn), add_user(conn)
    track = add_track(conn, owner)
    playlist = add_playlist(conn, owner, [track])
    add_share(conn, owner, track=track, grantee=grantee)
    add_share(conn, owner, playlist=playlist, grantee=grantee)
    conn.commit()
    start = last_id(conn)
    conn.execute("DELETE FROM tracks WHERE id = %s", (track,))
    conn.commit()
    [(track_id, version, operation)] = outbox_rows(conn, start)
    assert (track_id, operation) == (track, "delete")
    assert version == version_of(conn, track)


def test_a_rolled_back_transaction_leaves_no_rows_and_notifies_no_one(
    conn: psycopg.Connection[dict[str, Any]], db_url: str
) -> None:
    owner = add_user(conn)
    conn.commit()
    start = last_id(conn)
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        track = add_track(conn, owner)
        add_playlist(conn, owner, [track])
        assert outbox_rows(conn, start) != []
        conn.rollback()
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []
    assert outbox_rows(conn, start) == []
    assert version_of(conn, track) is None


def test_notify_arrives_at_commit_only(
    conn: psycopg.Connection[dict[str, Any]], db_url: str
) -> None:
    owner = add_user(conn)
    conn.commit()
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        for _ in range(3):
            add_track(conn, owner)
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []
        conn.commit()
        notes = list(listener.notifies(timeout=2, stop_after=1))
        assert [n.channel for n in notes] == [CHANNEL]
        # Identical notifications of one transaction are folded into one.
        assert list(listener.notifies(timeout=0.3)) == []


def test_versions_follow_commit_order_under_concurrency(
    pool: ConnectionPool[Any], db_url: str
) -> None:
    """Writers hold their transactions open for random times; a reader keeps reading the
    track's version and its live share count in one statement. Every reading must show exactly
    as many shares as versions were added: with a sequence drawn at write time, a reader could
    see version N while a transaction with a lower number had not yet committed."""
    with pool.connection() as conn:
        owner = add_user(conn)
        grantees = [add_user(conn) for _ in range(12)]
        track = add_track(conn, owner)
    base = 1
    stop = threading.Event()
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def reader() -> None:
        with psycopg.connect(db_url, autocommit=True) as c:
            while not stop.is_set():
                row = c.execute(
                    """SELECT v.version,
                              (SELECT count(*) FROM shares s
                                WHERE s.track_id = v.aggregate_id AND s.revoked_at IS NULL)
                         FROM cdc_versions v WHERE v.aggregate_id = %s""",
                    (track,),
                ).fetchone()
                assert row is not None
                seen.append((int(row[0]), int(row[1])))

    def writer(grantee: uuid.UUID, pause: float) -> None:
        try:
            with psycopg.connect(db_url) as c:
                add_share(c, owner, track=track, grantee=grantee)
                time.sleep(pause)
                c.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)

    rng = random.Random(7)
    read = threading.Thread(target=reader)
    read.start()
    writers = [threading.Thread(target=writer, args=(g, rng.uniform(0, 0.05))) for g in grantees]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    read.join()
    assert errors == []
    assert len({version for version, _ in seen}) > 2, "the reader saw too few versions"
    assert all(count == version - base for version, count in seen), seen
    with pool.connection() as conn:
        assert version_of(conn, track) == base + len(grantees)
        rows = [r for r in outbox_rows(conn) if r[0] == track]
    assert sorted(v for _, v, _ in rows) == list(range(1, base + len(grantees) + 1))


def test_a_second_writer_waits_for_the_first_to_commit(
    pool: ConnectionPool[Any], db_url: str
) -> None:
    with pool.connection() as conn:
        owner, a, b = add_user(conn), add_user(conn), add_user(conn)
        track = add_track(conn, owner)
    order: list[str] = []
    with connect(db_url) as first:
        add_share(first, owner, track=track, grantee=a)

        def second() -> None:
            with connect(db_url) as c:
                add_share(c, owner, track=track, grantee=b)
                order.append(f"second bumped to {version_of(c, track)}")
                c.commit()

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        assert order == []  # blocked on the track's version row
        order.append(f"first commits at {version_of(first, track)}")
        first.commit()
        thread.join(5)
    assert order == ["first commits at 2", "second bumped to 3"]


# -- publisher and sweeper -----------------------------------------------------------------------


class RecordingSink:
    def __init__(
        self, fail: set[uuid.UUID] | None = None, pause: float = 0.0, raise_after: bool = False
    ) -> None:
        self.sent: list[ChangeMessage] = []
        self.fail = fail or set()
        self.pause = pause
        self.raise_after = raise_after
        self.lock = threading.Lock()

    def send(self, messages: Sequence[ChangeMessage]) -> dict[int, str]:
        time.sleep(self.pause)
        with self.lock:
            self.sent += messages
        if self.raise_after:
            raise ConnectionError("gone after sending")
        return {m.outbox_id: "refused" for m in messages if m.aggregate_id in self.fail}


def unpublished(conn: Conn) -> list[int]:
    rows = conn.execute("SELECT id FROM outbox WHERE published_at IS NULL ORDER BY id")
    return [int(r["id"] if isinstance(r, dict) else r[0]) for r in rows.fetchall()]


def test_publisher_sends_and_marks_rows(pool: ConnectionPool[Any]) -> None:
    with pool.connection() as conn:
        owner = add_user(conn)
        tracks = [add_track(conn, owner) for _ in range(5)]
    sink = RecordingSink()
    assert publish_pending(pool, sink, limit=3) == 3
    assert publish_pending(pool, sink, limit=3) == 2
    assert publish_pending(pool, sink, limit=3) == 0
    assert [m.aggregate_id for m in sink.sent] == tracks
    assert [m.version for m in sink.sent] == [1] * 5
    with pool.connection() as conn:
        assert unpublished(conn) == []
        assert backlog(conn) == (0, None)


def test_rows_the_sink_refuses_stay_unpublished_with_a_backoff(pool: ConnectionPool[Any]) -> None:
    with pool.connection() as conn:
        owner = add_user(conn)
        good, bad = add_track(conn, owner), add_track(conn, owner)
    sink = RecordingSink(fail={bad})
    assert drain(pool, sink) == 1
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT attempts, last_error, retry_at > now() AS later FROM outbox "
            "WHERE aggregate_id = %s",
            (bad,),
        ).fetchone()
        assert row == {"attempts": 1, "last_error": "refused", "later": True}
    # Not taken again before its time, so it never blocks the rows behind it.
    assert publish_pending(pool, sink) == 0
    with pool.connection() as conn:
        conn.execute("UPDATE outbox SET retry_at = now() WHERE aggregate_id = %s", (bad,))
    sink.fail.clear()
    assert publish_pending(pool, sink) == 1
    assert [m.aggregate_id for m in sink.sent] == [good, bad, bad]


def test_two_publishers_share_the_rows_without_sending_one_twice(
    pool: ConnectionPool[Any],
) -> None:
    with pool.connection() as conn:
        owner = add_user(conn)
        for _ in range(200):
            add_track(conn, owner)
        expected = set(unpublished(conn))
    sinks = [RecordingSink(pause=0.01), RecordingSink(pause=0.01)]
    threads = [threading.Thread(target=drain, args=(pool, s, 20)) for s in sinks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = [m.outbox_id for s in sinks for m in s.sent]
    assert len(sent) == len(set(sent)) == len(expected)
    assert set(sent) == expected
    assert all(s.sent for s in sinks), "SKIP LOCKED should let both publishers work"


def test_a_crash_between_send_and_mark_is_repaired_by_the_sweeper(
    pool: ConnectionPool[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pool.connection() as conn:
        owner = add_user(conn)
        tracks = [add_track(conn, owner) for _ in range(3)]
    sink = RecordingSink()

    def crash(*_: object) -> None:
        raise SystemExit("power cut")

    monkeypatch.setattr(publisher_module, "mark_published", crash)
    with pytest.raises(SystemExit):
        publish_pending(pool, sink)
    monkeypatch.undo()
    assert [m.aggregate_id for m in sink.sent] == tracks  # sent, then the process died
    with pool.connection() as conn:
        assert len(unpublished(conn)) == 3
    # Young rows are the fast path's: the sweeper leaves them.
    assert sweep(pool, sink).republished == 0
    with pool.connection() as conn:
        conn.execute(
            "UPDATE outbox SET created_at = now() - interval '2 minutes' WHERE published_at IS NULL"
        )
    assert sweep(pool, sink).republished == 3
    assert [m.aggregate_id for m in sink.sent] == tracks + tracks
    with pool.connection() as conn:
        assert unpublished(conn) == []


def test_a_sink_that_fails_after_sending_leaves_rows_for_later(pool: ConnectionPool[Any]) -> None:
    with pool.connection() as conn:
        owner = add_user(conn)
        add_track(conn, owner)
    assert publish_pending(pool, RecordingSink(raise_after=True)) == 0
    with pool.connection() as conn:
        assert len(unpublished(conn)) == 1


def test_the_sweeper_purges_long_published_rows(pool: ConnectionPool[Any]) -> None:
    with pool.connection() as conn:
        owner = add_user(conn)
        for _ in range(5):
            add_track(conn, owner)
    drain(pool, RecordingSink())
    with pool.connection() as conn:
        conn.execute(
            "UPDATE outbox SET published_at = now() - interval '8 days' WHERE id IN "
            "(SELECT id FROM outbox ORDER BY id DESC LIMIT 4)"
        )
        before = conn.execute("SELECT count(*) AS n FROM outbox").fetchone()
    result = sweep(pool, RecordingSink(), retention=timedelta(days=7), purge_batch=3)
    assert result.purged >= 4
    with pool.connection() as conn:
        after = conn.execute("SELECT count(*) AS n FROM outbox").fetchone()
        old = conn.execute(
            "SELECT count(*) AS n FROM outbox WHERE published_at < now() - interval '7 days'"
        ).fetchone()
    assert before is not None and after is not None and old is not None
    assert after["n"] == before["n"] - result.purged
    assert old["n"] == 0


def test_the_publisher_loop_drains_on_notify_and_stops(
    pool: ConnectionPool[Any], db_url: str
) -> None:
    sink = RecordingSink()
    # A long poll interval: what arrives promptly was driven by the notification.
    publisher = Publisher(pool, sink, conninfo=db_url, poll_seconds=60, sweep_every=None)
    with publisher:
        assert publisher.listening.wait(5)
        with pool.connection() as conn:
            owner = add_user(conn)
            track = add_track(conn, owner)
        deadline = time.monotonic() + 5
        while not sink.sent and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [m.aggregate_id for m in sink.sent] == [track]
    assert not publisher.listening.is_set()
    with pool.connection() as conn:
        assert unpublished(conn) == []


def test_the_woken_publisher_waits_for_the_writing_transaction(
    pool: ConnectionPool[Any], db_url: str
) -> None:
    sink = RecordingSink()
    with connect(db_url) as writer:
        owner = add_user(writer)
        track = add_track(writer, owner)
        row = writer.execute("SELECT pg_current_xact_id()::text AS txid").fetchone()
        assert row is not None
        txid = row["txid"]
        result: dict[str, Any] = {}
        thread = threading.Thread(
            target=lambda: result.update(
                publish_after_commit(pool, sink, {"outbox_id": 1, "txid": txid}, 10)
            )
        )
        thread.start()
        time.sleep(0.3)
        assert result == {}
        writer.commit()
        thread.join(10)
    assert result == {"published": 1, "transaction": "committed"}
    assert [m.aggregate_id for m in sink.sent] == [track]
    assert wait_for_transaction(pool, txid, 0) == "committed"


# -- Aurora: the wake-up invoke, against stand-ins -------------------------------------------------

STAND_INS = """
CREATE SCHEMA aws_commons;
CREATE SCHEMA aws_lambda;
CREATE TYPE aws_commons._lambda_function_arn_1 AS (function_name text, region text);
CREATE FUNCTION aws_commons.create_lambda_function_arn(function_name text,
                                                       region text DEFAULT NULL)
RETURNS aws_commons._lambda_function_arn_1 LANGUAGE sql
AS $$ SELECT ROW(function_name, region)::aws_commons._lambda_function_arn_1 $$;
CREATE TABLE aws_lambda.recorded_calls (
    id serial PRIMARY KEY, function_name text, payload json, invocation_type text);
CREATE FUNCTION aws_lambda.invoke(
    IN function_name aws_commons._lambda_function_arn_1,
    IN payload json,
    IN invocation_type text DEFAULT 'RequestResponse',
    IN log_type text DEFAULT 'None',
    IN context json DEFAULT NULL,
    IN qualifier varchar(128) DEFAULT NULL,
    OUT status_code int, OUT payload json, OUT executed_version text, OUT log_result text)
LANGUAGE sql AS $$
    INSERT INTO aws_lambda.recorded_calls (function_name, payload, invocation_type)
    VALUES (($1).function_name, $2, $3);
    SELECT 202, NULL::json, NULL::text, NULL::text;
$$;
"""
PUBLISHER_ARN = "arn:aws:lambda:us-east-1:123456789012:function:musicsync-cdc-publisher"


@pytest.fixture
def aurora_url(server_url: str) -> Iterator[str]:
    url = fresh_database(server_url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(STAND_INS)
    try:
        yield url
    finally:
        drop_database(server_url, url)


def recorded_calls(conn: Conn) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT function_name, payload, invocation_type FROM aws_lambda.recorded_calls "
            "ORDER BY id"
        ).fetchall()


def test_on_aurora_outbox_inserts_wake_the_publisher_lambda(aurora_url: str) -> None:
    with connect(aurora_url) as conn:
        conn.execute("SELECT cdc_enable_lambda_invoke(%s)", (PUBLISHER_ARN,))
        conn.commit()
        owner = add_user(conn)
        track = add_track(conn, owner)
        txid = conn.execute("SELECT pg_current_xact_id()::text AS t").fetchone()
        conn.commit()
        [call] = recorded_calls(conn)
        [outbox] = conn.execute("SELECT id FROM outbox WHERE aggregate_id = %s", (track,))
        assert call["function_name"] == PUBLISHER_ARN
        assert call["invocation_type"] == "Event"
        assert txid is not None
        assert call["payload"] == {"outbox_id": outbox["id"], "txid": txid["t"]}

        # One invoke per statement, however many rows it wrote.
        playlist = add_playlist(conn, owner, [])
        for _ in range(3):
            add_entry(conn, playlist, add_track(conn, owner))
        conn.commit()
        before = len(recorded_calls(conn))
        add_share(conn, owner, playlist=playlist, grantee=add_user(conn))
        conn.commit()
        calls = recorded_calls(conn)
        assert len(calls) == before + 1
        assert json.dumps(calls[-1]["payload"]).count("outbox_id") == 1

        # Turned off: no invoke; the sweeper alone publishes.
        conn.execute("SELECT cdc_disable_lambda_invoke()")
        add_track(conn, owner)
        conn.commit()
        assert len(recorded_calls(conn)) == before + 1


def test_a_failing_invoke_never_fails_the_write(aurora_url: str) -> None:
    with connect(aurora_url) as conn:
        # The real signature names IN and OUT "payload" alike, which only SQL functions allow.
        conn.execute(
            """CREATE FUNCTION aws_lambda.throttled() RETURNS int LANGUAGE plpgsql
               AS $$ BEGIN RAISE EXCEPTION 'Lambda throttled'; END $$"""
        )
        conn.execute(
            """CREATE OR REPLACE FUNCTION aws_lambda.invoke(
                   IN function_name aws_commons._lambda_function_arn_1, IN payload json,
                   IN invocation_type text DEFAULT 'RequestResponse',
                   IN log_type text DEFAULT 'None', IN context json DEFAULT NULL,
                   IN qualifier varchar(128) DEFAULT NULL,
                   OUT status_code int, OUT payload json, OUT executed_version text,
                   OUT log_result text)
               LANGUAGE sql AS $$ SELECT aws_lambda.throttled(), NULL::json, NULL, NULL $$"""
        )
        conn.execute("SELECT cdc_enable_lambda_invoke(%s)", (PUBLISHER_ARN,))
        conn.commit()
        owner = add_user(conn)
        track = add_track(conn, owner)
        conn.commit()
        assert outbox_rows(conn) == [(track, 1, "upsert")]


def test_without_an_arn_nothing_is_invoked(aurora_url: str) -> None:
    with connect(aurora_url) as conn:
        conn.execute("SELECT cdc_enable_lambda_invoke()")
        conn.commit()
        add_track(conn, add_user(conn))
        conn.commit()
        assert recorded_calls(conn) == []
        # The session setting names it too (as a deployment may, per database or role).
        conn.execute("SELECT set_config('musicsync.publisher_arn', %s, false)", (PUBLISHER_ARN,))
        add_track(conn, add_user(conn))
        conn.commit()
        assert [c["function_name"] for c in recorded_calls(conn)] == [PUBLISHER_ARN]
