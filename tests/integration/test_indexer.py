"""The indexer: documents and who may see them, read from the database, written to the index
with their versions; stale, duplicate and reordered messages; deletions; the local path.

The index here is ``RecordingIndex``, a small implementation of the port's write contract
(external versioning). The adapters' own tests hold them to the same contract.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from ingest.cdc.outbox import ChangeMessage
from ingest.cdc.publisher import drain
from ingest.cdc.sweeper import sweep
from ingest.indexer.core import index_changes
from ingest.indexer.documents import all_documents, load_documents
from ingest.indexer.local import IndexingSink, start_local_indexer
from services.core import authz
from services.core.search.model import Change, Delete, TrackDocument
from tests.support.cdc import (
    Index,
    RecordingIndex,
    add_entry,
    add_playlist,
    add_share,
    add_track,
    add_user,
    assert_index_matches_database,
    make_index,
    own_database,
    pool_of,
    visible,
)

pytestmark = pytest.mark.integration


class FlakyIndex:
    """An index whose next ``fail_next`` writes fail."""

    def __init__(self, inner: Index) -> None:
        self.inner = inner
        self.fail_next = 0

    def write(self, changes: Sequence[Change]) -> int:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("index unavailable")
        return self.inner.write(changes)


@pytest.fixture(scope="module")
def db_url(server_url: str) -> Iterator[str]:
    with own_database(server_url) as url:
        yield url


@pytest.fixture(scope="module")
def pool(db_url: str) -> Iterator[ConnectionPool[Any]]:
    with pool_of(db_url, max_size=6) as pool:
        yield pool


@pytest.fixture
def index() -> RecordingIndex:
    return RecordingIndex()


def last_id(pool: ConnectionPool[Any]) -> int:
    with pool.connection() as conn:
        row = conn.execute("SELECT COALESCE(max(id), 0) AS n FROM outbox").fetchone()
    assert row is not None
    return int(row["n"])


def messages_since(pool: ConnectionPool[Any], after: int) -> list[ChangeMessage]:
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT id, aggregate_type, aggregate_id, version, operation FROM outbox "
            "WHERE id > %s ORDER BY id",
            (after,),
        ).fetchall()
    return [ChangeMessage.from_row(row) for row in rows]


class World:
    """Writes through the pool, and indexes what they changed."""

    def __init__(self, pool: ConnectionPool[Any], index: RecordingIndex) -> None:
        self.pool = pool
        self.index = index
        self.mark = last_id(pool)

    def sql(self, query: str, params: Any = None) -> None:
        with self.pool.connection() as conn:
            conn.execute(query, params)

    def conn(self) -> Any:
        return self.pool.connection()

    def index_new(self) -> list[ChangeMessage]:
        messages = messages_since(self.pool, self.mark)
        self.mark = last_id(self.pool)
        result = index_changes(self.pool, self.index, messages)
        assert result.failed == {}
        return messages

    def viewers(self, track: uuid.UUID) -> frozenset[uuid.UUID]:
        return self.index.docs[track].viewers


@pytest.fixture
def world(pool: ConnectionPool[Any], index: RecordingIndex) -> World:
    return World(pool, index)


def test_a_document_carries_the_tracks_fields_and_version(
    world: World, pool: ConnectionPool[Any]
) -> None:
    with world.conn() as conn:
        owner = add_user(conn)
        track = add_track(conn, owner, "Yesterday")
        conn.execute(
            """UPDATE tracks SET artists = '{The Beatles}', album = 'Help!', year = 1965,
                      genre = 'pop', mood = 'wistful', tags = '{acoustic,strings}',
                      musical_key = 'F', instrumental = false, bpm = 97.5, duration_ms = 125000
                WHERE id = %s""",
            (track,),
        )
    missing = uuid.uuid4()
    with pool.connection() as conn:
        found = load_documents(conn, [track, missing, track])
        row = conn.execute("SELECT created_at FROM tracks WHERE id = %s", (track,)).fetchone()
    assert row is not None
    assert found == {
        track: (
            TrackDocument(
                id=track,
                owner_id=owner,
                viewers=frozenset({owner}),
                title="Yesterday",
                artists=("The Beatles",),
                album="Help!",
                genre="pop",
                mood="wistful",
                tags=("acoustic", "strings"),
                key="F",
                instrumental=False,
                bpm=97.5,
                duration_ms=125000,
                year=1965,
                created_at=row["created_at"],
            ),
            2,
        ),
        missing: (None, 0),
    }


def levels_agree(pool: ConnectionPool[Any], track: uuid.UUID, users: Sequence[uuid.UUID]) -> None:
    """The document's viewers are exactly the users authz lets see the track."""
    with pool.connection() as conn:
        [(doc, _)] = load_documents(conn, [track]).values()
        assert doc is not None
        visible = {
            user for user in users if authz.levels(conn, user, "track", [track]).get(track, 0) > 0
        }
    assert doc.viewers == visible


