"""The analytics build: the lake's quality checks, then the dbt project, into a DuckDB warehouse.

``build(data_dir)`` is what ``musicsync analytics build`` runs:

1. The quality checks (``lake.quality.check``, as ``musicsync lake check`` runs them) on the
   events partitions that are new or changed since their last check. Partitions that fail stay
   in the lake but are left out of the marts, with one exception: a partition whose only failure
   is a repeated ``event_id`` is kept, since resent events are expected and staging keeps one
   copy of each (``stg_lake__events``). Partitions quarantined by an earlier check are left out
   too, so a build without checks (``check_quality=False``) honours them.
2. ``dbt build`` of the project in ``dbt/`` (every model and data test), in this process
   through ``dbtRunner``, with the ``local`` target (dbt-duckdb): the sources read the lake's
   Parquet files, the marts go to ``<data_dir>/analytics/warehouse.duckdb``; dbt's run
   artefacts and log go to ``<data_dir>/analytics/target`` and ``.../logs``. Incremental models
   recompute the last days built and ``lookback_days`` before (late events); ``full_refresh``
   rebuilds them from all of the lake. dbt's unit tests (they test the models' logic, not the
   data) run on a full refresh and whenever the project changed since the last good build
   (a fingerprint of its files is kept beside the warehouse).

``on_model(name, status, seconds)`` is called as each model starts (status ``"started"``,
0 seconds) and finishes (dbt's status: ``"success"``, ``"error"``, ``"skipped"``, with its run
time), for a progress display. The result is a ``BuildSummary``; a failure raises
``AnalyticsBuildError`` whose message names each failing model or test and where dbt's log is.

The dbt project is found by ``project_dir()``: ``$MUSICSYNC_DBT_PROJECT_DIR`` when set, else the
``dbt/`` folder beside the ``musicsync`` package (the repository root, as in an editable
install), else a copy shipped inside the package as ``musicsync/dbt_project``.

One build at a time per data dir (a lock file beside the warehouse); compaction waits for it, as
it rewrites the partitions dbt reads (the lake's compaction lock is held while dbt runs).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lake.layout import EVENTS, QUALITY, SNAPSHOTS, exclusive

if TYPE_CHECKING:
    from lake.quality import QualityReport
    from services.core.clock import Clock

log = logging.getLogger(__name__)

ANALYTICS_DIR = "analytics"
WAREHOUSE_NAME = "warehouse.duckdb"
PROJECT_ENV = "MUSICSYNC_DBT_PROJECT_DIR"
TARGET = "local"
# The expectation a resent event fails: staging deduplicates, so it is no reason to leave a
# partition out.
_DUPLICATE_EXPECTATION = "expect_column_values_to_be_unique"

ModelCallback = Callable[[str, str, float], None]

_in_process = threading.Lock()  # dbt's adapters and event manager are process-wide


class AnalyticsBuildError(Exception):
    """The build could not finish; the message says what failed and where to look."""


@dataclass(frozen=True)
class NodeResult:
    """One dbt node's outcome (a model, a data test or a unit test)."""

    name: str
    resource_type: str
    status: str
    seconds: float
    message: str | None = None
    failures: int | None = None


@dataclass(frozen=True)
class BuildSummary:
    warehouse: Path
    seconds: float
    full_refresh: bool
    nodes: tuple[NodeResult, ...]
    quality: QualityReport | None = None
    # Partitions (``events/dt=D/event_type=T``) left out of the marts, and those kept although
    # they failed only on repeated event ids.
    left_out: tuple[str, ...] = ()
    duplicates_tolerated: tuple[str, ...] = ()
    log_path: Path | None = None
    dbt_seconds: float = 0.0

    def _of(self, *types: str) -> list[NodeResult]:
        return [n for n in self.nodes if n.resource_type in types]

    @property
    def models(self) -> tuple[NodeResult, ...]:
        return tuple(self._of("model", "seed", "snapshot"))

    @property
    def models_built(self) -> int:
        return sum(1 for n in self.models if n.status == "success")

    @property
    def tests(self) -> tuple[NodeResult, ...]:
        return tuple(self._of("test", "unit_test"))

    @property
    def tests_passed(self) -> int:
        return sum(1 for n in self.tests if n.status == "pass")

    @property
    def tests_warned(self) -> int:
        return sum(1 for n in self.tests if n.status == "warn")

    @property
    def tests_failed(self) -> int:
        return sum(1 for n in self.tests if n.status in ("fail", "error"))

    @property
    def warnings(self) -> tuple[NodeResult, ...]:
        return tuple(n for n in self.tests if n.status == "warn")


