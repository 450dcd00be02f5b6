"""SQL for pitches, their recipients, frozen track lists, interactions and feedback.

Who may touch a pitch is decided before these run: by ``services.core.authz`` for owners, by
the link's token for recipients.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from psycopg import Connection, sql

from ingest.events.envelope import UsageEvent

Row = dict[str, Any]

PITCH_COLUMNS = (
    "id, owner_id, playlist_id, title, message, allow_download, password_hash, expires_at, "
    "revoked_at, version, created_at, updated_at"
)
RECIPIENT_COLUMNS = "id, pitch_id, name, email, company, link_issued_at, revoked_at, created_at"


def playlist_track_ids(conn: Connection[Any], playlist_id: uuid.UUID) -> list[uuid.UUID]:
    """The playlist's tracks in order, each once (its first place)."""
    rows = conn.execute(
        "SELECT track_id FROM playlist_entries WHERE playlist_id = %s ORDER BY position, id",
        (playlist_id,),
    ).fetchall()
    return list(dict.fromkeys(row["track_id"] for row in rows))


def insert_pitch(conn: Connection[Any], values: Row) -> Row:
    row: Row | None = conn.execute(
        f"""INSERT INTO pitches (id, owner_id, playlist_id, title, message, allow_download,
                                password_hash, expires_at, created_at, updated_at)
           VALUES (%(id)s, %(owner_id)s, %(playlist_id)s, %(title)s, %(message)s,
                   %(allow_download)s, %(password_hash)s, %(expires_at)s, %(now)s, %(now)s)
           RETURNING {PITCH_COLUMNS}""",
        values,
    ).fetchone()
    assert row is not None
    return row


def insert_pitch_tracks(
    conn: Connection[Any], pitch_id: uuid.UUID, track_ids: Sequence[uuid.UUID]
) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO pitch_tracks (pitch_id, track_id, position) VALUES (%s, %s, %s)",
            [(pitch_id, track_id, position) for position, track_id in enumerate(track_ids)],
        )


def insert_recipients(conn: Connection[Any], rows: Sequence[Row]) -> None:
    """Many recipients in one COPY: the cost of a 200-recipient pitch is its hashing, not I/O."""
    columns = (
        "id",
        "pitch_id",
        "name",
        "email",
        "company",
        "token_hash",
        "link_issued_at",
        "created_at",
    )
    with (
        conn.cursor() as cur,
        cur.copy(
            sql.SQL("COPY pitch_recipients ({}) FROM STDIN").format(
                sql.SQL(", ").join(map(sql.Identifier, columns))
            )
        ) as copy,
    ):
        for row in rows:
            copy.write_row([row[c] for c in columns])


def get_pitch(conn: Connection[Any], pitch_id: uuid.UUID, *, lock: bool = False) -> Row | None:
    row: Row | None = conn.execute(
        f"SELECT {PITCH_COLUMNS} FROM pitches WHERE id = %s{' FOR UPDATE' if lock else ''}",
        (pitch_id,),
    ).fetchone()
    return row


def list_pitches(
    conn: Connection[Any],
    owner_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Row]:
    where = "p.owner_id = %(owner)s"
    params: dict[str, Any] = {"owner": owner_id, "limit": limit}
    if after is not None:
        where += " AND (p.created_at, p.id) < (%(after_at)s, %(after_id)s)"
        params["after_at"], params["after_id"] = after
    return conn.execute(
        f"""SELECT p.id, p.playlist_id, p.title, p.allow_download, p.password_hash IS NOT NULL
                   AS has_password, p.expires_at, p.revoked_at, p.created_at,
                   (SELECT count(*) FROM pitch_tracks t WHERE t.pitch_id = p.id) AS track_count,
                   (SELECT count(*) FROM pitch_recipients r
                     WHERE r.pitch_id = p.id AND r.revoked_at IS NULL) AS recipient_count,
                   (SELECT count(DISTINCT i.recipient_id) FROM pitch_interactions i
                     WHERE i.pitch_id = p.id AND i.event_type = 'pitch_opened') AS opened_count
            FROM pitches p WHERE {where}
            ORDER BY p.created_at DESC, p.id DESC LIMIT %(limit)s""",
        params,
    ).fetchall()


def update_pitch(conn: Connection[Any], pitch_id: uuid.UUID, changes: Row, at: datetime) -> Row:
    assignments = [
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in changes
    ]
    query = sql.SQL(
        "UPDATE pitches SET {}, version = version + 1, updated_at = %(at)s "
        "WHERE id = %(id)s RETURNING {}"
    ).format(sql.SQL(", ").join([*assignments]), sql.SQL(PITCH_COLUMNS))
    row: Row | None = conn.execute(query, {**changes, "at": at, "id": pitch_id}).fetchone()
    assert row is not None
    return row


