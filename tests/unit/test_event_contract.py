"""The usage event contract: envelope, catalogue, generated schemas and the Parquet round trip."""

from __future__ import annotations

import dataclasses
import typing
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from jsonschema import Draft202012Validator

from ingest.events.arrow import file_schema, partition_schema
from ingest.events.catalogue import (
    ALWAYS_REQUIRED,
    CATALOGUE,
    PROPERTIES_PREFIX,
    EventType,
    validate,
)
from ingest.events.envelope import (
    ACTOR_TYPES,
    COLUMNS,
    MEASURE_COLUMNS,
    PARTITION_COLUMNS,
    UsageEvent,
    to_row,
)
from ingest.events.schemas import (
    LAKE_ROOT_PLACEHOLDER,
    SERVER_COLUMNS,
    glue_table,
    json_schema,
    stale,
)
from lake.layout import event_partition

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 3, 1, 23, 59, 59, 123456, tzinfo=UTC)
GLUE_TYPES = {
    pa.string(): "string",
    pa.int64(): "bigint",
    pa.timestamp("us", tz="UTC"): "timestamp",
}
# Stamped by the sink on arrival, so a producer's event does not have it yet.
SINK_STAMPED = {"received_at"}


def _sample_value(column: str) -> Any:
    kind = next(c.kind for c in COLUMNS if c.name == column)
    return {"uuid": uuid.uuid4(), "int": 1234, "string": "s-1"}[kind]


def sample_event(entry: EventType, /, **overrides: Any) -> UsageEvent:
    """A valid event of the type: every required column filled, a person actor with an id."""
    columns: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for required in entry.required:
        if required.startswith(PROPERTIES_PREFIX):
            properties[required.removeprefix(PROPERTIES_PREFIX)] = "value"
        else:
            columns[required] = _sample_value(required)
    event = UsageEvent(
        event_id=uuid.uuid4(),
        event_type=entry.name,
        event_version=entry.version,
        occurred_at=AT,
        actor_type=entry.actor_types[0],
        source="test",
        actor_id="actor-1",
        correlation_id="corr-1",
        properties=properties,
        **columns,
    )
    return dataclasses.replace(event, **overrides)


def _allows_none(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation)


def test_usage_event_fields_are_the_envelope_columns_and_required_ones_are_not_optional() -> None:
    # Given the dataclass's fields, with their resolved annotations
    hints = typing.get_type_hints(UsageEvent)
    fields = {f.name: f for f in dataclasses.fields(UsageEvent)}

    # When they are compared with the envelope (dt is derived from occurred_at, as a property)
    envelope = {c.name for c in (*COLUMNS, *PARTITION_COLUMNS)}

    # Then the names are the same and every required column is non-optional
    assert fields.keys() | {"dt"} == envelope
    assert isinstance(UsageEvent.dt, property)
    for column in (*COLUMNS, *PARTITION_COLUMNS):
        if column.name not in fields:
            continue
        field = fields[column.name]
        has_default = (
            field.default is not dataclasses.MISSING
            or field.default_factory is not dataclasses.MISSING
        )
        if column.required and column.name not in SINK_STAMPED:
            assert not _allows_none(hints[column.name]) and not has_default, column.name
        else:
            assert has_default, column.name


def test_every_catalogue_entry_requires_only_optional_envelope_columns_or_property_keys() -> None:
    optional_columns = {c.name for c in COLUMNS if not c.required}
    for name, entry in CATALOGUE.items():
        assert name == entry.name and entry.version >= 1
        assert set(entry.actor_types) <= set(ACTOR_TYPES) and entry.actor_types
        for required in entry.required:
            assert required.startswith(PROPERTIES_PREFIX) or required in optional_columns, (
                f"{name}: {required}"
            )
        assert len(set(entry.required)) == len(entry.required), name


def test_every_catalogue_entry_is_valid_when_its_required_columns_are_filled() -> None:
    for entry in CATALOGUE.values():
        assert validate(sample_event(entry)) == [], entry.name


