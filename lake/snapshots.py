"""Daily snapshots of the database's dimension tables into the lake, so marts can join events.

Each table in ``TABLES`` is written as ``snapshots/<table>/dt=YYYY-MM-DD/`` Parquet (zstd), on
disk (one ``part-0.parquet``, swapped in atomically) or on S3 through awswrangler, which also
registers ``snapshot_<table>`` in Glue (partition projection on ``dt``). A second run on the
same day replaces that day's snapshot; other days are left alone.

A table is one ``SnapshotTable`` entry: its name, what it reads from, and its columns with
their Arrow types. The SELECT and the Arrow schema both come from that entry, and every
column is cast in SQL to its Arrow type's PostgreSQL twin (uuid -> text, numeric -> double),
so the rows psycopg returns already have the Python types Arrow expects. Only columns listed
are exported: personal data (users' email, name and subject; recipients' emails) is left out
by not listing it (shares by address export only whether they are pending; recipients export
their company, not their name or address; pitches never their password hash).

Rows are read through a server-side cursor in chunks of ``chunk_rows``, each chunk becoming
one Arrow record batch, so at most one chunk is ever held as Python objects. On disk the
batches stream into the file. S3 needs one DataFrame for awswrangler, so there the batches are
gathered and converted once, each Arrow column freed as it is converted. All tables are read
in one REPEATABLE READ transaction: one run's snapshots are mutually consistent (every
``uploads.track_id`` of a run is in that run's ``tracks``).

On S3 the day's objects are replaced by awswrangler's ``overwrite_partitions`` (delete, then
write: not atomic, unlike on disk), and timestamps are stored zoneless (UTC values, micro-
seconds), as Glue's ``timestamp`` has no zone and awswrangler casts to the catalogue's types.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import IsolationLevel

from lake.layout import DT_PROJECTION, SNAPSHOTS, LakeLocation, fsync, snapshot_partition

if TYPE_CHECKING:
    import boto3

FILE_NAME = "part-0.parquet"
CHUNK_ROWS = 50_000

STRING = pa.string()
INT64 = pa.int64()
FLOAT64 = pa.float64()
BOOL = pa.bool_()
TIMESTAMP = pa.timestamp("us", tz="UTC")
STRINGS = pa.list_(STRING)

Progress = Callable[[str, int], None]


class _Type(NamedTuple):
    postgres: str
    glue: str


_TYPES: dict[pa.DataType, _Type] = {
    STRING: _Type("text", "string"),
    INT64: _Type("bigint", "bigint"),
    FLOAT64: _Type("double precision", "double"),
    BOOL: _Type("boolean", "boolean"),
    TIMESTAMP: _Type("timestamptz", "timestamp"),
    STRINGS: _Type("text[]", "array<string>"),
}


@dataclass(frozen=True)
class Column:
    """One exported column: its name, Arrow type, and SQL expression (default: the column)."""

    name: str
    type: pa.DataType
    sql: str | None = None

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"column {self.name}: no snapshot mapping for Arrow type {self.type}")


@dataclass(frozen=True)
class SnapshotTable:
    """A table as the lake sees it; ``source`` is the FROM item the columns are read from."""

    name: str
    source: str
    columns: tuple[Column, ...]
    order_by: str | None = None

    @property
    def query(self) -> str:
        selected = ", ".join(
            f"({c.sql or c.name})::{_TYPES[c.type].postgres} AS {c.name}" for c in self.columns
        )
        # Qualified: a bare "id" would name the text output column, sorted in full instead of
        # read in primary key order. Sorted files give the id columns useful min/max stats.
        return (
            f"SELECT {selected} FROM {self.source} ORDER BY {self.order_by or self.source + '.id'}"
        )

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type) for c in self.columns])

    @property
    def glue_types(self) -> dict[str, str]:
        return {c.name: _TYPES[c.type].glue for c in self.columns}


TABLES: tuple[SnapshotTable, ...] = (
    SnapshotTable(
        "users",
        "users",
        (Column("id", STRING), Column("issuer", STRING), Column("created_at", TIMESTAMP)),
    ),
    SnapshotTable(
        "tracks",
        "tracks",
        (
            Column("id", STRING),
            Column("owner_id", STRING),
            Column("title", STRING),
            Column("artists", STRINGS),
            Column("album", STRING),
            Column("year", INT64),
            Column("genre", STRING),
            Column("mood", STRING),
            Column("tags", STRINGS),
            Column("instrumental", BOOL),
            Column("isrc", STRING),
            Column("bpm", FLOAT64),
            Column("musical_key", STRING),
            Column("duration_ms", INT64),
            Column("bitrate", INT64),
            Column("sample_rate", INT64),
            Column("channels", INT64),
            Column("container", STRING),
            Column("codec", STRING),
            Column("content_type", STRING),
            Column("size_bytes", INT64),
            Column("sha256", STRING),
            Column("version", INT64),
            Column("created_at", TIMESTAMP),
            Column("updated_at", TIMESTAMP),
        ),
    ),
    SnapshotTable(
        "uploads",
        "uploads",
        (
            Column("id", STRING),
            Column("owner_id", STRING),
            Column("status", STRING),
            Column("rejection_code", STRING),
            Column("declared_size", INT64),
            Column("content_type", STRING),
            Column("created_at", TIMESTAMP),
            Column("expires_at", TIMESTAMP),
            Column("finished_at", TIMESTAMP),
            Column("track_id", STRING),
        ),
    ),
    SnapshotTable(
        "playlists",
        "playlists",
        (
            Column("id", STRING),
            Column("owner_id", STRING),
            Column("title", STRING),
            # The ordered entries: a playlist's order is part of what it is.
            Column(
                "track_ids",
                STRINGS,
                "ARRAY(SELECT e.track_id::text FROM playlist_entries e "
                "WHERE e.playlist_id = playlists.id ORDER BY e.position, e.id)",
            ),
            Column("version", INT64),
            Column("created_at", TIMESTAMP),
            Column("updated_at", TIMESTAMP),
        ),
    ),
    SnapshotTable(
        "shares",
        "shares",
        (
            Column("id", STRING),
            Column("owner_id", STRING),
            Column("object_type", STRING),
            Column("track_id", STRING),
            Column("playlist_id", STRING),
            Column("grantee_id", STRING),
            Column("pending", BOOL, "shares.grantee_id IS NULL"),
            Column("permission", STRING),
            Column("created_at", TIMESTAMP),
            Column("updated_at", TIMESTAMP),
            Column("revoked_at", TIMESTAMP),
        ),
    ),
    SnapshotTable(
        "pitches",
        "pitches",
        (
            Column("id", STRING),
            Column("owner_id", STRING),
            Column("playlist_id", STRING),
            Column("title", STRING),
            Column("allow_download", BOOL),
            Column("has_password", BOOL, "pitches.password_hash IS NOT NULL"),
            Column("expires_at", TIMESTAMP),
            Column("revoked_at", TIMESTAMP),
            Column("version", INT64),
            Column("created_at", TIMESTAMP),
            Column("updated_at", TIMESTAMP),
        ),
    ),
    SnapshotTable(
        "pitch_recipients",
        "pitch_recipients",
        (
            Column("id", STRING),
            Column("pitch_id", STRING),
            Column("company", STRING),
            Column("link_issued_at", TIMESTAMP),
            Column("revoked_at", TIMESTAMP),
            Column("created_at", TIMESTAMP),
        ),
    ),
    SnapshotTable(
        "pitch_tracks",
        "pitch_tracks",
        (Column("pitch_id", STRING), Column("track_id", STRING), Column("position", INT64)),
        order_by="pitch_tracks.pitch_id, pitch_tracks.position",
    ),
)

# awswrangler's own defaults write timestamps as deprecated INT96 (its "spark" flavour) or,
# without it, truncated to milliseconds; the snapshots keep the database's microseconds.
_PARQUET_OPTIONS = {"coerce_timestamps": "us", "use_deprecated_int96_timestamps": False}


@dataclass(frozen=True)
class S3Target:
    """Where the S3 snapshots go: ``s3://bucket/prefix/snapshots/...`` and a Glue database."""

    bucket: str
    prefix: str
    glue_database: str
    region: str
    endpoint_url: str | None = None

    @property
    def root(self) -> LakeLocation:
        return LakeLocation(f"s3://{self.bucket}/{self.prefix}")


