"""What the change-capture tests share: a migrated database of their own, a small world
written in SQL (users, tracks, playlists, shares), and an in-memory index holding the port's
write contract, with the checks that an index agrees with the database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import psycopg
from psycopg_pool import ConnectionPool

from ingest.indexer.documents import all_documents
from services.core import migrate
from services.core.db import open_pool
from services.core.search.model import (
    Change,
    Hit,
    SearchQuery,
    SearchResult,
    TrackDocument,
    Upsert,
)
from tests.conftest import with_database

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


# -- a database of our own ---------------------------------------------------------------------


def fresh_database(server_url: str) -> str:
    name = f"musicsync_cdc_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    migrate.upgrade(url)
    return url


def drop_database(server_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def own_database(server_url: str) -> Iterator[str]:
    """A fresh migrated database on the server, dropped on exit."""
    url = fresh_database(server_url)
    try:
        yield url
    finally:
        drop_database(server_url, url)


@contextmanager
def pool_of(url: str, *, max_size: int) -> Iterator[ConnectionPool[Any]]:
    """An open pool on ``url``, closed on exit."""
    pool = open_pool(url, max_size=max_size)
    try:
        yield pool
    finally:
        pool.close()


# -- a small world, in SQL ---------------------------------------------------------------------

Conn = psycopg.Connection[Any]


def add_user(conn: Conn, email: str | None = None) -> uuid.UUID:
    user_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO users (id, issuer, subject, email, email_verified, created_at, updated_at) "
        "VALUES (%s, 'test', %s, %s, true, %s, %s)",
        (user_id, str(user_id), email, NOW, NOW),
    )
    return user_id


def add_track(conn: Conn, owner: uuid.UUID, title: str = "A song") -> uuid.UUID:
    track_id = uuid.uuid4()
    conn.execute(
        """INSERT INTO tracks (id, owner_id, object_key, original_filename, title, duration_ms,
                               container, codec, content_type, file_extension, size_bytes,
                               sha256, created_at, updated_at)
           VALUES (%s, %s, %s, 'a.wav', %s, 1000, 'wav', 'pcm', 'audio/wav', 'wav', 10, %s,
                   %s, %s)""",
        (track_id, owner, f"objects/{track_id}", title, track_id.hex, NOW, NOW),
    )
    return track_id


def add_playlist(conn: Conn, owner: uuid.UUID, tracks: Sequence[uuid.UUID] = ()) -> uuid.UUID:
    playlist_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO playlists (id, owner_id, title, created_at, updated_at) "
        "VALUES (%s, %s, 'Picks', %s, %s)",
        (playlist_id, owner, NOW, NOW),
    )
    for track_id in tracks:
        add_entry(conn, playlist_id, track_id)
    return playlist_id


def add_entry(conn: Conn, playlist_id: uuid.UUID, track_id: uuid.UUID) -> uuid.UUID:
    entry_id = uuid.uuid4()
    conn.execute(
        """INSERT INTO playlist_entries (id, playlist_id, track_id, position, added_at)
           VALUES (%s, %s, %s,
                   (SELECT count(*) FROM playlist_entries WHERE playlist_id = %s), %s)""",
        (entry_id, playlist_id, track_id, playlist_id, NOW),
    )
    return entry_id


def add_share(
    conn: Conn,
    owner: uuid.UUID,
    *,
    track: uuid.UUID | None = None,
    playlist: uuid.UUID | None = None,
    grantee: uuid.UUID | None = None,
    email: str | None = None,
    permission: str | None = None,
) -> uuid.UUID:
    share_id = uuid.uuid4()
    object_type = "track" if track is not None else "playlist"
    conn.execute(
        """INSERT INTO shares (id, owner_id, object_type, track_id, playlist_id, grantee_id,
                               grantee_email, permission, created_at, updated_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            share_id,
            owner,
            object_type,
            track,
            playlist,
            grantee,
            email,
            permission or ("stream" if track is not None else "view"),
            NOW,
            NOW,
        ),
    )
    return share_id


# -- an index in memory, and checks of any index -----------------------------------------------


class RecordingIndex:
    """The port's write contract in memory: a change at or below the version held is skipped;
    a deletion's version is remembered. Records every write. Searches return every document
    the viewer may see (no text, filters or pages)."""

    def __init__(self) -> None:
        self.docs: dict[uuid.UUID, TrackDocument] = {}
        self.versions: dict[uuid.UUID, int] = {}
        self.writes: list[list[Change]] = []

    def write(self, changes: Sequence[Change]) -> int:
        self.writes.append(list(changes))
        applied = 0
        for change in changes:
            key = change.document.id if isinstance(change, Upsert) else change.id
            if self.versions.get(key, -1) >= change.version:
                continue
            self.versions[key] = change.version
            if isinstance(change, Upsert):
                self.docs[key] = change.document
            else:
                self.docs.pop(key, None)
            applied += 1
        return applied

    def version(self, track_id: uuid.UUID) -> int | None:
        return self.versions.get(track_id)

    def search(self, query: SearchQuery) -> SearchResult:
        hits = [Hit(d, 1.0) for d in self.docs.values() if query.viewer in d.viewers]
        return SearchResult(hits=hits, total=len(hits), facets={}, next_cursor=None)

    def close(self) -> None:
        pass


class Index(Protocol):
    """What these tests use of an index: ``RecordingIndex`` or a real adapter."""

    def write(self, changes: Sequence[Change]) -> int: ...
    def version(self, track_id: uuid.UUID) -> int | None: ...
    def search(self, query: SearchQuery) -> SearchResult: ...
    def close(self) -> None: ...


def make_index(kind: str, path: Path) -> Index:
    if kind == "tantivy":
        from services.core.search.tantivy_index import TantivyIndex

        return TantivyIndex(path / "index")
    return RecordingIndex()


def visible(index: Index, viewer: uuid.UUID) -> dict[uuid.UUID, TrackDocument]:
    """Every document the index lets ``viewer`` find, over all pages."""
    found: dict[uuid.UUID, TrackDocument] = {}
    cursor = None
    while True:
        page = index.search(SearchQuery(viewer=viewer, sort="newest", limit=500, cursor=cursor))
        found.update({hit.document.id: hit.document for hit in page.hits})
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def assert_index_matches_database(pool: ConnectionPool[Any], index: Index) -> None:
    """Through the port: every track at its database version, every user finding exactly the
    documents the database lets them see, deleted tracks at their last version."""
    expected = {doc.id: (doc, version) for batch in all_documents(pool) for doc, version in batch}
    with pool.connection() as conn:
        users = [r["id"] for r in conn.execute("SELECT id FROM users").fetchall()]
        gone = conn.execute(
            "SELECT v.aggregate_id, v.version FROM cdc_versions v "
            "WHERE NOT EXISTS (SELECT 1 FROM tracks t WHERE t.id = v.aggregate_id)"
        ).fetchall()
    assert {k: index.version(k) for k in expected} == {k: v for k, (_, v) in expected.items()}
    for user in users:
        assert visible(index, user) == {
            k: doc for k, (doc, _) in expected.items() if user in doc.viewers
        }
    for row in gone:
        assert index.version(row["aggregate_id"]) in (None, row["version"])
