"""The outbox (migration 0005): change messages, and the SQL the publisher and sweeper run.

Triggers write one outbox row per affected track, with the track's version from
``cdc_versions`` (bumped in the same transaction, so versions follow commit order). A message
says only "track X changed, version N": the indexer reads the track's current state itself, so
duplicates, reordering and stale messages are harmless.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from psycopg.rows import dict_row

if TYPE_CHECKING:
    from psycopg import Connection

CHANNEL = "musicsync_outbox"
AGGREGATE_TRACK = "track"
Operation = Literal["upsert", "delete"]
_OPERATIONS = ("upsert", "delete")
# Backoff of a row whose send failed: 2^attempts seconds, at most this.
MAX_RETRY_DELAY_SECONDS = 300


class MalformedMessage(ValueError):
    """A message body that is not a change message (a poison message)."""


@dataclass(frozen=True)
class ChangeMessage:
    """One outbox row as it travels: which aggregate changed, and its version then."""

    outbox_id: int
    aggregate_type: str
    aggregate_id: uuid.UUID
    version: int
    operation: Operation

    def to_json(self) -> str:
        return json.dumps(
            {
                "aggregate_type": self.aggregate_type,
                "aggregate_id": str(self.aggregate_id),
                "version": self.version,
                "operation": self.operation,
                "outbox_id": self.outbox_id,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ChangeMessage:
        return cls(
            outbox_id=int(row["id"]),
            aggregate_type=str(row["aggregate_type"]),
            aggregate_id=row["aggregate_id"],
            version=int(row["version"]),
            operation=row["operation"],
        )


def parse_body(body: str) -> ChangeMessage:
    """A message from its SQS body: the JSON itself (SNS raw message delivery), or the SNS
    notification envelope holding it (raw delivery off). Raises ``MalformedMessage``."""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and data.get("Type") == "Notification":
            data = json.loads(data["Message"])
        if not isinstance(data, dict):
            raise MalformedMessage("not a JSON object")
        operation = data["operation"]
        if operation not in _OPERATIONS:
            raise MalformedMessage(f"unknown operation {operation!r}")
        version = data["version"]
        outbox_id = data.get("outbox_id", 0)
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise MalformedMessage(f"bad version {version!r}")
        if not isinstance(outbox_id, int) or isinstance(outbox_id, bool):
            raise MalformedMessage(f"bad outbox id {outbox_id!r}")
        aggregate_type = data["aggregate_type"]
        if not isinstance(aggregate_type, str):
            raise MalformedMessage(f"bad aggregate type {aggregate_type!r}")
        return ChangeMessage(
            outbox_id=outbox_id,
            aggregate_type=aggregate_type,
            aggregate_id=uuid.UUID(str(data["aggregate_id"])),
            version=version,
            operation=operation,
        )
    except MalformedMessage:
        raise
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise MalformedMessage(f"{type(exc).__name__}: {exc}") from exc


_CLAIM = """
SELECT id, aggregate_type, aggregate_id, version, operation
  FROM outbox
 WHERE published_at IS NULL
   AND (retry_at IS NULL OR retry_at <= now())
   {age}
 ORDER BY id
 LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED"""


def claim(
    conn: Connection[Any], limit: int, *, min_age: timedelta | None = None
) -> list[ChangeMessage]:
    """Lock up to ``limit`` unpublished rows that are due (oldest first), skipping rows another
    publisher holds; with ``min_age``, only rows at least that old. Held until the transaction
    ends."""
    params: dict[str, Any] = {"limit": limit}
    age = ""
    if min_age is not None:
        age = "AND created_at <= now() - %(min_age)s"
        params["min_age"] = min_age
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_CLAIM.format(age=age), params).fetchall()
    return [ChangeMessage.from_row(row) for row in rows]


def mark_published(conn: Connection[Any], ids: Sequence[int]) -> None:
    if ids:
        conn.execute(
            "UPDATE outbox SET published_at = now(), last_error = NULL WHERE id = ANY(%s)",
            (list(ids),),
        )


def mark_failed(conn: Connection[Any], errors: Mapping[int, str]) -> None:
    """Count a failed send and put the row back after a backoff (2^attempts s, capped), so that
    rows that keep failing never block those behind them."""
    if not errors:
        return
    ids = list(errors)
    conn.execute(
        f"""UPDATE outbox o
               SET attempts = o.attempts + 1,
                   last_error = left(e.error, 1000),
                   retry_at = now() + make_interval(
                       secs => least({MAX_RETRY_DELAY_SECONDS}, power(2, o.attempts)))
              FROM unnest(%s::bigint[], %s::text[]) AS e(id, error)
             WHERE o.id = e.id""",
        (ids, [errors[i] for i in ids]),
    )


def purge_published(conn: Connection[Any], older_than: timedelta, limit: int) -> int:
    """Delete up to ``limit`` rows published more than ``older_than`` ago; how many."""
    deleted = conn.execute(
        """DELETE FROM outbox WHERE id IN (
               SELECT id FROM outbox
                WHERE published_at IS NOT NULL AND published_at < now() - %s
                ORDER BY id LIMIT %s)""",
        (older_than, limit),
    ).rowcount
    return int(deleted)


def backlog(conn: Connection[Any]) -> tuple[int, float | None]:
    """How many rows wait to be published, and the age in seconds of the oldest (or None)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            """SELECT count(*) AS n, extract(epoch FROM now() - min(created_at)) AS age
                 FROM outbox WHERE published_at IS NULL"""
        ).fetchone()
    assert row is not None  # an aggregate always returns a row
    age = row["age"]
    return int(row["n"]), None if age is None else float(age)


def failing(conn: Connection[Any], limit: int) -> list[dict[str, Any]]:
    """Unpublished rows whose sends failed (the local profile's dead letters), oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT id, aggregate_type, aggregate_id, version, operation, created_at,
                      attempts, last_error, retry_at
                 FROM outbox WHERE published_at IS NULL AND attempts > 0
                ORDER BY id LIMIT %s""",
            (limit,),
        ).fetchall()


def retry_failing(conn: Connection[Any]) -> int:
    """Make every failing row due now (the local profile's redrive); how many."""
    return int(
        conn.execute(
            "UPDATE outbox SET retry_at = NULL WHERE published_at IS NULL AND attempts > 0"
        ).rowcount
    )