def test_an_empty_required_property_is_present_but_an_empty_column_is_not() -> None:
    # A search with filters only has an empty query: the key is there, the value is "".
    search = sample_event(CATALOGUE["search_performed"], properties={"query": ""})
    assert validate(search) == []
    assert validate(sample_event(CATALOGUE["track_deleted"], source="")) == [
        "track_deleted: source is required"
    ]


def test_validate_reports_an_unknown_event_type() -> None:
    event = sample_event(CATALOGUE["track_deleted"], event_type="track_exploded")
    assert validate(event) == ["unknown event type 'track_exploded'"]


@pytest.mark.parametrize(
    ("type_name", "overrides", "problem"),
    [
        ("track_deleted", {"event_version": 2}, "track_deleted: event_version 2, expected 1"),
        (
            "pitch_expired",
            {"actor_type": "user"},
            "pitch_expired: actor_type 'user' not allowed (system)",
        ),
        ("track_deleted", {"track_id": None}, "track_deleted: track_id is required"),
        ("track_deleted", {"source": ""}, "track_deleted: source is required"),
        ("search_performed", {"properties": {}}, "search_performed: properties.query is required"),
        (
            "track_deleted",
            {"actor_id": None},
            "track_deleted: actor_id is required when a user acts",
        ),
        (
            "track_playback_progress",
            {"listened_ms": -5},
            "track_playback_progress: listened_ms is negative (-5)",
        ),
        (
            "track_deleted",
            {"occurred_at": datetime(2026, 3, 1, 12)},
            "track_deleted: occurred_at is not timezone-aware",
        ),
    ],
)
def test_validate_reports_each_problem(
    type_name: str, overrides: dict[str, Any], problem: str
) -> None:
    # Given an otherwise valid event broken in one way
    event = sample_event(CATALOGUE[type_name], **overrides)

    # When it is validated
    problems = validate(event)

    # Then that one problem is reported
    assert problems == [problem]


def test_validate_accepts_a_system_actor_without_an_id_and_any_offset() -> None:
    event = sample_event(
        CATALOGUE["pitch_expired"],
        actor_id=None,
        occurred_at=AT.astimezone(timezone(timedelta(hours=-5))),
    )
    assert validate(event) == []


def _validator() -> Any:
    return Draft202012Validator(json_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _client_event(**fields: Any) -> dict[str, Any]:
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "track_playback_progress",
        "event_version": 1,
        "occurred_at": "2026-03-01T12:00:00.123456Z",
        "session_id": "sess-1",
        "track_id": str(uuid.uuid4()),
        "position_ms": 30_000,
        "listened_ms": 10_000,
    }
    event.update(fields)
    return event


def test_json_schema_is_a_valid_draft_2020_12_schema_accepting_a_client_event() -> None:
    Draft202012Validator.check_schema(json_schema())
    assert list(_validator().iter_errors(_client_event())) == []


def test_json_schema_accepts_a_pitch_event_without_the_pitch_and_recipient_it_cannot_know() -> None:
    event = _client_event(event_type="pitch_track_progress")
    assert list(_validator().iter_errors(event)) == []


def test_json_schema_lists_exactly_the_client_side_types() -> None:
    enum = json_schema()["properties"]["event_type"]["enum"]
    assert enum == [t.name for t in CATALOGUE.values() if t.client_side]


def test_json_schema_rejects_a_server_side_event_type() -> None:
    assert not _validator().is_valid(_client_event(event_type="track_uploaded"))


@pytest.mark.parametrize("forged", SERVER_COLUMNS)
def test_json_schema_rejects_forged_actor_and_server_fields(forged: str) -> None:
    # Given a client event carrying a field only the collector may set
    event = _client_event(**{forged: str(uuid.uuid4())})

    # When it is validated, then it is refused
    assert not _validator().is_valid(event)
    assert forged not in json_schema()["properties"]