def pitch_tracks(conn: Connection[Any], pitch_id: uuid.UUID) -> list[Row]:
    """The frozen track list, with each track's current metadata (deleted tracks are gone)."""
    return conn.execute(
        """SELECT t.id, pt.position, t.title, t.artists, t.album, t.duration_ms
           FROM pitch_tracks pt JOIN tracks t ON t.id = pt.track_id
           WHERE pt.pitch_id = %s ORDER BY pt.position""",
        (pitch_id,),
    ).fetchall()


def recipients(conn: Connection[Any], pitch_id: uuid.UUID) -> list[Row]:
    return conn.execute(
        f"SELECT {RECIPIENT_COLUMNS} FROM pitch_recipients WHERE pitch_id = %s "
        "ORDER BY created_at, id",
        (pitch_id,),
    ).fetchall()


def live_recipient_emails(conn: Connection[Any], pitch_id: uuid.UUID) -> set[str]:
    rows = conn.execute(
        "SELECT email FROM pitch_recipients WHERE pitch_id = %s AND revoked_at IS NULL",
        (pitch_id,),
    ).fetchall()
    return {row["email"] for row in rows}


def get_recipient(
    conn: Connection[Any], pitch_id: uuid.UUID, recipient_id: uuid.UUID
) -> Row | None:
    row: Row | None = conn.execute(
        f"SELECT {RECIPIENT_COLUMNS} FROM pitch_recipients WHERE id = %s AND pitch_id = %s "
        "FOR UPDATE",
        (recipient_id, pitch_id),
    ).fetchone()
    return row