def test_viewers_are_the_owner_grantees_and_playlist_grantees(world: World) -> None:
    with world.conn() as conn:
        owner, direct, revoked, via_own, curator, via_curator, stranger = (
            add_user(conn) for _ in range(7)
        )
        track = add_track(conn, owner)
        add_share(conn, owner, track=track, grantee=direct, permission="view")
        gone = add_share(conn, owner, track=track, grantee=revoked)
        add_share(conn, owner, track=track, email="nobody-yet@example.com")
        own_playlist = add_playlist(conn, owner, [track])
        own_share = add_share(conn, owner, playlist=own_playlist, grantee=via_own)
        # A playlist of someone else holding the track: passes it on only while its owner may
        # stream it.
        other_playlist = add_playlist(conn, curator, [])
        add_entry(conn, other_playlist, track)
        add_share(conn, curator, playlist=other_playlist, grantee=via_curator)
    world.sql("UPDATE shares SET revoked_at = now() WHERE id = %s", (gone,))
    users = [owner, direct, revoked, via_own, curator, via_curator, stranger]
    world.index_new()
    assert world.viewers(track) == {owner, direct, via_own}
    levels_agree(world.pool, track, users)

    with world.conn() as conn:
        curator_share = add_share(conn, owner, track=track, grantee=curator, permission="view")
    world.index_new()
    assert world.viewers(track) == {owner, direct, via_own, curator}  # view: not passed on
    world.sql("UPDATE shares SET permission = 'stream' WHERE id = %s", (curator_share,))
    world.index_new()
    assert world.viewers(track) == {owner, direct, via_own, curator, via_curator}
    levels_agree(world.pool, track, users)

    world.sql("UPDATE shares SET revoked_at = now() WHERE id = %s", (curator_share,))
    world.sql("UPDATE shares SET revoked_at = now() WHERE id = %s", (own_share,))
    world.index_new()
    assert world.viewers(track) == {owner, direct}
    levels_agree(world.pool, track, users)


def test_removing_the_track_from_a_shared_playlist_hides_it(world: World) -> None:
    with world.conn() as conn:
        owner, grantee = add_user(conn), add_user(conn)
        track = add_track(conn, owner)
        playlist = add_playlist(conn, owner, [track])
        add_share(conn, owner, playlist=playlist, grantee=grantee)
    world.index_new()
    assert world.viewers(track) == {owner, grantee}
    world.sql("DELETE FROM playlist_entries WHERE playlist_id = %s", (playlist,))
    world.index_new()
    assert world.viewers(track) == {owner}


def test_stale_duplicate_and_reordered_messages_are_harmless(
    world: World, index: RecordingIndex
) -> None:
    with world.conn() as conn:
        owner = add_user(conn)
        track = add_track(conn, owner, "Old title")
    [created] = messages_since(world.pool, world.mark)
    world.sql("UPDATE tracks SET title = 'New title' WHERE id = %s", (track,))
    messages = messages_since(world.pool, world.mark)
    world.mark = last_id(world.pool)
    assert [m.version for m in messages] == [1, 2]

    # The newest first, then the old one, then both again, reversed and duplicated.
    assert index_changes(world.pool, index, [messages[1]]).applied == 1
    assert index.docs[track].title == "New title"
    assert index.versions[track] == 2
    stale = index_changes(world.pool, index, [created])
    assert (stale.applied, stale.failed) == (0, {})
    again = index_changes(world.pool, index, [messages[1], created, messages[1], created])
    assert (again.applied, again.failed) == (0, {})
    # One write of one change per track, whatever the number of its messages.
    assert [len(w) for w in index.writes] == [1, 1, 1]
    assert index.docs[track].title == "New title"
    # Even an old message reads the current state: the index converges without the newest.
    fresh = RecordingIndex()
    index_changes(world.pool, fresh, [created])
    assert (fresh.docs[track].title, fresh.versions[track]) == ("New title", 2)


def test_a_deleted_track_is_deleted_and_stays_deleted(world: World, index: RecordingIndex) -> None:
    with world.conn() as conn:
        owner = add_user(conn)
        track = add_track(conn, owner)
    [created] = world.index_new()
    assert track in index.docs
    world.sql("DELETE FROM tracks WHERE id = %s", (track,))
    [deleted] = world.index_new()
    assert (deleted.operation, deleted.version) == ("delete", 2)
    assert track not in index.docs
    assert index.writes[-1] == [Delete(track, 2)]
    # A late upsert message does not bring it back.
    result = index_changes(world.pool, index, [created])
    assert (result.applied, result.failed) == (0, {})
    assert track not in index.docs
    assert index.versions[track] == 2


def test_a_message_the_database_has_not_reached_fails_alone(
    world: World, index: RecordingIndex
) -> None:
    with world.conn() as conn:
        owner = add_user(conn)
        behind, fine = add_track(conn, owner), add_track(conn, owner)
    ahead = ChangeMessage(0, "track", behind, 7, "upsert")  # a lagging replica would do this
    never = ChangeMessage(0, "track", uuid.uuid4(), 1, "upsert")
    odd = ChangeMessage(0, "playlist", fine, 1, "upsert")
    ok = ChangeMessage(0, "track", fine, 1, "upsert")
    result = index_changes(world.pool, index, [ahead, ok, never, odd])
    assert set(result.failed) == {0, 2, 3}
    assert "version 1 of 7" in result.failed[0]
    assert set(index.docs) == {fine}


