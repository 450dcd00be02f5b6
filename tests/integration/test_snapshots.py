"""Database snapshots into the lake: on disk and on S3 with Glue (moto), from real PostgreSQL."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import awswrangler as wr
import boto3
import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake import snapshots
from lake.snapshots import (
    BOOL,
    FLOAT64,
    INT64,
    STRING,
    STRINGS,
    TABLES,
    TIMESTAMP,
    Column,
    S3Target,
    SnapshotTable,
    snapshot,
)
from tests.support.audio_files import SAMPLE_TAGS, make_audio
from tests.support.aws import REGION
from tests.support.stack import Api, StackHarness

pytestmark = [
    pytest.mark.integration,
    # awswrangler's own calls, deprecated by pandas 3.1: nothing this code can change.
    pytest.mark.filterwarnings("ignore:The inplace keyword:DeprecationWarning:awswrangler.*"),
]

DT = "2026-03-01"
NEXT_DT = "2026-03-02"
TABLE_NAMES = [t.name for t in TABLES]
TRACK_COLUMNS = [c.name for c in next(t for t in TABLES if t.name == "tracks").columns]
TAGS = SAMPLE_TAGS
# Every column type, filled and null, with an offset time that must come out in UTC.
KINDS = SnapshotTable(
    "kinds",
    "(VALUES ('a', 1, 1.5, true, '2026-03-01 23:30:00.123456-02'::timestamptz,"
    " ARRAY['x', 'y']), ('b', NULL, NULL, NULL, NULL, ARRAY[]::text[])) AS kinds"
    "(id, n, x, flag, at, tags)",
    (
        Column("id", STRING),
        Column("n", INT64),
        Column("x", FLOAT64),
        Column("flag", BOOL),
        Column("at", TIMESTAMP),
        Column("tags", STRINGS),
    ),
    order_by="kinds.id",
)
KINDS_ROWS: list[dict[str, Any]] = [
    {
        "id": "a",
        "n": 1,
        "x": 1.5,
        "flag": True,
        "at": datetime(2026, 3, 2, 1, 30, 0, 123456, tzinfo=UTC),
        "tags": ["x", "y"],
    },
    {"id": "b", "n": None, "x": None, "flag": None, "at": None, "tags": []},
]
# The same table once its rows are gone.
NO_KINDS = SnapshotTable(
    "kinds", f"({KINDS.query} LIMIT 0) AS kinds", KINDS.columns, order_by="kinds.id"
)


@dataclass(frozen=True)
class Library:
    """What two users put into the stack: their /v1/me bodies and their tracks as the API says."""

    users: list[dict[str, Any]]
    tracks: list[dict[str, Any]]
    upload_ids: list[str]
    # Ada's playlist (her two tracks, second first), shared and pitched.
    playlist_id: str
    pitch: dict[str, Any]


@pytest.fixture(scope="module")
def library(harness: StackHarness, tmp_path_factory: pytest.TempPathFactory) -> Library:
    folder = tmp_path_factory.mktemp("audio")
    uploads = [
        (
            # Signed in with a name as well as an email, to see that neither is exported.
            Api(harness.client, harness.stack.idp.mint(f"ada-{uuid.uuid4().hex[:8]}", name="Ada")),
            [
                make_audio("mp3", folder / "night-drive.mp3", tags=TAGS),
                make_audio("flac", folder / "Rain Loop.flac"),
            ],
        ),
        (
            harness.user(),
            [make_audio("wav", folder / "harbour.wav", tags={"title": "Harbour", "bpm": "92.5"})],
        ),
    ]
    users, tracks, upload_ids = [], [], []
    for api, paths in uploads:
        me = api.get("/v1/me").json()
        users.append(me)
        for path in paths:
            target = api.send(path)
            response = api.complete(target["upload_id"])
            assert response.status_code == 201, response.text
            tracks.append({**response.json(), "owner_id": me["id"]})
            upload_ids.append(target["upload_id"])
    ada = uploads[0][0]
    playlist = ada.post("/v1/playlists", json={"title": "Late Night"}).json()
    for track in (tracks[1], tracks[0]):
        ada.post(f"/v1/playlists/{playlist['id']}/tracks", json={"track_id": track["id"]})
    shares = [
        {
            "object_type": "playlist",
            "object_id": playlist["id"],
            "permission": "view",
            "grantee_user_id": users[1]["id"],
        },
        {
            "object_type": "track",
            "object_id": tracks[0]["id"],
            "permission": "stream",
            "grantee_email": "not-yet@elsewhere.test",
        },
    ]
    for share in shares:
        assert ada.post("/v1/shares", json=share).status_code == 201
    pitch = ada.post(
        "/v1/pitches",
        json={
            "playlist_id": playlist["id"],
            "title": "For the trailer",
            "password": "s3cret!!",
            "recipients": [{"name": "Sam Super", "email": "sam@studio.test", "company": "Studio"}],
        },
    ).json()
    return Library(users, tracks, upload_ids, playlist["id"], pitch)


def lake_rows(root: Path, table: str) -> list[dict[str, Any]]:
    """Every row of a snapshot table as DuckDB reads it, ``dt`` taken from the path."""
    with duckdb.connect() as db:
        db.execute("SET TimeZone = 'UTC'")
        cursor = db.execute(
            "SELECT * REPLACE (CAST(dt AS VARCHAR) AS dt) FROM read_parquet("
            f"'{root}/snapshots/{table}/*/*.parquet', hive_partitioning = true)"
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in rows}


def entries(root: Path) -> list[str]:
    """Every file and folder under the snapshots, hidden ones included."""
    return sorted(str(p.relative_to(root)) for p in (root / "snapshots").rglob("*"))


def count(database_url: str, table: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def expected_track(track: dict[str, Any], *, zoned: bool = True) -> dict[str, Any]:
    """A track as the snapshot should hold it, from the API's JSON (S3 times are zoneless UTC)."""
    times = {k: datetime.fromisoformat(track[k]) for k in ("created_at", "updated_at")}
    if not zoned:
        times = {k: t.astimezone(UTC).replace(tzinfo=None) for k, t in times.items()}
    return {name: track.get(name) for name in TRACK_COLUMNS} | times


