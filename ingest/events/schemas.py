"""Everything generated from the event contract (``COLUMNS`` and ``CATALOGUE``).

The collector's JSON Schema, the Glue table, the Parquet schema's text and docs/events.md are
rendered here and checked in, so that a contract change shows in review. After changing the
envelope or the catalogue run ``python -m ingest.events.schemas``; a test fails while the
checked-in files differ from what this module renders.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingest.events.arrow import file_schema
from ingest.events.catalogue import (
    ALWAYS_REQUIRED,
    CATALOGUE,
    EVOLUTION_RULES,
    PROPERTIES_PREFIX,
    EventType,
)
from ingest.events.envelope import COLUMNS, PARTITION_COLUMNS, Column, ColumnKind
from lake.layout import DT_PROJECTION, EVENTS, LakeLocation

EVENTS_TABLE = "events"

# The collector fills these from the request (session or capability link, its own name and
# clock, the gateway's correlation id); a client that could send them could forge them.
SERVER_COLUMNS: tuple[str, ...] = (
    "actor_type",
    "actor_id",
    "pitch_id",
    "recipient_id",
    "source",
    "received_at",
    "correlation_id",
)

# Substituted by the infrastructure; the ${dt} and ${event_type} in the same file belong to
# Athena, so it must be a plain string replacement, not a template engine.
LAKE_ROOT_PLACEHOLDER = "s3://${lake_bucket}"

_INT64_MAX = 2**63 - 1

_JSON_TYPES: dict[ColumnKind, dict[str, Any]] = {
    "uuid": {"type": "string", "format": "uuid"},
    "string": {"type": "string", "minLength": 1, "maxLength": 256},
    "timestamp": {"type": "string", "format": "date-time"},
    # Bounded so that a value the collector accepts always fits the Parquet int64 column.
    "int": {"type": "integer", "minimum": 0, "maximum": _INT64_MAX},
    "json": {"type": "object"},
}

_GLUE_TYPES: dict[ColumnKind, str] = {
    "uuid": "string",
    "string": "string",
    "json": "string",
    "timestamp": "timestamp",
    "int": "bigint",
}


def _client_required(event_type: EventType) -> tuple[list[str], list[str]]:
    """The columns and the ``properties`` keys a client must send for this type."""
    columns = [
        c
        for c in event_type.required
        if not c.startswith(PROPERTIES_PREFIX) and c not in SERVER_COLUMNS
    ]
    keys = [
        c.removeprefix(PROPERTIES_PREFIX)
        for c in event_type.required
        if c.startswith(PROPERTIES_PREFIX)
    ]
    return columns, keys


def _type_rule(event_type: EventType) -> dict[str, Any]:
    columns, keys = _client_required(event_type)
    then: dict[str, Any] = {"properties": {"event_version": {"const": event_type.version}}}
    if keys:
        then["properties"]["properties"] = {"required": keys}
    if columns:
        then["required"] = columns
    return {
        # Without "required" an event lacking event_type would match every rule.
        "if": {
            "properties": {"event_type": {"const": event_type.name}},
            "required": ["event_type"],
        },
        "then": then,
    }


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) the collector enforces for one client-submitted event."""
    client_types = [t for t in CATALOGUE.values() if t.client_side]
    event_type = next(c for c in PARTITION_COLUMNS if c.name == "event_type")
    properties: dict[str, Any] = {
        "event_type": {
            "description": event_type.description,
            "enum": [t.name for t in client_types],
        }
    }
    for column in COLUMNS:
        if column.name in SERVER_COLUMNS:
            continue
        kind = dict(_JSON_TYPES[column.kind])
        if column.name == "event_version":
            kind["minimum"] = 1
        properties[column.name] = {"description": column.description, **kind}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Client usage event",
        "description": (
            "One usage event as a client sends it to the collector. The collector sets the "
            "actor, pitch and recipient from the caller's session or capability link, and the "
            "source, correlation id and receipt time itself. Validate with format assertion on "
            "(uuid, date-time)."
        ),
        "type": "object",
        "properties": properties,
        "required": ["event_type", *(c for c in ALWAYS_REQUIRED if c not in SERVER_COLUMNS)],
        "additionalProperties": False,
        "allOf": [_type_rule(t) for t in client_types],
    }


def _glue_column(column: Column) -> dict[str, str]:
    return {"Name": column.name, "Type": _GLUE_TYPES[column.kind], "Comment": column.description}