def test_an_index_failure_fails_every_message_written(world: World) -> None:
    with world.conn() as conn:
        owner = add_user(conn)
        add_track(conn, owner)
        add_track(conn, owner)
    messages = messages_since(world.pool, world.mark)
    world.mark = last_id(world.pool)
    index = FlakyIndex(RecordingIndex())
    index.fail_next = 1
    result = index_changes(world.pool, index, messages)
    assert set(result.failed) == {0, 1}
    assert "index unavailable" in result.failed[0]


# -- the local path: the publisher feeding the indexer in process --------------------------------


@pytest.fixture
def clean_slate(pool: ConnectionPool[Any]) -> None:
    """No tracks, and nothing of the earlier tests waiting in the outbox."""
    with pool.connection() as conn:
        conn.execute("DELETE FROM tracks")
        conn.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")


@pytest.fixture(params=["recording", "tantivy"])
def any_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Index]:
    index = make_index(request.param, tmp_path)
    try:
        yield index
    finally:
        index.close()


def converge(pool: ConnectionPool[Any], index: Index, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            assert_index_matches_database(pool, index)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@pytest.mark.usefixtures("clean_slate")
def test_the_local_indexer_keeps_the_index_in_step(
    pool: ConnectionPool[Any], db_url: str, any_index: Index
) -> None:
    publisher = start_local_indexer(pool, any_index, conninfo=db_url, poll_seconds=30)
    try:
        with pool.connection() as conn:
            owner, grantee = add_user(conn), add_user(conn)
            tracks = [add_track(conn, owner, f"Song {i}") for i in range(5)]
        with pool.connection() as conn:
            playlist = add_playlist(conn, owner, tracks[:3])
            add_share(conn, owner, playlist=playlist, grantee=grantee)
            conn.execute("UPDATE tracks SET title = 'Renamed' WHERE id = %s", (tracks[0],))
            conn.execute("DELETE FROM tracks WHERE id = %s", (tracks[4],))
        converge(pool, any_index)
        seen_by_owner = visible(any_index, owner)
        assert seen_by_owner[tracks[0]].title == "Renamed"
        assert tracks[4] not in seen_by_owner
        assert set(visible(any_index, grantee)) == set(tracks[:3])
    finally:
        publisher.stop()


@pytest.mark.usefixtures("clean_slate")
def test_nothing_is_lost_locally_when_indexing_fails_or_crashes(
    pool: ConnectionPool[Any], monkeypatch: pytest.MonkeyPatch, any_index: Index
) -> None:
    index = FlakyIndex(any_index)
    sink = IndexingSink(pool, index)
    with pool.connection() as conn:
        owner = add_user(conn)
        add_track(conn, owner)
        add_track(conn, owner)

    # The index is down: nothing is marked published; the rows wait out a backoff.
    index.fail_next = 1
    assert drain(pool, sink) == 0
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT count(*) AS n, min(attempts) AS attempts FROM outbox WHERE published_at IS NULL"
        ).fetchone()
        assert row == {"n": 2, "attempts": 1}
        conn.execute("UPDATE outbox SET retry_at = now() WHERE published_at IS NULL")
    assert drain(pool, sink) == 2
    assert_index_matches_database(pool, any_index)

    # The process dies after indexing and before marking: the sweeper sends them again.
    with pool.connection() as conn:
        conn.execute("UPDATE tracks SET title = 'Changed'")

    def crash(*_: object) -> None:
        raise SystemExit("power cut")

    monkeypatch.setattr("ingest.cdc.publisher.mark_published", crash)
    with pytest.raises(SystemExit):
        drain(pool, sink)
    monkeypatch.undo()
    with pool.connection() as conn:
        conn.execute(
            "UPDATE outbox SET created_at = now() - interval '5 minutes' WHERE published_at IS NULL"
        )
    assert sweep(pool, sink).republished == 2
    assert_index_matches_database(pool, any_index)
    assert {d.title for d in visible(any_index, owner).values()} == {"Changed"}


def test_all_documents_reads_one_snapshot_in_batches(pool: ConnectionPool[Any]) -> None:
    with pool.connection() as conn:
        owner = add_user(conn)
        for i in range(7):
            add_track(conn, owner, f"Batch {i}")
        ids = [r["id"] for r in conn.execute("SELECT id FROM tracks").fetchall()]
    batches = list(all_documents(pool, batch_size=3))
    assert all(len(b) <= 3 for b in batches)
    with pool.connection() as conn:
        expected = load_documents(conn, ids)
    assert {doc.id: (doc, v) for b in batches for doc, v in b} == expected


def test_psycopg_is_in_read_committed_for_writers(db_url: str) -> None:
    """The triggers' playlist locking relies on writers seeing each statement's own snapshot."""
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SHOW default_transaction_isolation").fetchone()
    assert row == ("read committed",)