# -- on disk -------------------------------------------------------------------------------------
def test_snapshot_holds_every_track_with_the_values_the_api_shows(
    library: Library, database_url: str, tmp_path: Path
) -> None:
    # Given two users' uploaded tracks (the library fixture)
    # When the database is snapshotted
    report = snapshot(database_url, tmp_path, DT)

    # Then every track is there once, with the API's values and its owner, artists as a list
    rows = lake_rows(tmp_path, "tracks")
    assert len(rows) == count(database_url, "tracks") == len(by_id(rows))
    for track in library.tracks:
        row = by_id(rows)[track["id"]]
        assert row == expected_track(track) | {"dt": DT}
    night_drive = by_id(rows)[library.tracks[0]["id"]]
    assert night_drive["artists"] == ["Ada Lane", "The Sync Band"]
    assert night_drive["bpm"] == 118.0
    assert by_id(rows)[library.tracks[1]["id"]]["artists"] == []
    assert by_id(rows)[library.tracks[2]["id"]]["bpm"] == 92.5
    # and the report counts what was written, one file per table
    tables = {t.table: t for t in report.tables}
    assert list(tables) == TABLE_NAMES
    assert tables["tracks"].rows == len(rows)
    for name, written in tables.items():
        (path,) = written.objects
        assert path == str(tmp_path / "snapshots" / name / f"dt={DT}" / "part-0.parquet")
        assert written.bytes == Path(path).stat().st_size


