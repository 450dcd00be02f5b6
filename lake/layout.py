"""Where everything lives in the lake: one module builds every path, for S3 and for disk.

``events/dt=YYYY-MM-DD/event_type=<type>/<file>.parquet`` and
``snapshots/<table>/dt=YYYY-MM-DD/<file>.parquet``; the same keys under an S3 bucket and prefix
or under a local folder.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

EVENTS = "events"
SNAPSHOTS = "snapshots"
QUALITY = "quality"
DEAD_LETTERS = "dead-letters"

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def is_date(text: str) -> bool:
    """True for a real calendar date written YYYY-MM-DD (a partition's ``dt``)."""
    try:
        return date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def fsync(path: Path) -> None:
    """Flush a file's (or a directory's entries') data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Athena finds a table's date partitions by projection: no crawler, no registered partition.
DT_PROJECTION: dict[str, str] = {
    "projection.enabled": "true",
    "projection.dt.type": "date",
    "projection.dt.format": "yyyy-MM-dd",
    "projection.dt.range": "2024-01-01,NOW",
    "projection.dt.interval": "1",
    "projection.dt.interval.unit": "DAYS",
}


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``lock_file`` (jobs that rewrite the lake take turns)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _check(value: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"invalid {what}: {value!r}")
    return value


def event_partition(dt: str, event_type: str) -> str:
    """The key prefix of one events partition (no trailing slash)."""
    return (
        f"{EVENTS}/dt={_check(dt, _DATE, 'date')}"
        f"/event_type={_check(event_type, _NAME, 'event type')}"
    )


def snapshot_partition(table: str, dt: str) -> str:
    return f"{SNAPSHOTS}/{_check(table, _NAME, 'table')}/dt={_check(dt, _DATE, 'date')}"


@dataclass(frozen=True)
class LakeLocation:
    """A lake root: ``s3://bucket/prefix`` or a local folder; joins keys onto it."""

    root: str

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    def url(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key.lstrip('/')}"