def revoke_recipients(
    conn: Connection[Any], pitch_id: uuid.UUID, at: datetime, recipient_id: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """Revoke one recipient's link, or all live ones; the ids revoked."""
    query = (
        "UPDATE pitch_recipients SET revoked_at = %(at)s "
        "WHERE pitch_id = %(pitch)s AND revoked_at IS NULL"
    )
    if recipient_id is not None:
        query += " AND id = %(recipient)s"
    rows = conn.execute(
        query + " RETURNING id", {"at": at, "pitch": pitch_id, "recipient": recipient_id}
    ).fetchall()
    return [row["id"] for row in rows]


def replace_token(
    conn: Connection[Any], recipient_id: uuid.UUID, new_hash: bytes, at: datetime
) -> Row:
    row: Row | None = conn.execute(
        f"""UPDATE pitch_recipients SET token_hash = %s, link_issued_at = %s WHERE id = %s
            RETURNING {RECIPIENT_COLUMNS}""",
        (new_hash, at, recipient_id),
    ).fetchone()
    assert row is not None
    return row


# What the page shows of each track; the digest below covers exactly these and the feedback.
_PAGE_TRACK_COLUMNS = "t.id, pt.position, t.title, t.artists, t.album, t.duration_ms"

# A digest of everything ``page_tracks`` returns (for a link's row ``r``): it changes whenever
# they do. A row's text form is parenthesised and quotes its commas, so joined texts are
# unambiguous. Tracks and feedback are digested apart: one join fewer than the page's query.
_PAGE_DIGEST = f"""(SELECT coalesce(md5(string_agg(({_PAGE_TRACK_COLUMNS})::text, ','
                                               ORDER BY pt.position)), '')
                     FROM pitch_tracks pt JOIN tracks t ON t.id = pt.track_id
                     WHERE pt.pitch_id = r.pitch_id)
                   || ':' ||
                   (SELECT coalesce(md5(string_agg(f::text, ',' ORDER BY f.track_id)), '')
                     FROM pitch_feedback f WHERE f.recipient_id = r.id)"""


_LINK = """SELECT r.id AS recipient_id, r.name AS recipient_name, r.token_hash, p.id AS pitch_id,
                     p.title, p.message, p.allow_download, p.password_hash, p.expires_at,
                     u.name AS sender,
                     CASE WHEN r.revoked_at IS NOT NULL OR p.revoked_at IS NOT NULL THEN 'revoked'
                          WHEN p.expires_at <= %(now)s THEN 'expired'
                     END AS gone,
                     {digest} AS page_digest
              FROM pitch_recipients r
              JOIN pitches p ON p.id = r.pitch_id
              JOIN users u ON u.id = p.owner_id
              WHERE r.token_hash = %(hash)s"""
_LINK_ALONE = _LINK.format(digest="NULL")

# Opening a page is recorded by the statement that finds its link, when the link works and has
# no password: one round trip for the whole view. (A password's session is checked in Python;
# those opens are recorded once it passes.)
#
# That statement's commit does not wait for the WAL to reach the disk (synchronous_commit off,
# for this transaction only): a page view is a read, and waiting for a flush on every one held
# each view ~0.2 ms longer on the serving thread. What a crash of PostgreSQL itself (not of the
# service) can lose is the opens of its last ~0.6 s (3 x wal_writer_delay) from the engagement
# read model; the same events still reach the lake through the lake writer's spool, and every
# other interaction (plays, downloads, feedback) commits synchronously.
_OPEN_PAGE = f"""WITH link AS ({_LINK.format(digest=_PAGE_DIGEST)}),
                 opened AS (
                     INSERT INTO pitch_interactions
                         (event_id, pitch_id, recipient_id, event_type, occurred_at)
                     SELECT %(event_id)s, pitch_id, recipient_id, 'pitch_opened', %(now)s
                     FROM link WHERE gone IS NULL AND password_hash IS NULL
                     ON CONFLICT (event_id) DO NOTHING
                     RETURNING event_id)
                 SELECT link.*, EXISTS (SELECT FROM opened) AS opened,
                        set_config('synchronous_commit', 'off', true) AS asynchronous_commit
                 FROM link"""


def link_by_token_hash(
    conn: Connection[Any], token_hash: bytes, now: datetime, *, page_open: uuid.UUID | None = None
) -> Row | None:
    """The recipient and pitch behind a link, with the sender's name; ``gone`` is 'revoked' or
    'expired' (as of ``now``), None while the link works.

    With ``page_open`` (an event id), the link is opened for its page: the row also holds the
    digest of the page's rows (``page_tracks``), and ``opened`` is true when its
    ``pitch_opened`` was recorded under that id at ``now`` (a working link without password).
    """
    if page_open is None:
        sql, params = _LINK_ALONE, {"hash": token_hash, "now": now}
    else:
        sql, params = _OPEN_PAGE, {"hash": token_hash, "now": now, "event_id": page_open}
    row: Row | None = conn.execute(sql, params).fetchone()
    return row


def page_tracks(conn: Connection[Any], pitch_id: uuid.UUID, recipient_id: uuid.UUID) -> list[Row]:
    """The pitch's tracks with this recipient's feedback on each."""
    return conn.execute(
        f"""SELECT {_PAGE_TRACK_COLUMNS},
                   COALESCE(f.shortlisted, false) AS shortlisted, f.comment
            FROM pitch_tracks pt
            JOIN tracks t ON t.id = pt.track_id
            LEFT JOIN pitch_feedback f ON f.recipient_id = %(recipient)s AND f.track_id = t.id
            WHERE pt.pitch_id = %(pitch)s ORDER BY pt.position""",
        {"pitch": pitch_id, "recipient": recipient_id},
    ).fetchall()


def pitch_track(conn: Connection[Any], pitch_id: uuid.UUID, track_id: uuid.UUID) -> Row | None:
    """One track of the pitch, with what it takes to serve its audio."""
    row: Row | None = conn.execute(
        """SELECT t.id, t.title, t.artists, t.object_key, t.content_type, t.file_extension,
                  t.size_bytes, t.duration_ms
           FROM pitch_tracks pt JOIN tracks t ON t.id = pt.track_id
           WHERE pt.pitch_id = %s AND pt.track_id = %s""",
        (pitch_id, track_id),
    ).fetchone()
    return row


def pitch_track_durations(
    conn: Connection[Any], pitch_id: uuid.UUID, track_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Which of ``track_ids`` are in the pitch, with their durations."""
    rows = conn.execute(
        """SELECT t.id, t.duration_ms FROM pitch_tracks pt JOIN tracks t ON t.id = pt.track_id
           WHERE pt.pitch_id = %s AND pt.track_id = ANY(%s)""",
        (pitch_id, list(track_ids)),
    ).fetchall()
    return {row["id"]: row["duration_ms"] for row in rows}


def record_interactions(conn: Connection[Any], events: Sequence[UsageEvent]) -> set[uuid.UUID]:
    """Record recipients' events for the read model; the ids that were new (a resent event is
    recorded once)."""
    if not events:
        return set()
    rows = conn.execute(
        """INSERT INTO pitch_interactions (event_id, pitch_id, recipient_id, track_id, event_type,
                                           occurred_at, position_ms, listened_ms, bytes)
           SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::uuid[], %s::uuid[], %s::text[],
                                %s::timestamptz[], %s::bigint[], %s::bigint[], %s::bigint[])
           ON CONFLICT (event_id) DO NOTHING RETURNING event_id""",
        [
            [e.event_id for e in events],
            [e.pitch_id for e in events],
            [e.recipient_id for e in events],
            [e.track_id for e in events],
            [e.event_type for e in events],
            [e.occurred_at for e in events],
            [e.position_ms for e in events],
            [e.listened_ms for e in events],
            [e.bytes for e in events],
        ],
    ).fetchall()
    return {row["event_id"] for row in rows}


def get_feedback(
    conn: Connection[Any], recipient_id: uuid.UUID, track_id: uuid.UUID, *, lock: bool
) -> Row | None:
    row: Row | None = conn.execute(
        "SELECT track_id, shortlisted, comment FROM pitch_feedback "
        f"WHERE recipient_id = %s AND track_id = %s{' FOR UPDATE' if lock else ''}",
        (recipient_id, track_id),
    ).fetchone()
    return row


def save_feedback(
    conn: Connection[Any],
    recipient_id: uuid.UUID,
    track_id: uuid.UUID,
    *,
    shortlisted: bool,
    comment: str | None,
    at: datetime,
) -> None:
    conn.execute(
        """INSERT INTO pitch_feedback (recipient_id, track_id, shortlisted, comment, updated_at)
           VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (recipient_id, track_id) DO UPDATE
              SET shortlisted = EXCLUDED.shortlisted, comment = EXCLUDED.comment,
                  updated_at = EXCLUDED.updated_at""",
        (recipient_id, track_id, shortlisted, comment, at),
    )


def engagement_rows(conn: Connection[Any], pitch_id: uuid.UUID) -> list[Row]:
    """Per recipient and track (NULL: the pitch itself), what the interactions add up to."""
    return conn.execute(
        """SELECT recipient_id, track_id,
                  count(*) FILTER (WHERE event_type = 'pitch_opened') AS opens,
                  min(occurred_at) FILTER (WHERE event_type = 'pitch_opened') AS first_opened_at,
                  max(occurred_at) FILTER (WHERE event_type = 'pitch_opened') AS last_opened_at,
                  max(occurred_at) AS last_activity_at,
                  count(*) FILTER (WHERE event_type = 'pitch_track_played') AS plays,
                  COALESCE(sum(listened_ms), 0) AS listened_ms,
                  -- Seeking is not listening: only reports made while playing count as reached.
                  max(position_ms) FILTER (WHERE event_type IN (
                      'pitch_track_progress', 'pitch_track_paused', 'pitch_track_completed',
                      'pitch_track_skipped')) AS furthest_ms,
                  bool_or(event_type = 'pitch_track_completed') AS completed,
                  count(*) FILTER (WHERE event_type = 'pitch_track_downloaded') AS downloads
           FROM pitch_interactions WHERE pitch_id = %s
           GROUP BY recipient_id, track_id""",
        (pitch_id,),
    ).fetchall()


def feedback_rows(conn: Connection[Any], pitch_id: uuid.UUID) -> list[Row]:
    return conn.execute(
        """SELECT f.recipient_id, f.track_id, f.shortlisted, f.comment
           FROM pitch_feedback f JOIN pitch_recipients r ON r.id = f.recipient_id
           WHERE r.pitch_id = %s""",
        (pitch_id,),
    ).fetchall()


def track_titles(conn: Connection[Any], track_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = conn.execute(
        "SELECT id, title FROM tracks WHERE id = ANY(%s)", (list(track_ids),)
    ).fetchall()
    return {row["id"]: row["title"] for row in rows}


def expiring_pitches(conn: Connection[Any], now: datetime, limit: int) -> list[Row]:
    """Pitches past their expiry whose expiry has not been announced yet, claimed (SKIP LOCKED:
    concurrent sweepers share the work) and marked in the caller's transaction."""
    return conn.execute(
        """UPDATE pitches SET expiry_noted_at = %(now)s
           WHERE id IN (SELECT id FROM pitches
                        WHERE expiry_noted_at IS NULL AND revoked_at IS NULL
                          AND expires_at <= %(now)s
                        ORDER BY expires_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
           RETURNING id, owner_id""",
        {"now": now, "limit": limit},
    ).fetchall()