def test_snapshot_files_are_zstd_parquet_of_each_tables_declared_schema(
    library: Library, database_url: str, tmp_path: Path
) -> None:
    snapshot(database_url, tmp_path, DT)

    for table in TABLES:
        parquet = pq.ParquetFile(tmp_path / "snapshots" / table.name / f"dt={DT}/part-0.parquet")
        assert parquet.schema_arrow.equals(table.schema, check_metadata=False)
        assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
    tracks = next(t for t in TABLES if t.name == "tracks").schema
    assert tracks.field("id").type == pa.string()
    assert tracks.field("artists").type == pa.list_(pa.string())
    assert tracks.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert tracks.field("bpm").type == pa.float64()


def test_playlists_shares_and_pitches_are_snapshotted_without_personal_data(
    library: Library, database_url: str, tmp_path: Path
) -> None:
    # Given a playlist, two shares (one pending) and a password-protected pitch (the fixture)
    # When every table is snapshotted
    snapshot(database_url, tmp_path, DT)

    # Then the playlist keeps its order, the shares say which is pending, the pitch its tracks
    playlist = by_id(lake_rows(tmp_path, "playlists"))[library.playlist_id]
    assert playlist["track_ids"] == [library.tracks[1]["id"], library.tracks[0]["id"]]
    shares = [r for r in lake_rows(tmp_path, "shares") if r["owner_id"] == library.users[0]["id"]]
    assert sorted((r["object_type"], r["pending"]) for r in shares) == [
        ("playlist", False),
        ("track", True),
    ]
    pitch = by_id(lake_rows(tmp_path, "pitches"))[library.pitch["id"]]
    assert pitch["has_password"] is True and pitch["playlist_id"] == library.playlist_id
    pitch_tracks = [
        r for r in lake_rows(tmp_path, "pitch_tracks") if r["pitch_id"] == library.pitch["id"]
    ]
    assert [
        (r["position"], r["track_id"]) for r in sorted(pitch_tracks, key=lambda r: r["position"])
    ] == [(0, library.tracks[1]["id"]), (1, library.tracks[0]["id"])]
    recipients = lake_rows(tmp_path, "pitch_recipients")
    assert [r["company"] for r in recipients if r["pitch_id"] == library.pitch["id"]] == ["Studio"]
    # And no address, name, password hash or token hash is anywhere in those files
    for table in ("shares", "pitches", "pitch_recipients"):
        text = repr(lake_rows(tmp_path, table))
        assert "elsewhere.test" not in text and "studio.test" not in text
        assert "Sam Super" not in text and "argon2" not in text
    columns = {c.name for t in TABLES for c in t.columns}
    assert not columns & {"email", "grantee_email", "name", "password_hash", "token_hash"}


def test_users_snapshot_has_no_personal_data_columns(
    library: Library, database_url: str, tmp_path: Path
) -> None:
    # Given users who signed in with an email and a subject, one also with a name
    assert all(u["email"] and u["subject"] for u in library.users)
    assert library.users[0]["name"] == "Ada"

    # When the users are snapshotted
    snapshot(database_url, tmp_path, DT, tables=["users"])

    # Then their rows hold the id, the issuer and the creation time, and nothing else
    rows = by_id(lake_rows(tmp_path, "users"))
    for user in library.users:
        row = rows[user["id"]]
        assert set(row) == {"id", "issuer", "created_at", "dt"}
        assert row["issuer"] == user["issuer"]
        assert not {user["email"], user["name"], user["subject"]} & set(row.values())
    path = tmp_path / "snapshots/users" / f"dt={DT}/part-0.parquet"
    assert pq.read_schema(path).names == ["id", "issuer", "created_at"]


def test_uploads_snapshot_links_each_completed_upload_to_its_track(
    library: Library, database_url: str, tmp_path: Path
) -> None:
    snapshot(database_url, tmp_path, DT, tables=["uploads"])

    rows = by_id(lake_rows(tmp_path, "uploads"))
    assert len(rows) == count(database_url, "uploads")
    for upload_id, track in zip(library.upload_ids, library.tracks, strict=True):
        row = rows[upload_id]
        assert (row["status"], row["track_id"], row["owner_id"]) == (
            "completed",
            track["id"],
            track["owner_id"],
        )
        assert row["declared_size"] == track["size_bytes"]
        assert row["created_at"] <= row["finished_at"] < row["expires_at"]
        assert row["rejection_code"] is None