def warehouse_path(data_dir: Path) -> Path:
    """The DuckDB file holding the marts."""
    return data_dir / ANALYTICS_DIR / WAREHOUSE_NAME


def project_dir() -> Path:
    """The dbt project: ``$MUSICSYNC_DBT_PROJECT_DIR``, the repository's ``dbt/``, or the copy
    shipped in the package; raises ``AnalyticsBuildError`` when none is there."""
    candidates = []
    if os.environ.get(PROJECT_ENV):
        candidates.append(Path(os.environ[PROJECT_ENV]))
    package = Path(__file__).resolve().parent
    candidates += [package.parent / "dbt", package / "dbt_project"]
    for candidate in candidates:
        if (candidate / "dbt_project.yml").is_file():
            return candidate
    raise AnalyticsBuildError(
        "the dbt project was not found (looked in "
        + ", ".join(str(c) for c in candidates)
        + f"); set {PROJECT_ENV} to the folder holding dbt_project.yml"
    )


def build(
    data_dir: Path,
    *,
    full_refresh: bool = False,
    on_model: ModelCallback | None = None,
    check_quality: bool = True,
    clock: Clock | None = None,
    select: Sequence[str] = (),
) -> BuildSummary:
    """Check the lake's new partitions, then build every model and run every test (see the
    module docstring); ``select`` narrows dbt to those selectors (dbt's ``--select``). Raises
    ``AnalyticsBuildError`` when the lake has nothing to build from or dbt fails."""
    started = time.perf_counter()
    data_dir = data_dir.resolve()
    lake_dir = data_dir / "lake"
    project = project_dir()
    _require_inputs(lake_dir)
    report = None
    if check_quality:
        from lake.quality import check
        from services.core.clock import SystemClock

        report = check(lake_dir, clock=clock or SystemClock())
    left_out, tolerated = _quarantine(lake_dir)
    analytics = data_dir / ANALYTICS_DIR
    analytics.mkdir(parents=True, exist_ok=True)
    from lake.compaction import LOCK_NAME

    with _in_process, exclusive(analytics / "build.lock"), exclusive(lake_dir / LOCK_NAME):
        fingerprint = _fingerprint(project)
        fingerprint_file = analytics / "project.fingerprint"
        unit_tests = full_refresh or _read_text(fingerprint_file) != fingerprint
        dbt_started = time.perf_counter()
        nodes, problem = _run_dbt(
            project,
            lake_dir,
            analytics,
            _DbtRun(left_out, full_refresh, unit_tests, tuple(select)),
            on_model,
        )
        dbt_seconds = time.perf_counter() - dbt_started
        log_path = analytics / "logs" / "dbt.log"
        failed = [n for n in nodes if n.status in ("error", "fail", "runtime error")]
        if problem is not None or failed:
            fingerprint_file.unlink(missing_ok=True)
            raise AnalyticsBuildError(_failure_message(problem, failed, log_path))
        if unit_tests and not select:
            fingerprint_file.write_text(fingerprint)
    return BuildSummary(
        warehouse=warehouse_path(data_dir),
        seconds=time.perf_counter() - started,
        full_refresh=full_refresh,
        nodes=tuple(nodes),
        quality=report,
        left_out=tuple(left_out),
        duplicates_tolerated=tuple(tolerated),
        log_path=log_path,
        dbt_seconds=dbt_seconds,
    )


# -- inputs ---------------------------------------------------------------------------------------
def _require_inputs(lake_dir: Path) -> None:
    from lake.snapshots import TABLES

    if not any((lake_dir / EVENTS).glob("dt=*/event_type=*/*.parquet")):
        raise AnalyticsBuildError(
            f"no events in the lake at {lake_dir} yet: use the product (or `musicsync simulate`) "
            "so that usage events reach the lake, then build again"
        )
    missing = [
        t.name for t in TABLES if not any((lake_dir / SNAPSHOTS / t.name).glob("dt=*/*.parquet"))
    ]
    if missing:
        raise AnalyticsBuildError(
            f"no snapshot of {', '.join(missing)} in the lake at {lake_dir}: run "
            "`musicsync lake snapshot` first (the marts join events to the snapshots)"
        )


