"""Compaction of the events partitions: many small Parquet files become few of about a target size.

In each partition (``events/dt=.../event_type=...``) the candidates are the visible files
(``*.parquet``, not starting with ``.`` or ``_``) smaller than ``target_bytes``, listed once when
the partition's turn comes: files that appear later are left for the next run, and only
complete files are ever listed, since writers rename theirs in whole. Candidates are packed, in
name order, into groups of at most ``target_bytes`` on disk; each group of at least ``min_files``
becomes one file (zstd, ``file_schema()``, rows sorted by ``occurred_at, event_id``, every row
kept exactly once: duplicates of an ``event_id`` are dbt staging's business), named
``c-<UUIDv7>.parquet``. A partition whose candidates are all such outputs of earlier runs is left
alone, so a second run changes nothing.

Each group is swapped in by "hide, then reveal", so that a reader globbing ``*.parquet`` never
sees a row twice:

1. write the output as ``.<name>.compacting`` (hidden), the names of its inputs in its Parquet
   key-value metadata (``musicsync.compacted_from``); fsync it and the directory;
2. rename each input to ``.<input>.compacted`` (hidden);
3. rename the output to ``<name>.parquet`` (visible); fsync the directory;
4. remove the hidden inputs.

Between 2 and 3 (a few renames) the group's rows are invisible, never doubled. After a crash,
the next run first settles the partition: a ``.compacting`` output with some input already
hidden is finished (the rest hidden, then revealed: its metadata names the inputs); one with no
input hidden yet is deleted (nothing depended on it); hidden inputs left after their output was
revealed are removed. So a crash between 3 and 4 leaves no row visible twice, and one between
2 and 3 leaves rows hidden only until the next run. Runs are serialised by an exclusive
``flock`` on ``<root>/_compaction.lock``. A reader that listed the files before step 2 and opens
an input after it gets "file not found" and must retry, as with any file-swapping compaction.

Memory: one group is read and sorted at a time, several times ``target_bytes`` in Arrow.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.events.arrow import file_schema
from lake.layout import EVENTS, event_partition, exclusive, fsync, is_date
from services.core.ids import uuid7

MIB = 1024 * 1024
TARGET_BYTES = 128 * MIB
LOCK_NAME = "_compaction.lock"

_SCHEMA = file_schema()
_INPUTS_KEY = b"musicsync.compacted_from"
_OUTPUT_PREFIX = "c-"
_COMPACTING = ".compacting"
_COMPACTED = ".compacted"
_SORT_KEYS = [("occurred_at", "ascending"), ("event_id", "ascending")]


@dataclass(frozen=True)
class CompactionReport:
    """What a run rewrote: partitions touched, files merged and made, their rows and bytes."""

    partitions: int = 0
    files_before: int = 0
    files_after: int = 0
    rows: int = 0
    bytes_before: int = 0
    bytes_after: int = 0

    def __add__(self, other: CompactionReport) -> CompactionReport:
        return CompactionReport(
            self.partitions + other.partitions,
            self.files_before + other.files_before,
            self.files_after + other.files_after,
            self.rows + other.rows,
            self.bytes_before + other.bytes_before,
            self.bytes_after + other.bytes_after,
        )


def compact(
    root: Path,
    *,
    dt: str | None = None,
    target_bytes: int = TARGET_BYTES,
    min_files: int = 2,
) -> CompactionReport:
    """Merge the small files of every events partition (or of one date's) under ``root``."""
    if dt is not None and not is_date(dt):
        raise ValueError(f"invalid date: {dt!r} (YYYY-MM-DD)")
    events = root / EVENTS
    report = CompactionReport()
    if not events.is_dir():
        return report
    with exclusive(root / LOCK_NAME):
        for directory in _partitions(events, dt):
            _settle(directory)
            groups = _groups(directory, target_bytes, min_files)
            partition = sum((_merge(directory, group) for group in groups), CompactionReport())
            if groups:
                report += CompactionReport(partitions=1) + partition
    return report


def _partitions(events: Path, dt: str | None) -> list[Path]:
    found = []
    for directory in sorted(events.glob(f"dt={dt or '*'}/event_type=*")):
        if directory.is_dir():
            day = directory.parent.name.removeprefix("dt=")
            event_type = directory.name.removeprefix("event_type=")
            # The layout's own check: a stray folder stops the run instead of being compacted.
            found.append(events.parent / event_partition(day, event_type))
    return found


def _groups(directory: Path, target_bytes: int, min_files: int) -> list[list[tuple[str, int]]]:
    """Groups of (name, size) to merge, each under ``target_bytes`` and of ``min_files`` or more."""
    candidates = sorted(
        (entry.name, entry.stat().st_size)
        for entry in os.scandir(directory)
        if entry.name.endswith(".parquet")
        and not entry.name.startswith((".", "_"))
        and entry.is_file()
        and entry.stat().st_size < target_bytes
    )
    fresh = [name for name, _ in candidates if not name.startswith(_OUTPUT_PREFIX)]
    if len(candidates) < min_files or not fresh:
        return []
    groups: list[list[tuple[str, int]]] = [[]]
    for name, size in candidates:
        if groups[-1] and sum(s for _, s in groups[-1]) + size > target_bytes:
            groups.append([])
        groups[-1].append((name, size))
    return [group for group in groups if len(group) >= min_files]


def _merge(directory: Path, group: list[tuple[str, int]]) -> CompactionReport:
    inputs = [name for name, _ in group]
    table = pa.concat_tables(_read(directory / name) for name in inputs).sort_by(_SORT_KEYS)
    name = f"{_OUTPUT_PREFIX}{uuid7(datetime.now(UTC))}.parquet"
    temp = directory / f".{name}{_COMPACTING}"
    # zstd's default level: 3, 9 and 12 came within 2 % of it on the bench's events (their
    # random ids barely compress), only slower.
    metadata = {_INPUTS_KEY: json.dumps(inputs)}
    pq.write_table(table.replace_schema_metadata(metadata), temp, compression="zstd")
    fsync(temp)
    fsync(directory)
    _hide(directory, inputs)
    temp.replace(directory / name)
    fsync(directory)
    _remove_hidden(directory, inputs)
    return CompactionReport(
        files_before=len(group),
        files_after=1,
        rows=table.num_rows,
        bytes_before=sum(size for _, size in group),
        bytes_after=(directory / name).stat().st_size,
    )


def _read(path: Path) -> pa.Table:
    """A file's rows in today's schema; a column added since it was written reads as null."""
    table = pq.ParquetFile(path).read()
    columns = [
        table[f.name] if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in _SCHEMA
    ]
    return pa.table(columns, schema=_SCHEMA)


def _hidden(name: str) -> str:
    return f".{name}{_COMPACTED}"


def _hide(directory: Path, inputs: list[str]) -> None:
    for name in inputs:
        (directory / name).replace(directory / _hidden(name))


def _remove_hidden(directory: Path, inputs: list[str]) -> None:
    for name in inputs:
        (directory / _hidden(name)).unlink()


def _settle(directory: Path) -> None:
    """Finish what an interrupted run left in this partition (see the module docstring)."""
    for temp in sorted(directory.glob(f".*{_COMPACTING}")):
        try:
            inputs: list[str] = json.loads(pq.read_schema(temp).metadata[_INPUTS_KEY])
        except (pa.ArrowInvalid, KeyError, TypeError):
            inputs = []  # cut short while being written: its inputs were never touched
        if not any((directory / _hidden(name)).exists() for name in inputs):
            temp.unlink()
            continue
        _hide(directory, [name for name in inputs if (directory / name).exists()])
        temp.replace(directory / temp.name[1 : -len(_COMPACTING)])
        fsync(directory)
    for hidden in directory.glob(f".*{_COMPACTED}"):
        hidden.unlink()