def test_running_again_the_same_day_replaces_the_snapshot_with_one_file(
    library: Library, database_url: str, tmp_path: Path
) -> None:
    # Given a snapshot of today
    snapshot(database_url, tmp_path, DT)
    first = {name: lake_rows(tmp_path, name) for name in TABLE_NAMES}

    # When it runs again the same day
    snapshot(database_url, tmp_path, DT)

    # Then each table still has one file (no temporary left), with the same rows
    assert entries(tmp_path) == sorted(
        path
        for name in TABLE_NAMES
        for path in (
            f"snapshots/{name}",
            f"snapshots/{name}/dt={DT}",
            f"snapshots/{name}/dt={DT}/part-0.parquet",
        )
    )
    assert {name: lake_rows(tmp_path, name) for name in TABLE_NAMES} == first


def test_another_day_adds_a_partition_and_leaves_the_first_alone(
    library: Library, database_url: str, tmp_path: Path
) -> None:
    # Given yesterday's snapshot
    snapshot(database_url, tmp_path, DT, tables=["tracks"])
    yesterday = tmp_path / "snapshots/tracks" / f"dt={DT}/part-0.parquet"
    before = yesterday.read_bytes()

    # When today's is taken
    snapshot(database_url, tmp_path, NEXT_DT, tables=["tracks"])

    # Then both days are there, each with every track, yesterday's file untouched
    rows = lake_rows(tmp_path, "tracks")
    assert sorted({row["dt"] for row in rows}) == [DT, NEXT_DT]
    assert len([r for r in rows if r["dt"] == NEXT_DT]) == count(database_url, "tracks")
    assert yesterday.read_bytes() == before


def test_unknown_table_is_a_value_error_naming_it_and_nothing_is_written(
    database_url: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"unknown snapshot tables \[.albums.\]"):
        snapshot(database_url, tmp_path, DT, tables=["tracks", "albums"])

    assert not (tmp_path / "snapshots").exists()


@pytest.mark.parametrize("dt", ["2026-3-1", "2026-03-01/..", "yesterday"])
def test_malformed_date_is_a_value_error(database_url: str, tmp_path: Path, dt: str) -> None:
    with pytest.raises(ValueError, match="invalid date"):
        snapshot(database_url, tmp_path, dt)


def test_progress_is_reported_as_each_table_starts_and_after_each_chunk(
    library: Library, database_url: str, tmp_path: Path
) -> None:
    # Given a chunk of one row, so each user is its own chunk
    calls: list[tuple[str, int]] = []

    # When the users are snapshotted with a progress callback
    report = snapshot(
        database_url,
        tmp_path,
        DT,
        tables=["users"],
        chunk_rows=1,
        progress=lambda table, rows: calls.append((table, rows)),
    )

    # Then it heard 0 at the start, then every row count up to the total
    users = count(database_url, "users")
    assert calls == [("users", n) for n in range(users + 1)]
    assert [(t.table, t.rows) for t in report.tables] == [("users", users)]
    assert len(lake_rows(tmp_path, "users")) == users


def test_every_column_type_round_trips_with_nulls(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshots, "TABLES", (KINDS,))

    snapshot(database_url, tmp_path, DT, tables=["kinds"])

    assert lake_rows(tmp_path, "kinds") == [row | {"dt": DT} for row in KINDS_ROWS]


