"""The Parquet schema of event files, derived from the envelope's columns."""

from __future__ import annotations

import pyarrow as pa

from ingest.events.envelope import COLUMNS, PARTITION_COLUMNS, ColumnKind

_ARROW_TYPES: dict[ColumnKind, pa.DataType] = {
    "uuid": pa.string(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "int": pa.int64(),
    "json": pa.string(),
}


def file_schema() -> pa.Schema:
    """Columns inside each Parquet file (the partition columns are in its path)."""
    return pa.schema(
        [pa.field(c.name, _ARROW_TYPES[c.kind], nullable=not c.required) for c in COLUMNS]
    )


def partition_schema() -> pa.Schema:
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.kind]) for c in PARTITION_COLUMNS])