@dataclass(frozen=True)
class TableSnapshot:
    """One table's snapshot: rows, and the files or objects written with their total size."""

    table: str
    rows: int
    bytes: int
    objects: tuple[str, ...]


@dataclass(frozen=True)
class SnapshotReport:
    dt: str
    tables: tuple[TableSnapshot, ...]


def snapshot(
    database_url: str,
    lake_root: Path | str,
    dt: str,
    *,
    tables: Sequence[str] | None = None,
    s3: S3Target | None = None,
    progress: Progress | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> SnapshotReport:
    """Export ``tables`` (default: all of ``TABLES``) as the ``dt`` snapshot.

    Written under ``lake_root`` on disk, or to ``s3`` when given (``lake_root`` is then
    unused). ``progress(table, rows_so_far)`` is called as each table starts and after each
    chunk. Unknown table names or a malformed ``dt`` raise ``ValueError`` before anything is
    read or written.
    """
    chosen = _chosen(tables)
    for table in chosen:
        snapshot_partition(table.name, dt)  # raises on a malformed date before any work
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    report = []
    with psycopg.connect(database_url) as conn:
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        for table in chosen:
            batches = _batches(conn, table, chunk_rows, progress)
            if s3 is None:
                report.append(_write_local(Path(lake_root), table, dt, batches))
            else:
                report.append(_write_s3(s3, table, dt, batches))
    return SnapshotReport(dt, tuple(report))


def _chosen(names: Sequence[str] | None) -> list[SnapshotTable]:
    known = {t.name: t for t in TABLES}
    if names is None:
        return list(TABLES)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown snapshot tables {unknown}; known: {sorted(known)}")
    return [known[n] for n in names]


def _batches(
    conn: psycopg.Connection[Any],
    table: SnapshotTable,
    chunk_rows: int,
    progress: Progress | None,
) -> Iterator[pa.RecordBatch]:
    schema = table.schema
    rows_so_far = 0
    if progress:
        progress(table.name, 0)
    # A named cursor lives on the server: each fetchmany brings one chunk, never the table.
    with conn.cursor(name=f"snapshot_{table.name}") as cursor:
        cursor.execute(table.query)
        while rows := cursor.fetchmany(chunk_rows):
            columns = zip(*rows, strict=True)
            arrays = [
                pa.array(values, type=f.type) for values, f in zip(columns, schema, strict=True)
            ]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)
            rows_so_far += len(rows)
            if progress:
                progress(table.name, rows_so_far)