def test_a_table_with_no_rows_gets_an_empty_file_of_its_schema(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a table that had rows this morning and has none now
    monkeypatch.setattr(snapshots, "TABLES", (KINDS,))
    snapshot(database_url, tmp_path, DT)
    monkeypatch.setattr(snapshots, "TABLES", (NO_KINDS,))

    # When it is snapshotted again
    report = snapshot(database_url, tmp_path, DT)

    # Then its file is replaced by one with no rows and the same schema
    path = tmp_path / "snapshots/kinds" / f"dt={DT}/part-0.parquet"
    assert pq.read_table(path).num_rows == 0
    assert pq.read_schema(path).equals(KINDS.schema, check_metadata=False)
    assert [(t.table, t.rows) for t in report.tables] == [("kinds", 0)]


# -- on S3, with Glue ----------------------------------------------------------------------------
@pytest.fixture
def target(moto_endpoint: str) -> S3Target:
    """An empty bucket and a Glue database name of this test's own."""
    bucket = f"musicsync-lake-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    return S3Target(bucket, "lake", f"musicsync_{uuid.uuid4().hex[:8]}", REGION, moto_endpoint)


@pytest.fixture
def session(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    """A boto3 session, with awswrangler pointed at moto for this test's reads."""
    monkeypatch.setattr(wr.config, "glue_endpoint_url", moto_endpoint)
    monkeypatch.setattr(wr.config, "s3_endpoint_url", moto_endpoint)
    return boto3.Session(region_name=REGION)


def s3_path(target: S3Target, table: str) -> str:
    return f"s3://{target.bucket}/lake/snapshots/{table}/"


def s3_rows(target: S3Target, table: str, session: boto3.Session) -> list[dict[str, Any]]:
    frame = wr.s3.read_parquet(s3_path(target, table), dataset=True, boto3_session=session)
    rows: list[dict[str, Any]] = pa.Table.from_pandas(frame, preserve_index=False).to_pylist()
    return rows


def s3_schema(path: str, session: boto3.Session) -> pa.Schema:
    bucket, key = path.removeprefix("s3://").split("/", 1)
    body = session.client("s3", endpoint_url=wr.config.s3_endpoint_url).get_object(
        Bucket=bucket, Key=key
    )["Body"]
    return pq.read_schema(io.BytesIO(body.read()))


def test_s3_snapshot_registers_each_table_in_glue_with_its_columns_and_dt_partition(
    library: Library,
    database_url: str,
    tmp_path: Path,
    target: S3Target,
    session: boto3.Session,
) -> None:
    # Given an empty bucket and no Glue database
    # When the database is snapshotted to S3
    report = snapshot(database_url, tmp_path, DT, s3=target)

    # Then each table is in Glue, under its prefix, with typed columns and dt as partition,
    # and nothing is written on disk
    tracks = wr.catalog.table(target.glue_database, "snapshot_tracks", boto3_session=session)
    columns = tracks[~tracks["Partition"]]
    assert columns["Column Name"].tolist() == TRACK_COLUMNS
    types = dict(zip(columns["Column Name"], columns["Type"], strict=True))
    assert (types["id"], types["artists"], types["bpm"], types["year"]) == (
        "string",
        "array<string>",
        "double",
        "bigint",
    )
    assert types["created_at"] == "timestamp"
    assert tracks[tracks["Partition"]]["Column Name"].tolist() == ["dt"]
    assert not (tmp_path / "snapshots").exists()
    users = wr.catalog.table(target.glue_database, "snapshot_users", boto3_session=session)
    assert users["Column Name"].tolist() == ["id", "issuer", "created_at", "dt"]
    for name in TABLE_NAMES:
        location = wr.catalog.get_table_location(
            target.glue_database, f"snapshot_{name}", boto3_session=session
        )
        assert location == s3_path(target, name)
        parameters = wr.catalog.get_table_parameters(
            target.glue_database, f"snapshot_{name}", boto3_session=session
        )
        assert parameters["projection.dt.type"] == "date"
    # and the objects hold every track with the API's values
    rows = by_id(s3_rows(target, "tracks", session))
    assert len(rows) == count(database_url, "tracks")
    for track in library.tracks:
        assert rows[track["id"]] == expected_track(track, zoned=False) | {"dt": DT}
    written = {t.table: t for t in report.tables}
    assert written["tracks"].rows == len(rows)
    assert len(written["tracks"].objects) == 1
    assert written["tracks"].objects[0].startswith(f"{s3_path(target, 'tracks')}dt={DT}/")
    assert written["tracks"].bytes > 0


def test_s3_snapshot_twice_the_same_day_keeps_one_copy_of_the_rows(
    library: Library,
    database_url: str,
    tmp_path: Path,
    target: S3Target,
    session: boto3.Session,
) -> None:
    # Given today's snapshot on S3
    first = snapshot(database_url, tmp_path, DT, s3=target, tables=["tracks"])

    # When it runs again today, then tomorrow
    again = snapshot(database_url, tmp_path, DT, s3=target, tables=["tracks"])
    snapshot(database_url, tmp_path, NEXT_DT, s3=target, tables=["tracks"])

    # Then each day holds every track once, in one object: the second run replaced the first
    tracks = count(database_url, "tracks")
    rows = s3_rows(target, "tracks", session)
    assert sorted(row["dt"] for row in rows) == [DT] * tracks + [NEXT_DT] * tracks
    assert len({(row["dt"], row["id"]) for row in rows}) == len(rows)
    objects = wr.s3.list_objects(s3_path(target, "tracks"), boto3_session=session)
    assert [o.rsplit("/", 2)[1] for o in objects] == [f"dt={DT}", f"dt={NEXT_DT}"]
    assert objects[0] == again.tables[0].objects[0] != first.tables[0].objects[0]


def test_s3_files_keep_every_column_type_with_nulls_the_same_on_every_run(
    database_url: str,
    tmp_path: Path,
    target: S3Target,
    session: boto3.Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a table of every column type
    monkeypatch.setattr(snapshots, "TABLES", (KINDS,))

    # When it is snapshotted twice (the first run creates the Glue table, the second finds it)
    first = snapshot(database_url, tmp_path, DT, s3=target)
    schema = s3_schema(first.tables[0].objects[0], session)
    second = snapshot(database_url, tmp_path, DT, s3=target)

    # Then the values come back, the times in UTC microseconds, and the schema does not drift
    assert s3_schema(second.tables[0].objects[0], session).equals(schema, check_metadata=False)
    assert schema.field("at").type == pa.timestamp("us")
    rows = sorted(s3_rows(target, "kinds", session), key=lambda row: row["id"])
    naive = [row | {"at": row["at"] and row["at"].replace(tzinfo=None)} for row in KINDS_ROWS]
    assert rows == [row | {"dt": DT} for row in naive]


def test_s3_table_that_empties_loses_the_days_rows_and_stays_in_glue(
    database_url: str,
    tmp_path: Path,
    target: S3Target,
    session: boto3.Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a snapshot of a table taken this morning, with rows
    monkeypatch.setattr(snapshots, "TABLES", (KINDS,))
    snapshot(database_url, tmp_path, DT, s3=target)

    # When the table has no rows this evening and is snapshotted again
    monkeypatch.setattr(snapshots, "TABLES", (NO_KINDS,))
    report = snapshot(database_url, tmp_path, DT, s3=target)

    # Then the day's objects are gone and the Glue table is still there
    assert wr.s3.list_objects(s3_path(target, "kinds"), boto3_session=session) == []
    assert wr.catalog.does_table_exist(
        target.glue_database, "snapshot_kinds", boto3_session=session
    )
    assert [(t.table, t.rows, t.objects) for t in report.tables] == [("kinds", 0, ())]


def test_s3_table_never_filled_is_still_registered_in_glue(
    database_url: str,
    tmp_path: Path,
    target: S3Target,
    session: boto3.Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(snapshots, "TABLES", (NO_KINDS,))

    snapshot(database_url, tmp_path, DT, s3=target)

    table = wr.catalog.table(target.glue_database, "snapshot_kinds", boto3_session=session)
    assert table["Column Name"].tolist() == [*KINDS.schema.names, "dt"]
    assert wr.catalog.get_table_location(
        target.glue_database, "snapshot_kinds", boto3_session=session
    ) == s3_path(target, "kinds")