def _quarantine(lake_dir: Path) -> tuple[list[str], list[str]]:
    """(partitions to leave out, partitions kept although they failed only on repeated ids)."""
    from lake.quality import QUARANTINE_NAME, RESULT_NAME

    path = lake_dir / QUALITY / QUARANTINE_NAME
    try:
        entries = json.loads(path.read_text()).get("partitions", [])
    except FileNotFoundError:
        return [], []
    except ValueError as error:
        raise AnalyticsBuildError(f"unreadable quarantine list {path}: {error}") from None
    left_out: list[str] = []
    tolerated: list[str] = []
    for entry in entries:
        key = str(entry["partition"])
        try:
            result = json.loads((lake_dir / QUALITY / key / RESULT_NAME).read_text())
        except (FileNotFoundError, ValueError):
            result = {}
        (tolerated if _only_duplicates(result) else left_out).append(key)
    return sorted(left_out), sorted(tolerated)


def _only_duplicates(result: Mapping[str, Any]) -> bool:
    failed = [e for e in result.get("expectations", []) if not e.get("success")]
    return bool(failed) and all(
        e.get("expectation") == _DUPLICATE_EXPECTATION
        and e.get("kwargs", {}).get("column") == "event_id"
        and e.get("error") is None
        for e in failed
    )


def _partition_pairs(keys: Sequence[str]) -> list[list[str]]:
    """``events/dt=D/event_type=T`` -> ``[D, T]``, as the project's var wants them."""
    pairs = []
    for key in keys:
        parts = dict(p.split("=", 1) for p in key.split("/")[1:] if "=" in p)
        if "dt" in parts and "event_type" in parts:
            pairs.append([parts["dt"], parts["event_type"]])
    return pairs


# -- dbt ------------------------------------------------------------------------------------------
def _fingerprint(project: Path) -> str:
    """A digest of the project's files: it changes when a model, test or macro does."""
    digest = hashlib.sha256()
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project)
        if not path.is_file() or relative.parts[0] in ("target", "logs", "dbt_packages"):
            continue
        digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class _DbtRun:
    left_out: Sequence[str]
    full_refresh: bool
    unit_tests: bool
    select: tuple[str, ...]


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class _Progress:
    """Turns dbt's node events into ``on_model`` calls (models only)."""

    on_model: ModelCallback | None
    started: dict[str, float] = field(default_factory=dict)

    def __call__(self, event: Any) -> None:
        if self.on_model is None:
            return
        name = event.info.name
        if name not in ("NodeStart", "NodeFinished"):
            return
        node = event.data.node_info
        if node.resource_type != "model":
            return
        try:
            if name == "NodeStart":
                self.started[node.unique_id] = time.perf_counter()
                self.on_model(node.node_name, "started", 0.0)
            else:
                began = self.started.pop(node.unique_id, time.perf_counter())
                self.on_model(node.node_name, node.node_status, time.perf_counter() - began)
        except Exception:  # a display must not break the build
            log.exception("the progress callback failed for %s", node.node_name)


def _run_dbt(
    project: Path,
    lake_dir: Path,
    analytics: Path,
    run: _DbtRun,
    on_model: ModelCallback | None,
) -> tuple[list[NodeResult], str | None]:
    args = [
        "build",
        "--vars", json.dumps({"quarantined_partitions": _partition_pairs(run.left_out)}),
    ]  # fmt: skip
    if run.full_refresh:
        args.append("--full-refresh")
    if not run.unit_tests:
        args += ["--exclude-resource-type", "unit_test"]
    if run.select:
        args += ["--select", *run.select]
    result = _invoke(project, lake_dir, analytics, args, [_Progress(on_model)])
    problem = None
    if result.exception is not None:
        problem = str(result.exception)
    nodes = [_node_result(r) for r in getattr(result.result, "results", None) or []]
    if problem is None and not result.success and not nodes:
        problem = "dbt stopped before building anything"
    return nodes, problem