def _write_local(
    root: Path, table: SnapshotTable, dt: str, batches: Iterator[pa.RecordBatch]
) -> TableSnapshot:
    directory = root / snapshot_partition(table.name, dt)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / FILE_NAME
    # Hidden and not *.parquet: readers globbing the partition never see a half-written file.
    fd, temp_name = tempfile.mkstemp(dir=directory, prefix=f".{FILE_NAME}.", suffix=".tmp")
    temp = Path(temp_name)
    rows = 0
    try:
        with os.fdopen(fd, "wb") as sink:
            with pq.ParquetWriter(sink, table.schema, compression="zstd") as writer:
                for batch in batches:
                    writer.write_batch(batch)
                    rows += batch.num_rows
            sink.flush()
            os.fsync(sink.fileno())
        temp.replace(target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync(directory)
    return TableSnapshot(table.name, rows, target.stat().st_size, (str(target),))


def _write_s3(
    target: S3Target, table: SnapshotTable, dt: str, batches: Iterator[pa.RecordBatch]
) -> TableSnapshot:
    import awswrangler as wr
    import boto3

    session = boto3.Session(region_name=target.region)
    path = target.root.url(f"{SNAPSHOTS}/{table.name}/")
    glue_table = f"snapshot_{table.name}"
    description = f"Daily snapshots of the {table.name} table (lake/snapshots.py)."
    frame = _frame(batches, table.schema, dt)
    rows = len(frame)
    with _endpoints(target.endpoint_url):
        wr.catalog.create_database(target.glue_database, exist_ok=True, boto3_session=session)
        if rows == 0:
            # awswrangler writes nothing for an empty frame and leaves the partition as it was.
            wr.s3.delete_objects(f"{path}dt={dt}/", boto3_session=session)
            _ensure_glue_table(session, target.glue_database, glue_table, path, table, description)
            return TableSnapshot(table.name, 0, 0, ())
        written = wr.s3.to_parquet(
            frame,
            path=path,
            dataset=True,
            partition_cols=["dt"],
            mode="overwrite_partitions",
            compression="zstd",
            database=target.glue_database,
            table=glue_table,
            dtype={**table.glue_types, "dt": "string"},
            glue_table_settings={"description": description, "parameters": DT_PROJECTION},
            # A copy: awswrangler fills its defaults into the dict it is given.
            pyarrow_additional_kwargs=dict(_PARQUET_OPTIONS),
            boto3_session=session,
        )
        paths: list[str] = written["paths"]
        sizes = wr.s3.size_objects(paths, boto3_session=session)
    return TableSnapshot(table.name, rows, sum(s or 0 for s in sizes.values()), tuple(paths))


def _ensure_glue_table(
    session: boto3.Session,
    database: str,
    glue_table: str,
    path: str,
    table: SnapshotTable,
    description: str,
) -> None:
    """Create the table if missing: marts select from every snapshot, even one never filled."""
    import awswrangler as wr

    if wr.catalog.does_table_exist(database, glue_table, boto3_session=session):
        return
    wr.catalog.create_parquet_table(
        database,
        glue_table,
        path,
        columns_types=table.glue_types,
        partitions_types={"dt": "string"},
        compression="zstd",
        description=description,
        parameters=DT_PROJECTION,
        boto3_session=session,
    )


def _frame(batches: Iterator[pa.RecordBatch], schema: pa.Schema, dt: str) -> Any:
    """The DataFrame to hand awswrangler, in the dtypes it would cast the Glue types to.

    awswrangler casts every column to its catalogue type once the table exists, so a frame
    already in those dtypes (string, Int64, boolean, float64, datetime64[us]) is not copied
    again and the first run writes the same file schema as every later one. Timestamps drop
    their zone (values stay UTC): a zoned column would be cast to nanoseconds.
    """
    import pandas as pd  # type: ignore[import-untyped]

    # Only this function holds the table, so self_destruct can free each column once converted.
    arrow = pa.Table.from_batches(batches, schema=schema)
    for i, field in enumerate(arrow.schema):
        if pa.types.is_timestamp(field.type):
            arrow = arrow.set_column(i, field.name, arrow.column(i).cast(pa.timestamp("us")))
    dtypes = {STRING: pd.StringDtype("pyarrow"), INT64: pd.Int64Dtype(), BOOL: pd.BooleanDtype()}
    frame = arrow.to_pandas(types_mapper=dtypes.get, self_destruct=True, split_blocks=True)
    frame["dt"] = pd.Series([dt] * len(frame), dtype=pd.StringDtype("pyarrow"))
    return frame


@contextlib.contextmanager
def _endpoints(endpoint_url: str | None) -> Iterator[None]:
    """Point awswrangler's S3 and Glue clients at ``endpoint_url`` for the block only."""
    import awswrangler as wr

    if endpoint_url is None:
        yield
        return
    # wr.config is process-wide: put back what was there so the override does not leak.
    saved = (wr.config.s3_endpoint_url, wr.config.glue_endpoint_url)
    wr.config.s3_endpoint_url = endpoint_url
    wr.config.glue_endpoint_url = endpoint_url
    try:
        yield
    finally:
        wr.config.s3_endpoint_url, wr.config.glue_endpoint_url = saved
