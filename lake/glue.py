"""The lake's Glue Data Catalog tables, applied through boto3 (idempotent, safe to re-run)."""

from __future__ import annotations

import contextlib
from typing import Any

from ingest.events.schemas import glue_table


def ensure_events_table(
    database: str, location: str, *, endpoint_url: str | None = None, region: str
) -> None:
    """Create the database if missing, then create or update the events table.

    ``location`` is the lake root (``s3://bucket`` or ``s3://bucket/prefix``); the table lives
    under its ``events/`` prefix.
    """
    import boto3

    glue: Any = boto3.client("glue", region_name=region, endpoint_url=endpoint_url)
    table = glue_table(location)
    # Create first and fall back on "already exists": a look-up first would race another deploy.
    with contextlib.suppress(glue.exceptions.AlreadyExistsException):
        glue.create_database(DatabaseInput={"Name": database})
    try:
        glue.create_table(DatabaseName=database, TableInput=table)
    except glue.exceptions.AlreadyExistsException:
        glue.update_table(DatabaseName=database, TableInput=table)