@pytest.mark.parametrize(
    "broken",
    [
        {"position_ms": -1},
        {"listened_ms": 1.5},
        {"event_id": "not-a-uuid"},
        {"occurred_at": "2026-03-01T12:00:00"},
        {"event_version": 2},
        {"properties": "text"},
        {"track_id": None},
    ],
)
def test_json_schema_rejects_broken_client_events(broken: dict[str, Any]) -> None:
    assert not _validator().is_valid(_client_event(**broken))


def test_json_schema_requires_the_type_required_columns() -> None:
    event = _client_event()
    del event["listened_ms"]
    assert not _validator().is_valid(event)


def test_glue_table_columns_are_the_file_schema_with_athena_types() -> None:
    # Given the Glue table input for a lake root
    table = glue_table("s3://lake-bucket/prefix")

    # When its columns are compared with the Parquet file schema
    columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    partitions = [(c["Name"], c["Type"]) for c in table["PartitionKeys"]]

    # Then names, order and mapped types agree, and the partitions are dt and event_type
    assert columns == [(f.name, GLUE_TYPES[f.type]) for f in file_schema()]
    assert partitions == [(f.name, GLUE_TYPES[f.type]) for f in partition_schema()]
    assert table["StorageDescriptor"]["Location"] == "s3://lake-bucket/prefix/events/"


def test_glue_table_projects_partitions_over_the_lake_layout() -> None:
    parameters = glue_table(LAKE_ROOT_PLACEHOLDER + "/")["Parameters"]
    assert parameters["projection.enabled"] == "true"
    assert parameters["projection.dt.type"] == "date"
    assert parameters["projection.dt.format"] == "yyyy-MM-dd"
    assert parameters["projection.event_type.values"].split(",") == list(CATALOGUE)
    template = parameters["storage.location.template"]
    assert template == "s3://${lake_bucket}/events/dt=${dt}/event_type=${event_type}/"
    # The template is the layout's partition path with the projected values substituted.
    assert template.replace("${dt}", "2026-03-01").replace("${event_type}", "pitch_sent") == (
        f"s3://${{lake_bucket}}/{event_partition('2026-03-01', 'pitch_sent')}/"
    )


def test_checked_in_generated_files_match_the_contract() -> None:
    # Given the repository's checked-in schemas and docs, when rendered afresh
    outdated = stale(REPO_ROOT)

    # Then nothing differs: a contract change must come with its regenerated files
    assert outdated == [], (
        f"generated files are stale: {', '.join(outdated)}; "
        "regenerate them with `python -m ingest.events.schemas` and commit the result"
    )


def test_an_event_of_every_type_round_trips_through_parquet_in_the_lake_layout(
    tmp_path: Path,
) -> None:
    # Given one event of every catalogue type, as lake rows
    received = AT + timedelta(seconds=3)
    rows = [
        to_row(sample_event(entry, session_id="sess-1"), received) for entry in CATALOGUE.values()
    ]
    assert {name for row in rows for name in row if row[name] is not None} >= {
        *MEASURE_COLUMNS,
        "track_id",
        "playlist_id",
        "pitch_id",
        "recipient_id",
        "share_id",
        "properties",
    }

    # When each is written as Parquet to its partition and the lake is read back
    for row in rows:
        folder = tmp_path / event_partition(row["dt"], row["event_type"])
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist([row], schema=file_schema()), folder / "part.parquet")
    table = pq.read_table(
        tmp_path / "events",
        partitioning=ds.partitioning(partition_schema(), flavor="hive"),
        schema=pa.unify_schemas([file_schema(), partition_schema()]),
    )

    # Then the rows come back equal, partition values included
    back = sorted(table.to_pylist(), key=lambda r: r["event_id"])
    assert back == sorted(rows, key=lambda r: r["event_id"])
    assert all(r["dt"] == "2026-03-01" for r in back)


def test_always_required_columns_exclude_only_the_sink_stamped_one() -> None:
    required = {c.name for c in COLUMNS if c.required}
    assert set(ALWAYS_REQUIRED) == required - SINK_STAMPED
