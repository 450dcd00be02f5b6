"""Quality checks on the events partitions: a Great Expectations suite for each.

Each partition (``events/dt=D/event_type=T``) is read whole from its visible Parquet files into
a pandas dataframe and validated by a suite built from the envelope and the catalogue entry of
``T``: the envelope's required columns are not null, ``actor_type`` is a known actor, ``event_id``
is a unique UUID, ``occurred_at`` lies between 2024-01-01 and ``received_at`` plus 5 minutes of
clock skew and falls on the partition's date, measures are not negative, object ids are UUIDs,
and the entry's required columns (``properties.<key>`` included) are filled. A partition whose
date or event type is not valid fails without running the suite.

A suite run costs ~0.3 s whatever the size of its data, so the partitions of one event type
due for a check are validated together (up to 50,000 rows at a time; each row's date checked
against its own partition's). When such a run fails, each of its partitions is validated again
on its own, so that a result always names its own partition's failures and counts.

Results live beside the lake: ``quality/events/dt=D/event_type=T/result.json`` holds the
outcome, a summary of each expectation's result, and the fingerprint of the files checked (their
names and sizes). A partition is checked again only when its fingerprint changes, which is
enough because lake files are immutable and uniquely named (writers and compaction rename new
files in; they never rewrite one). ``quality/quarantine.json`` lists the partitions whose latest
result failed, with the reasons, for the marts to leave out; nothing in the lake is deleted.
A result of a partition that passed with others says how many (``validated_with``): its
expectations' counts are for all of them, its ``rows`` for itself.
A run holds compaction's lock (``<root>/_compaction.lock``): compaction swaps a partition's
files by renames that a check must not read half-done, and the lock serialises checks as well.

Great Expectations takes seconds to import, so it is imported only when a partition needs
checking, and one context serves a whole run.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.dataset as ds

from ingest.events.arrow import file_schema
from ingest.events.catalogue import CATALOGUE, PROPERTIES_PREFIX, EventType
from ingest.events.envelope import ACTOR_TYPES, COLUMNS, MEASURE_COLUMNS, OBJECT_COLUMNS
from lake import compaction
from lake.layout import EVENTS, QUALITY, exclusive, is_date

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]
    from great_expectations.core import ExpectationSuite, ExpectationSuiteValidationResult
    from great_expectations.core.batch_definition import BatchDefinition

    from services.core.clock import Clock

log = logging.getLogger(__name__)

RESULT_NAME = "result.json"
QUARANTINE_NAME = "quarantine.json"

# Lower case only: ids are written with str(uuid.UUID), and the marts join on the text.
UUID_REGEX = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
EARLIEST_OCCURRED_AT = datetime(2024, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(minutes=5)

# Columns computed from the files for expectations that GE cannot state on the raw columns.
OCCURRED_ON = "occurred_on"
OCCURRED_AFTER_RECEIVED_S = "occurred_after_received_s"
# The date of each row's partition, when several partitions are validated at once.
PARTITION_DT = "partition_dt"
_ROWS_TOGETHER = 50_000

_REQUIRED = tuple(c.name for c in COLUMNS if c.required)
# Every column nullable, so that a null where the envelope forbids one reaches the suite as a
# failed expectation instead of stopping the read.
_READ_SCHEMA = pa.schema([f.with_nullable(True) for f in file_schema()])
_SAMPLE_IN_REASON = 3
_GX = "great_expectations"


@dataclass(frozen=True)
class QualityReport:
    """What a run did, by partition key (``events/dt=D/event_type=T``)."""

    passed: tuple[str, ...] = ()
    failed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()

    @property
    def checked(self) -> tuple[str, ...]:
        return (*self.passed, *self.failed)


@dataclass(frozen=True)
class _Partition:
    key: str
    dt: str
    event_type: str
    files: tuple[Path, ...]

    @property
    def fingerprint(self) -> list[dict[str, Any]]:
        return [{"name": f.name, "size": f.stat().st_size} for f in self.files]


@dataclass(frozen=True)
class _Outcome:
    success: bool
    reasons: list[str]
    rows: int | None = None
    statistics: dict[str, Any] | None = None
    expectations: list[dict[str, Any]] = field(default_factory=list)
    # Partitions validated in the same suite run (their expectations' counts are for all).
    validated_with: int = 1


def check(root: Path, *, dt: str | None = None, clock: Clock) -> QualityReport:
    """Check every events partition under ``root`` (or one date's) that is new or changed."""
    if dt is not None and not is_date(dt):
        raise ValueError(f"invalid date: {dt!r} (YYYY-MM-DD)")
    passed: list[str] = []
    failed: dict[str, tuple[str, ...]] = {}
    skipped: list[str] = []
    with exclusive(root / compaction.LOCK_NAME):
        due: list[tuple[_Partition, list[dict[str, Any]]]] = []
        for partition in _partitions(root, dt):
            fingerprint = partition.fingerprint
            previous = _read_json(_result_path(root, partition))
            if previous is not None and previous.get("fingerprint") == fingerprint:
                skipped.append(partition.key)
            else:
                due.append((partition, fingerprint))
        outcomes = _outcomes([partition for partition, _ in due])
        for partition, fingerprint in due:
            outcome = outcomes[partition.key]
            _write_result(root, partition, outcome, fingerprint, clock.now())
            if outcome.success:
                passed.append(partition.key)
            else:
                failed[partition.key] = tuple(outcome.reasons)
                log.warning("quarantined %s: %s", partition.key, "; ".join(outcome.reasons))
        _write_quarantine(root, clock.now())
    return QualityReport(tuple(passed), failed, tuple(skipped))


def _outcomes(partitions: Sequence[_Partition]) -> dict[str, _Outcome]:
    """Each partition's outcome: those of one event type validated together where they pass."""
    outcomes: dict[str, _Outcome] = {}
    by_type: dict[str, list[_Partition]] = {}
    for partition in partitions:
        problem = _path_problem(partition)
        if problem is not None:
            outcomes[partition.key] = _Outcome(success=False, reasons=[problem])
        else:
            by_type.setdefault(partition.event_type, []).append(partition)
    if by_type:
        validator = _Validator()
        for group in by_type.values():
            outcomes.update(validator.check_group(group))
    return outcomes


def _partitions(root: Path, dt: str | None) -> Iterator[_Partition]:
    """Partitions with at least one visible file; hidden ones are writers' and compaction's."""
    events = root / EVENTS
    if not events.is_dir():
        return
    pattern = f"dt={dt or '*'}/event_type=*"
    for directory in sorted(p for p in events.glob(pattern) if p.is_dir()):
        files = tuple(
            sorted(
                p
                for p in directory.glob("*.parquet")
                if p.is_file() and not p.name.startswith((".", "_"))
            )
        )
        if files:
            yield _Partition(
                directory.relative_to(root).as_posix(),
                directory.parent.name.removeprefix("dt="),
                directory.name.removeprefix("event_type="),
                files,
            )


def _path_problem(partition: _Partition) -> str | None:
    """Why the partition's path alone fails it, if it does: no suite can apply."""
    if not is_date(partition.dt):
        return f"invalid partition date {partition.dt!r}"
    if partition.event_type not in CATALOGUE:
        return f"unknown event type {partition.event_type!r}: not in the catalogue"
    return None


def _result_path(root: Path, partition: _Partition) -> Path:
    return root / QUALITY / partition.key / RESULT_NAME


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        # A result is a cache of a check: an unreadable one is checked again, not trusted.
        log.warning("unreadable quality result %s; checking again", path)
        return None


def _write_json(path: Path, value: Any) -> None:
    """Write ``value`` so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temp.open("w") as out:
        json.dump(value, out, indent=2, default=str)
        out.flush()
        os.fsync(out.fileno())
    temp.replace(path)


def _write_result(
    root: Path,
    partition: _Partition,
    outcome: _Outcome,
    fingerprint: list[dict[str, Any]],
    checked_at: datetime,
) -> None:
    _write_json(
        _result_path(root, partition),
        {
            "partition": partition.key,
            "dt": partition.dt,
            "event_type": partition.event_type,
            "success": outcome.success,
            "reasons": outcome.reasons,
            "checked_at": checked_at.isoformat(),
            "fingerprint": fingerprint,
            "rows": outcome.rows,
            "statistics": outcome.statistics,
            "expectations": outcome.expectations,
            "validated_with": outcome.validated_with,
        },
    )


def _write_quarantine(root: Path, updated_at: datetime) -> None:
    """List the partitions whose latest result failed, among those in the lake now.

    Derived from the results each run, so it cannot drift from them: a partition that passes
    again, or whose files are gone, drops out.
    """
    entries = []
    for partition in _partitions(root, None):
        result = _read_json(_result_path(root, partition))
        if result is not None and not result.get("success", False):
            entries.append(
                {
                    "partition": partition.key,
                    "dt": partition.dt,
                    "event_type": partition.event_type,
                    "reasons": result.get("reasons", []),
                    "checked_at": result.get("checked_at"),
                }
            )
    _write_json(
        root / QUALITY / QUARANTINE_NAME,
        {"updated_at": updated_at.isoformat(), "partitions": entries},
    )


class _Validator:
    """One ephemeral GE context, pandas data source and batch definition for a whole run."""

    def __init__(self) -> None:
        with _quiet():
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig
        # Quiet again: importing GE set some of its own loggers' levels.
        with _quiet():
            context = gx.get_context(mode="ephemeral")
        # GE draws tqdm bars on stderr for every validation unless told not to.
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = context.data_sources.add_pandas("lake").add_dataframe_asset(EVENTS)
        self._batches: BatchDefinition[Any] = asset.add_batch_definition_whole_dataframe(
            "partition"
        )

    def check_group(self, partitions: Sequence[_Partition]) -> dict[str, _Outcome]:
        """Partitions of one event type: validated together, up to ``_ROWS_TOGETHER`` rows at
        a time (a suite run costs ~0.3 s whatever its size); a group that fails is validated
        again partition by partition, so that each result names its own failures."""
        entry = CATALOGUE[partitions[0].event_type]
        outcomes: dict[str, _Outcome] = {}
        chunk: list[tuple[_Partition, pd.DataFrame]] = []
        rows = 0
        for partition in partitions:
            try:
                frame = _read_frame(partition.files, entry)
            except (OSError, pa.ArrowException) as error:
                outcomes[partition.key] = _Outcome(
                    success=False, reasons=[f"unreadable Parquet files: {error}"]
                )
                continue
            chunk.append((partition, frame))
            rows += len(frame)
            if rows >= _ROWS_TOGETHER:
                outcomes.update(self._check_chunk(entry, chunk))
                chunk, rows = [], 0
        if chunk:
            outcomes.update(self._check_chunk(entry, chunk))
        return outcomes

    def _check_chunk(
        self, entry: EventType, chunk: Sequence[tuple[_Partition, pd.DataFrame]]
    ) -> dict[str, _Outcome]:
        import pandas as pd

        if len(chunk) > 1:
            frames = [frame.assign(**{PARTITION_DT: part.dt}) for part, frame in chunk]
            together = self._validate(pd.concat(frames, ignore_index=True), _suite(entry, None))
            if together.success:
                return {
                    part.key: replace(together, rows=len(frame), validated_with=len(chunk))
                    for part, frame in chunk
                }
        return {part.key: self._validate(frame, _suite(entry, part.dt)) for part, frame in chunk}

    def _validate(self, frame: pd.DataFrame, suite: ExpectationSuite) -> _Outcome:
        with _quiet():
            batch = self._batches.get_batch(batch_parameters={"dataframe": frame})
            result = batch.validate(suite)
        return _summarise(result, rows=len(frame))


@contextmanager
def _quiet() -> Iterator[None]:
    """Keep GE's routine chatter (some 130 INFO lines on import alone) out of the run's log.

    Every GE logger, not only the package's: some of its modules set a level of their own.
    """
    names = {n for n in logging.root.manager.loggerDict if n.split(".")[0] == _GX}
    loggers = [logging.getLogger(n) for n in sorted({_GX, *names})]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _read_frame(files: Sequence[Path], entry: EventType) -> pd.DataFrame:
    """The partition's rows, with the computed columns the suite needs."""
    import pandas as pd

    table = ds.dataset([str(f) for f in files], schema=_READ_SCHEMA, format="parquet").to_table()
    # Nullable integers, so that a measure with nulls keeps its values (and samples) integral.
    frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    frame[OCCURRED_ON] = frame["occurred_at"].dt.strftime("%Y-%m-%d")
    # Seconds rather than a column pair: GE's pair expectation reads tz-aware columns through
    # Series.values, which pandas 3.1 deprecates with a warning per run.
    ahead = frame["occurred_at"] - frame["received_at"]
    frame[OCCURRED_AFTER_RECEIVED_S] = ahead.dt.total_seconds()
    keys = [
        c.removeprefix(PROPERTIES_PREFIX) for c in entry.required if c.startswith(PROPERTIES_PREFIX)
    ]
    if keys:
        documents = [_document(text) for text in frame["properties"]]
        for key in keys:
            # As in the catalogue's own validation, an empty value is a missing one.
            frame[PROPERTIES_PREFIX + key] = [_present(d.get(key)) for d in documents]
    return frame


def _present(value: Any) -> Any:
    return None if value == "" else value


def _document(text: object) -> dict[str, Any]:
    if not isinstance(text, str):
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _suite(entry: EventType, dt: str | None) -> ExpectationSuite:
    """The suite of one partition of ``entry`` on ``dt``; with no ``dt``, of several partitions
    at once (each row's date checked against its partition's, in the column PARTITION_DT)."""
    # Imported from their own modules: great_expectations.expectations does not declare what it
    # exports, so mypy --strict rejects names taken from it.
    from great_expectations import ExpectationSuite
    from great_expectations.expectations.core.expect_column_pair_values_to_be_equal import (
        ExpectColumnPairValuesToBeEqual,
    )
    from great_expectations.expectations.core.expect_column_values_to_be_between import (
        ExpectColumnValuesToBeBetween,
    )
    from great_expectations.expectations.core.expect_column_values_to_be_in_set import (
        ExpectColumnValuesToBeInSet,
    )
    from great_expectations.expectations.core.expect_column_values_to_be_unique import (
        ExpectColumnValuesToBeUnique,
    )
    from great_expectations.expectations.core.expect_column_values_to_match_regex import (
        ExpectColumnValuesToMatchRegex,
    )
    from great_expectations.expectations.core.expect_column_values_to_not_be_null import (
        ExpectColumnValuesToNotBeNull,
    )

    suite = ExpectationSuite(name=f"{EVENTS}.{entry.name}")
    for column in dict.fromkeys((*_REQUIRED, *entry.required)):
        suite.add_expectation(ExpectColumnValuesToNotBeNull(column=column))
    suite.add_expectation(
        ExpectColumnValuesToBeInSet(column="actor_type", value_set=list(ACTOR_TYPES))
    )
    suite.add_expectation(ExpectColumnValuesToBeUnique(column="event_id"))
    for column in ("event_id", *OBJECT_COLUMNS):
        suite.add_expectation(ExpectColumnValuesToMatchRegex(column=column, regex=UUID_REGEX))
    suite.add_expectation(
        ExpectColumnValuesToBeBetween(column="occurred_at", min_value=EARLIEST_OCCURRED_AT)
    )
    suite.add_expectation(
        ExpectColumnValuesToBeBetween(
            column=OCCURRED_AFTER_RECEIVED_S, max_value=CLOCK_SKEW.total_seconds()
        )
    )
    if dt is None:
        suite.add_expectation(
            ExpectColumnPairValuesToBeEqual(column_A=OCCURRED_ON, column_B=PARTITION_DT)
        )
    else:
        suite.add_expectation(ExpectColumnValuesToBeInSet(column=OCCURRED_ON, value_set=[dt]))
    for column in MEASURE_COLUMNS:
        suite.add_expectation(ExpectColumnValuesToBeBetween(column=column, min_value=0))
    return suite


def _summarise(result: ExpectationSuiteValidationResult, *, rows: int) -> _Outcome:
    """GE's validation result, cut down to what a reader of the result file needs."""
    expectations = []
    reasons = []
    for item in result.results:
        # GE's JSON form: sample values already made serialisable (timestamps, numpy, NaN).
        data = _mapping(item.to_json_dict())
        config = _mapping(data.get("expectation_config"))
        kwargs = {k: v for k, v in _mapping(config.get("kwargs")).items() if k != "batch_id"}
        details = _mapping(data.get("result"))
        summary = {
            "expectation": config.get("type"),
            "kwargs": kwargs,
            "success": bool(data.get("success")),
            "element_count": details.get("element_count"),
            "missing_count": details.get("missing_count"),
            "unexpected_count": details.get("unexpected_count"),
            "unexpected_sample": details.get("partial_unexpected_list"),
            "error": _exception_message(data.get("exception_info")),
        }
        expectations.append(summary)
        if not summary["success"]:
            reasons.append(_reason(summary))
    return _Outcome(
        success=bool(result.success),
        reasons=reasons,
        rows=rows,
        statistics=dict(result.statistics),
        expectations=expectations,
    )


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _exception_message(info: Any) -> str | None:
    """The first error GE caught; its shape is flat, or keyed by metric when a metric failed."""
    if not isinstance(info, dict):
        return None
    candidates = [info, *(v for v in info.values() if isinstance(v, dict))]
    for candidate in candidates:
        if candidate.get("raised_exception"):
            return str(candidate.get("exception_message"))
    return None


def _reason(summary: Mapping[str, Any]) -> str:
    """One line naming the expectation, its column and what broke it."""
    kwargs = summary["kwargs"]
    name = f"{summary['expectation']}({kwargs.get('column', '')})"
    if summary["error"] is not None:
        return f"{name}: could not be evaluated: {summary['error']}"
    sample = (summary["unexpected_sample"] or [])[:_SAMPLE_IN_REASON]
    return (
        f"{name}: {summary['unexpected_count']} of {summary['element_count']} rows unexpected, "
        f"e.g. {json.dumps(sample, default=str)}"
    )
