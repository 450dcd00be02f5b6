"""``TRACK_VIEWERS_SQL`` (who a search document names as viewers) agrees exactly with
``TRACK_LEVEL_SQL`` > 0 (who the API lets see a track), for every user and track of randomized
worlds: owners, direct shares of every permission, playlists of one's own and of others' tracks,
playlist shares, revoked and pending shares, playlists whose owner may or may not stream.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from services.core import authz

pytestmark = pytest.mark.integration

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TRACK_PERMISSIONS = ("view", "stream", "download")
PLAYLIST_PERMISSIONS = ("view", "edit")


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """A transaction rolled back at the end: the world leaves nothing behind."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        try:
            yield conn
        finally:
            conn.rollback()


def build_world(
    conn: psycopg.Connection[Any], rng: random.Random
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    users = [uuid.uuid4() for _ in range(rng.randint(5, 9))]
    for i, user in enumerate(users):
        conn.execute(
            "INSERT INTO users (id, issuer, subject, email, email_verified, created_at, "
            "updated_at) VALUES (%s, 'test', %s, %s, true, %s, %s)",
            (user, str(user), f"u{i}-{user.hex[:6]}@example.com", NOW, NOW),
        )
    tracks: list[uuid.UUID] = []
    owner_of: dict[uuid.UUID, uuid.UUID] = {}
    for _ in range(rng.randint(10, 25)):
        track, owner = uuid.uuid4(), rng.choice(users)
        conn.execute(
            """INSERT INTO tracks (id, owner_id, object_key, original_filename, title,
                                   duration_ms, container, codec, content_type,
                                   file_extension, size_bytes, sha256, created_at, updated_at)
               VALUES (%s, %s, %s, 'a.wav', 'T', 1000, 'wav', 'pcm', 'audio/wav', 'wav', 1,
                       %s, %s, %s)""",
            (track, owner, f"o/{track}", track.hex, NOW, NOW),
        )
        tracks.append(track)
        owner_of[track] = owner

    def share(
        object_type: str,
        object_id: uuid.UUID,
        owner: uuid.UUID,
        permission: str,
        grantee: uuid.UUID | None = None,
    ) -> None:
        # Live, revoked, or pending (by address); several per grantee may exist over time.
        kind = rng.choices(["live", "revoked", "pending"], weights=[6, 2, 1])[0]
        grantee = grantee or rng.choice(users)
        conn.execute(
            """INSERT INTO shares (id, owner_id, object_type, track_id, playlist_id,
                                   grantee_id, grantee_email, permission, created_at,
                                   updated_at, revoked_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT DO NOTHING""",
            (
                uuid.uuid4(),
                owner,
                object_type,
                object_id if object_type == "track" else None,
                object_id if object_type == "playlist" else None,
                None if kind == "pending" else grantee,
                f"pending-{uuid.uuid4().hex[:8]}@example.com" if kind == "pending" else None,
                permission,
                NOW,
                NOW,
                NOW + timedelta(minutes=1) if kind == "revoked" else None,
            ),
        )

    for track in rng.sample(tracks, k=len(tracks) // 2):
        for _ in range(rng.randint(1, 3)):
            share("track", track, owner_of[track], rng.choice(TRACK_PERMISSIONS))
    for _ in range(rng.randint(2, 6)):
        playlist, owner = uuid.uuid4(), rng.choice(users)
        conn.execute(
            "INSERT INTO playlists (id, owner_id, title, created_at, updated_at) "
            "VALUES (%s, %s, 'P', %s, %s)",
            (playlist, owner, NOW, NOW),
        )
        # Own tracks and others' (whether the owner may stream those depends on the shares).
        for position, track in enumerate(rng.sample(tracks, k=rng.randint(0, 8))):
            conn.execute(
                "INSERT INTO playlist_entries (id, playlist_id, track_id, position, added_at) "
                "VALUES (%s, %s, %s, %s, %s)",
                (uuid.uuid4(), playlist, track, position, NOW),
            )
            # Often the track's owner shares it with the playlist's owner: whether the
            # playlist passes it on then depends on that share's permission and state.
            if owner_of[track] != owner and rng.random() < 0.6:
                share("track", track, owner_of[track], rng.choice(TRACK_PERMISSIONS), owner)
        for _ in range(rng.randint(0, 3)):
            share("playlist", playlist, owner, rng.choice(PLAYLIST_PERMISSIONS))
    return users, tracks


@pytest.mark.parametrize("seed", range(12))
def test_viewers_agree_with_levels_for_every_user_and_track(
    conn: psycopg.Connection[dict[str, Any]], seed: int
) -> None:
    users, tracks = build_world(conn, random.Random(seed))
    viewers = {
        row["id"]: set(row["viewers"])
        for row in conn.execute(
            f"SELECT t.id, {authz.TRACK_VIEWERS_SQL} AS viewers FROM tracks t WHERE t.id = ANY(%s)",
            (tracks,),
        ).fetchall()
    }
    checked = 0
    for user in users:
        levels = authz.levels(conn, user, "track", tracks)
        for track in tracks:
            assert (levels.get(track, 0) > 0) == (user in viewers[track]), (seed, user, track)
            checked += 1
    assert checked == len(users) * len(tracks)
    # The worlds are not trivial: some tracks are seen by more than their owner.
    assert any(len(v) > 1 for v in viewers.values())