def _invoke(
    project: Path, lake_dir: Path, analytics: Path, args: list[str], callbacks: list[Any]
) -> Any:
    """One dbt command in this process, on the local target, with the lake's and warehouse's
    paths in the environment; dbt writes its log and artefacts under ``analytics``."""
    from dbt.cli.main import dbtRunner

    common = [
        "--project-dir", str(project),
        "--profiles-dir", str(project),
        "--target", TARGET,
        "--target-path", str(analytics / "target"),
        "--log-path", str(analytics / "logs"),
        "--log-level", "none",
        "--log-level-file", "debug",
        "--no-use-colors",
        "--no-send-anonymous-usage-stats",
        "--no-version-check",
    ]  # fmt: skip
    command = args[:1] if args[0] != "docs" else args[:2]
    env = {
        "MUSICSYNC_LAKE_DIR": str(lake_dir),
        "MUSICSYNC_WAREHOUSE": str(analytics / WAREHOUSE_NAME),
        "MUSICSYNC_DBT_TARGET": TARGET,
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    with _environment(env):
        try:
            return dbtRunner(callbacks=callbacks).invoke([*command, *common, *args[len(command) :]])
        finally:
            _close_warehouse()


def generate_docs(data_dir: Path) -> Path:
    """``dbt docs generate`` over the built warehouse: the project's documentation site (every
    model, column, test and the lineage), written to ``<data_dir>/analytics/target``; returns
    its ``index.html``. Run after ``build``."""
    data_dir = data_dir.resolve()
    analytics = data_dir / ANALYTICS_DIR
    if not warehouse_path(data_dir).is_file():
        raise AnalyticsBuildError(f"no warehouse at {warehouse_path(data_dir)}: build first")
    with _in_process, exclusive(analytics / "build.lock"):
        result = _invoke(project_dir(), data_dir / "lake", analytics, ["docs", "generate"], [])
    if not result.success:
        raise AnalyticsBuildError(
            f"dbt docs generate failed: {result.exception or 'see the log'}; "
            f"dbt's log: {analytics / 'logs' / 'dbt.log'}"
        )
    return analytics / "target" / "index.html"


def _node_result(result: Any) -> NodeResult:
    failures = getattr(result, "failures", None)
    return NodeResult(
        name=result.node.name,
        resource_type=str(result.node.resource_type),
        status=str(result.status),
        seconds=float(result.execution_time or 0.0),
        message=result.message,
        failures=int(failures) if failures is not None else None,
    )


def _close_warehouse() -> None:
    """Close dbt-duckdb's process-wide DuckDB instance: the warehouse file is then free for
    readers (the report, the dashboards, another process)."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # pragma: no cover - dbt-duckdb is a dependency
        return
    manager: Any = DuckDBConnectionManager
    env = manager._ENV
    if env is not None:
        try:
            env.close()
        except Exception:
            log.debug("closing dbt-duckdb's environment failed", exc_info=True)
    manager.close_all_connections()


def _failure_message(problem: str | None, failed: Sequence[NodeResult], log_path: Path) -> str:
    lines = ["the analytics build failed"]
    if problem is not None:
        lines.append(f"  dbt: {problem.strip()}")
    for node in failed:
        kind = {"test": "test", "unit_test": "unit test"}.get(
            node.resource_type, node.resource_type
        )
        lines.append(f"  {kind} {node.name}: {_detail(node)}")
    lines.append(f"dbt's log: {log_path}")
    return "\n".join(lines)


def _detail(node: NodeResult) -> str:
    """What went wrong, in a few lines: dbt's header line ("Runtime Error in model ...") is
    left out, the database's or the unit test's own words kept."""
    text = [line.rstrip() for line in (node.message or "").splitlines() if line.strip()]
    if text and " Error in " in text[0]:
        text = text[1:]
    if node.resource_type == "unit_test":
        return "\n      ".join(text[:12]) or node.status
    if node.failures and node.resource_type == "test":
        return f"{node.failures} failing row(s)"
    return " ".join(line.strip() for line in text[:3]) or node.status
