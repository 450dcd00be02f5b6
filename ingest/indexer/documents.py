"""Track documents as search sees them, read from the database with their change versions.

A document and its version come from ONE statement, hence one snapshot: the version is
``cdc_versions``' counter, bumped in the transaction of every change to the document, so a
snapshot that sees version N sees exactly the changes up to N. Who may see a track is
``authz.TRACK_VIEWERS_SQL``, the same rules as every access check.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from psycopg.rows import dict_row

from services.core.authz import TRACK_VIEWERS_SQL
from services.core.search.model import TrackDocument

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg_pool import ConnectionPool

_COLUMNS = f"""t.id, t.owner_id, t.title, t.artists, t.album, t.genre, t.mood, t.tags,
       t.musical_key, t.instrumental, t.bpm, t.duration_ms, t.year, t.created_at,
       {TRACK_VIEWERS_SQL} AS viewers"""

_BY_IDS = f"""
SELECT w.id AS wanted, COALESCE(v.version, 0) AS cdc_version, {_COLUMNS}
  FROM unnest(%(ids)s::uuid[]) AS w(id)
  LEFT JOIN tracks t ON t.id = w.id
  LEFT JOIN cdc_versions v ON v.aggregate_type = 'track' AND v.aggregate_id = w.id"""

_ALL = f"""
SELECT COALESCE(v.version, 0) AS cdc_version, {_COLUMNS}
  FROM tracks t
  LEFT JOIN cdc_versions v ON v.aggregate_type = 'track' AND v.aggregate_id = t.id
 ORDER BY t.id"""


def document(row: Mapping[str, Any]) -> TrackDocument:
    """A document from a row of tracks with its ``viewers`` array."""
    bpm = row["bpm"]
    return TrackDocument(
        id=row["id"],
        owner_id=row["owner_id"],
        viewers=frozenset(v for v in row["viewers"] if v is not None),
        title=row["title"],
        artists=tuple(row["artists"] or ()),
        album=row["album"],
        genre=row["genre"],
        mood=row["mood"],
        tags=tuple(row["tags"] or ()),
        key=row["musical_key"],
        instrumental=row["instrumental"],
        bpm=None if bpm is None else float(bpm),
        duration_ms=int(row["duration_ms"]),
        year=row["year"],
        created_at=row["created_at"],
    )


def load_documents(
    conn: Connection[Any], track_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, tuple[TrackDocument | None, int]]:
    """Each track's current document (None once deleted or never made) and version (0 when no
    change was ever recorded), in one statement: one snapshot for all of them."""
    wanted = list(dict.fromkeys(track_ids))
    if not wanted:
        return {}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_BY_IDS, {"ids": wanted}).fetchall()
    return {
        row["wanted"]: (None if row["id"] is None else document(row), int(row["cdc_version"]))
        for row in rows
    }


def all_documents(
    pool: ConnectionPool[Any], batch_size: int = 2000
) -> Iterator[list[tuple[TrackDocument, int]]]:
    """Every track's document and version, in batches, all from one snapshot (a REPEATABLE READ
    transaction read through a server-side cursor): what a full reindex writes. Changes
    committed after the snapshot carry higher versions and reach the index through the outbox,
    so a reindex that overlaps with them loses none."""
    with pool.connection() as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        with conn.cursor(name="musicsync_reindex", row_factory=dict_row) as cur:
            cur.itersize = batch_size
            cur.execute(_ALL)
            while rows := cur.fetchmany(batch_size):
                yield [(document(row), int(row["cdc_version"])) for row in rows]
