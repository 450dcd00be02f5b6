"""The events table in the Glue Data Catalog, against moto, read back through awswrangler."""

from __future__ import annotations

import uuid
from typing import Any

import awswrangler as wr
import boto3
import pytest

from ingest.events.arrow import file_schema
from ingest.events.catalogue import CATALOGUE
from ingest.events.schemas import EVENTS_TABLE
from lake.glue import ensure_events_table
from tests.support.aws import REGION

pytestmark = pytest.mark.integration

LAKE_ROOT = "s3://musicsync-lake-test"


@pytest.fixture
def database() -> str:
    return f"musicsync_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def session(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    """A boto3 session, with awswrangler pointed at moto for this test only."""
    monkeypatch.setattr(wr.config, "glue_endpoint_url", moto_endpoint)
    monkeypatch.setattr(wr.config, "s3_endpoint_url", moto_endpoint)
    return boto3.Session(region_name=REGION)


def _glue(moto_endpoint: str) -> Any:
    return boto3.client("glue", region_name=REGION, endpoint_url=moto_endpoint)


def test_ensure_events_table_creates_the_database_and_the_table(
    moto_endpoint: str, database: str, session: boto3.Session
) -> None:
    # Given an empty catalogue
    assert database not in wr.catalog.databases(boto3_session=session)["Database"].tolist()

    # When the events table is ensured
    ensure_events_table(database, LAKE_ROOT, endpoint_url=moto_endpoint, region=REGION)

    # Then the database and the table exist, with the file columns then the partition keys
    assert wr.catalog.does_table_exist(database, EVENTS_TABLE, boto3_session=session)
    table = wr.catalog.table(database, EVENTS_TABLE, boto3_session=session)
    columns = table[~table["Partition"]]
    partitions = table[table["Partition"]]
    assert columns["Column Name"].tolist() == file_schema().names
    assert dict(zip(columns["Column Name"], columns["Type"], strict=True))["occurred_at"] == (
        "timestamp"
    )
    assert dict(zip(columns["Column Name"], columns["Type"], strict=True))["bytes"] == "bigint"
    assert partitions["Column Name"].tolist() == ["dt", "event_type"]
    assert wr.catalog.get_table_location(database, EVENTS_TABLE, boto3_session=session) == (
        f"{LAKE_ROOT}/events/"
    )


def test_ensure_events_table_carries_the_partition_projection(
    moto_endpoint: str, database: str, session: boto3.Session
) -> None:
    ensure_events_table(database, LAKE_ROOT, endpoint_url=moto_endpoint, region=REGION)

    parameters = wr.catalog.get_table_parameters(database, EVENTS_TABLE, boto3_session=session)

    assert parameters["projection.enabled"] == "true"
    assert parameters["projection.dt.type"] == "date"
    assert parameters["projection.dt.format"] == "yyyy-MM-dd"
    assert parameters["projection.dt.range"] == "2024-01-01,NOW"
    assert parameters["projection.dt.interval"] == "1"
    assert parameters["projection.dt.interval.unit"] == "DAYS"
    assert parameters["projection.event_type.type"] == "enum"
    assert parameters["projection.event_type.values"].split(",") == list(CATALOGUE)
    assert parameters["storage.location.template"] == (
        f"{LAKE_ROOT}/events/dt=${{dt}}/event_type=${{event_type}}/"
    )


def test_ensuring_the_table_again_updates_it_in_place(
    moto_endpoint: str, database: str, session: boto3.Session
) -> None:
    # Given an events table already in the catalogue, with a stale projection
    ensure_events_table(database, LAKE_ROOT, endpoint_url=moto_endpoint, region=REGION)
    glue = _glue(moto_endpoint)
    table = glue.get_table(DatabaseName=database, Name=EVENTS_TABLE)["Table"]
    glue.update_table(
        DatabaseName=database,
        TableInput={
            "Name": EVENTS_TABLE,
            "StorageDescriptor": table["StorageDescriptor"],
            "PartitionKeys": table["PartitionKeys"],
            "Parameters": {**table["Parameters"], "projection.event_type.values": "old_type"},
        },
    )

    # When it is ensured again, against another lake root
    ensure_events_table(database, f"{LAKE_ROOT}/v2", endpoint_url=moto_endpoint, region=REGION)

    # Then there is still one table, updated to the current contract
    assert wr.catalog.get_table_location(database, EVENTS_TABLE, boto3_session=session) == (
        f"{LAKE_ROOT}/v2/events/"
    )
    parameters = wr.catalog.get_table_parameters(database, EVENTS_TABLE, boto3_session=session)
    assert parameters["projection.event_type.values"].split(",") == list(CATALOGUE)
    tables = glue.get_tables(DatabaseName=database)["TableList"]
    assert [t["Name"] for t in tables] == [EVENTS_TABLE]