def glue_table(location: str) -> dict[str, Any]:
    """The Glue ``TableInput`` of the events table under the lake root ``location``."""
    events = LakeLocation(location).url(EVENTS)
    return {
        "Name": EVENTS_TABLE,
        "Description": "Usage events (generated from ingest/events; see docs/events.md).",
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "classification": "parquet",
            "EXTERNAL": "TRUE",
            **DT_PROJECTION,
            "projection.event_type.type": "enum",
            "projection.event_type.values": ",".join(CATALOGUE),
            "storage.location.template": f"{events}/dt=${{dt}}/event_type=${{event_type}}/",
        },
        "StorageDescriptor": {
            "Columns": [_glue_column(c) for c in COLUMNS],
            "Location": f"{events}/",
            "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "SerdeInfo": {
                "SerializationLibrary": (
                    "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
                ),
                "Parameters": {"serialization.format": "1"},
            },
        },
        "PartitionKeys": [_glue_column(c) for c in PARTITION_COLUMNS],
    }


def _code(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names) or "nothing more"


def _event_section(t: EventType) -> list[str]:
    return [
        f"### `{t.name}` (version {t.version})",
        "",
        t.description,
        "",
        f"- Emitted by: {t.emitted_by}",
        f"- Actors: {', '.join(t.actor_types)}",
        f"- Requires: {_code(t.required)}",
        f"- Client-side: {'yes' if t.client_side else 'no'}",
        "",
    ]


def catalogue_markdown() -> str:
    """docs/events.md: the envelope, every event type, and the evolution rules."""
    lines = [
        "# Usage events",
        "",
        "<!-- Generated by `python -m ingest.events.schemas` from ingest/events/envelope.py and",
        "     ingest/events/catalogue.py. Edit those, not this file. -->",
        "",
        "Every usage event is one row of the lake's `events` table, stored as "
        "`events/dt=YYYY-MM-DD/event_type=<type>/<file>.parquet` (`dt` is the UTC date of "
        "`occurred_at`). Deduplicate on `event_id`.",
        "",
        "## Envelope",
        "",
        "| column | type | required | description |",
        "|---|---|---|---|",
    ]
    for column in PARTITION_COLUMNS:
        lines.append(
            f"| `{column.name}` | {_GLUE_TYPES[column.kind]} (partition) | yes "
            f"| {column.description} |"
        )
    for column in COLUMNS:
        required = "yes" if column.required else "no"
        lines.append(
            f"| `{column.name}` | {_GLUE_TYPES[column.kind]} | {required} | {column.description} |"
        )
    lines += [
        "",
        "`properties` holds the rest as a JSON object; `properties.<key>` below names a key in "
        "it. Measures are never negative. A `user` or `recipient` actor always has an "
        "`actor_id` (for a recipient, the recipient id).",
        "",
        "## Event types",
        "",
        f"Beyond the always-required columns ({_code(ALWAYS_REQUIRED)}, and `received_at`, "
        "which the sink sets), each type requires the columns listed. Client-side types may "
        "come from clients through the collector, which validates them against "
        "`ingest/events/generated/event.schema.json`.",
        "",
        "| event type | version | emitted by | actors | client-side |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| [`{t.name}`](#{t.name}-version-{t.version}) | {t.version} | {t.emitted_by} "
        f"| {', '.join(t.actor_types)} | {'yes' if t.client_side else 'no'} |"
        for t in CATALOGUE.values()
    ]
    lines.append("")
    for t in CATALOGUE.values():
        lines += _event_section(t)
    lines += ["## Evolution", ""]
    lines += [f"- {rule}" for rule in EVOLUTION_RULES]
    return "\n".join(lines) + "\n"


def _json_text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


GENERATED: dict[str, Callable[[], str]] = {
    "ingest/events/generated/event.schema.json": lambda: _json_text(json_schema()),
    "ingest/events/generated/glue_events_table.json": lambda: _json_text(
        glue_table(LAKE_ROOT_PLACEHOLDER)
    ),
    "ingest/events/generated/events.arrow.txt": lambda: file_schema().to_string() + "\n",
    "docs/events.md": catalogue_markdown,
}


def render_all(root: Path) -> list[Path]:
    """Write every generated file under the repository root ``root``."""
    written = []
    for relative, render in GENERATED.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(), encoding="utf-8", newline="\n")
        written.append(path)
    return written


def stale(root: Path) -> list[str]:
    """The generated paths whose checked-in text is missing or differs from a fresh render."""
    return [
        relative
        for relative, render in GENERATED.items()
        if not (root / relative).is_file()
        or (root / relative).read_text(encoding="utf-8") != render()
    ]


if __name__ == "__main__":
    for path in render_all(Path(__file__).resolve().parents[2]):
        print(path)
