"""The ``musicsync`` command."""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    DownloadColumn,
    Progress,
    TaskID,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from services.core.settings import Settings

app = typer.Typer(help="musicsync: the music sync platform, on your machine.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
events_app = typer.Typer(help="Usage events.", no_args_is_help=True)
app.add_typer(events_app, name="events")
lake_app = typer.Typer(help="The data lake.", no_args_is_help=True)
app.add_typer(lake_app, name="lake")
search_app = typer.Typer(help="The search index.", no_args_is_help=True)
app.add_typer(search_app, name="search")
analytics_app = typer.Typer(help="The dbt marts.", no_args_is_help=True)
app.add_typer(analytics_app, name="analytics")
report_app = typer.Typer(help="Reports over the marts.", no_args_is_help=True)
app.add_typer(report_app, name="report")
dashboards_app = typer.Typer(help="BI in AWS.", no_args_is_help=True)
app.add_typer(dashboards_app, name="dashboards")
console = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="MUSICSYNC_DATA_DIR",
        help="Where the local stack keeps its database, objects and keys.",
    ),
]
DEFAULT_DATA_DIR = Path(".musicsync")


def _date(value: str | None) -> str | None:
    from lake.layout import is_date

    if value is not None and not is_date(value):
        raise typer.BadParameter(f"{value!r} is not a date written YYYY-MM-DD")
    return value


PartitionDate = Annotated[
    str | None, typer.Option(help="Only this date's partitions (YYYY-MM-DD).", callback=_date)
]


def _settings(data_dir: Path, **overrides: object):  # type: ignore[no-untyped-def]
    from musicsync.stack import local_settings

    return local_settings(data_dir.resolve(), **overrides)


@app.command()
def up(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    workers: Annotated[
        int, typer.Option(min=1, max=32, envvar="MUSICSYNC_WORKERS", help="Serving processes.")
    ] = 2,
) -> None:
    """Start the local stack (embedded PostgreSQL and Redis, every service) until Ctrl-C."""
    from musicsync.serve import serve_workers
    from musicsync.stack import WORKER_SETTINGS_ENV, open_stack

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    url = f"http://{host}:{port}"
    settings = _settings(data_dir, public_url=os.environ.get("MUSICSYNC_PUBLIC_URL", url))

    def announce() -> None:
        console.print(
            f"[bold green]musicsync is up[/] at {url}  "
            f"(API docs: {url}/docs, data: {settings.data_dir})",
        )
        console.print(f"Get a token: musicsync token alice --data-dir {settings.data_dir}")

    try:
        with ExitStack() as scope:
            with console.status("Starting PostgreSQL and Redis, applying migrations..."):
                stack = scope.enter_context(open_stack(settings))
            # The stack (servers, migrations, upload sweeper) lives in this process; requests
            # are served by worker processes, each one more "Lambda container" (for every service).
            os.environ[WORKER_SETTINGS_ENV] = stack.settings.model_dump_json()
            code = serve_workers(
                "musicsync.stack:worker_app",
                host=host,
                port=port,
                workers=workers,
                on_ready=announce,
            )
    finally:
        console.print(f"Stopped; data kept in {settings.data_dir}")
    if code:
        raise typer.Exit(code)


@app.command()
def token(
    user: Annotated[str, typer.Argument(help="User name; becomes the token's subject.")],
    email: Annotated[
        str | None, typer.Option(help="Email claim (default USER@example.com).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name claim.")] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 12 * 3600,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Print a bearer JWT for USER from the built-in dev identity provider."""
    from musicsync.devidp import DevIdentityProvider
    from services.core.clock import SystemClock

    idp = DevIdentityProvider(data_dir.resolve(), SystemClock())
    print(idp.mint(user, email=email, name=name, ttl_seconds=ttl))


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Apply pending migrations (to DATABASE_URL, or to the embedded database)."""
    from musicsync.stack import local_database
    from services.core import migrate

    with local_database(_settings(data_dir)) as url:
        applied = migrate.upgrade(url)
    console.print(
        f"Applied {len(applied)} migration(s)"
        + (f": {', '.join(applied)}" if applied else "; up to date.")
    )


@events_app.command("replay")
def events_replay(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Resend dead-lettered events through the profile's sink (Firehose, or the local lake)."""
    from ingest.events.dead_letters import replay
    from services.core.clock import SystemClock
    from services.core.wiring import dead_letter_store, event_sink

    settings = _settings(data_dir)
    clock = SystemClock()
    store = dead_letter_store(settings, clock)
    sink = event_sink(settings, clock)
    try:
        report = replay(store, sink)
    finally:
        sink.close()
    console.print(
        f"Replayed {report.replayed_events} event(s) in {report.replayed_batches} batch(es); "
        f"{report.failed_batches} batch(es) could not be replayed; "
        f"{report.remaining_events} event(s) in {report.remaining_batches} batch(es) "
        "are still dead-lettered."
    )
    if report.remaining_batches:
        raise typer.Exit(1)


@lake_app.command("compact")
def lake_compact(
    dt: PartitionDate = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Merge the small Parquet files of each events partition (safe while the stack writes)."""
    from lake.compaction import compact

    settings = _settings(data_dir)
    report = compact(settings.lake_dir, dt=dt)
    mib = 1024 * 1024
    console.print(
        f"Compacted {report.partitions} partition(s): {report.files_before} file(s) "
        f"({report.bytes_before / mib:.1f} MiB) became {report.files_after} "
        f"({report.bytes_after / mib:.1f} MiB); {report.rows} row(s) kept."
    )


@lake_app.command("check")
def lake_check(
    dt: PartitionDate = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Run the quality suite on new or changed event partitions; failing ones are quarantined."""
    from lake.quality import check
    from services.core.clock import SystemClock

    settings = _settings(data_dir)
    with console.status("Checking partitions (Great Expectations)..."):
        report = check(settings.lake_dir, dt=dt, clock=SystemClock())
    console.print(
        f"{len(report.passed)} partition(s) passed, {len(report.failed)} failed, "
        f"{len(report.skipped)} unchanged since their last check."
    )
    if report.failed:
        console.print("Quarantined (kept, left out of the marts):")
        for partition, reasons in sorted(report.failed.items()):
            console.print(f"  [red]{partition}[/]", markup=True)
            for reason in reasons:
                console.print(f"    - {reason}", markup=False)
        raise typer.Exit(1)


@lake_app.command("snapshot")
def lake_snapshot(
    dt: Annotated[
        str | None,
        typer.Option(help="Partition date, YYYY-MM-DD (default: today, UTC).", callback=_date),
    ] = None,
    table: Annotated[list[str] | None, typer.Option(help="Only these tables (repeatable).")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Export the database's dimension tables to snapshots/<table>/dt=... (idempotent a day)."""
    from lake.snapshots import S3Target, snapshot
    from musicsync.stack import local_database
    from services.core.clock import SystemClock

    settings = _settings(data_dir)
    day = dt or SystemClock().now().date().isoformat()
    s3 = None
    if settings.profile == "aws":
        if not settings.lake_bucket:
            raise typer.BadParameter("the aws profile needs MUSICSYNC_LAKE_BUCKET")
        s3 = S3Target(
            bucket=settings.lake_bucket,
            prefix=settings.lake_prefix,
            glue_database=settings.glue_database,
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
        )
    with local_database(settings) as url, Progress(console=console) as progress:
        tasks: dict[str, TaskID] = {}

        def report(name: str, rows: int) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(f"snapshot {name}", total=None)
            progress.update(tasks[name], completed=rows, description=f"{name}: {rows} rows")

        try:
            result = snapshot(url, settings.lake_dir, day, tables=table, s3=s3, progress=report)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    for done in result.tables:
        console.print(
            f"{done.table}: {done.rows} row(s), {done.bytes} bytes -> {', '.join(done.objects)}"
        )


@search_app.command("reindex")
def search_reindex(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Rebuild the search index from the database into a new generation, then swap it in
    (searches and the running stack's indexer keep working meanwhile)."""
    from ingest.indexer.reindex import reindex
    from musicsync.stack import local_database
    from services.core.db import open_pool
    from services.core.wiring import search_index

    settings = _settings(data_dir)
    with local_database(settings) as url, Progress(console=console) as progress:
        task = progress.add_task("reindex", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, description=f"{done} tracks")

        pool = open_pool(url, max_size=2)
        try:
            result = reindex(pool, search_index(settings), progress=report)
        finally:
            pool.close()
    console.print(
        f"Reindexed {result.tracks} tracks in {result.seconds:.1f} s "
        f"({result.per_second:,.0f}/s) into {result.generation}."
    )


@search_app.command("dlq")
def search_dlq(
    redrive: Annotated[bool, typer.Option(help="Send them back to be indexed again.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Changes that could not be indexed: the indexer queue's DLQ (aws) or the outbox rows
    whose indexing failed (local); --redrive retries them now."""
    settings = _settings(data_dir)
    if settings.profile == "aws":
        _aws_dlq(settings, redrive)
        return
    from ingest.cdc.outbox import failing, retry_failing
    from musicsync.stack import local_database
    from services.core.db import open_pool

    with local_database(settings) as url:
        pool = open_pool(url, max_size=1)
        try:
            with pool.connection() as conn:
                rows = failing(conn, 1000)
                retried = retry_failing(conn) if redrive else 0
        finally:
            pool.close()
    # One line each (the console does not wrap): ids stay whole for copying.
    for row in rows:
        console.print(
            f"outbox {row['id']}: track {row['aggregate_id']} v{row['version']} "
            f"{row['operation']}, {row['attempts']} attempt(s): {row['last_error'] or ''}"
        )
    console.print(f"{len(rows)} failing change(s)" + (f"; {retried} due now." if redrive else "."))


def _aws_dlq(settings: Settings, redrive: bool) -> None:
    import boto3

    from ingest.cdc.dlq import list_dead
    from ingest.cdc.dlq import redrive as redrive_dead

    if not settings.cdc_dlq_url or not settings.cdc_queue_url:
        raise typer.BadParameter(
            "the aws profile needs MUSICSYNC_CDC_QUEUE_URL and MUSICSYNC_CDC_DLQ_URL"
        )
    sqs = boto3.client(
        "sqs", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url
    )
    if redrive:
        moved = redrive_dead(sqs, settings.cdc_dlq_url, settings.cdc_queue_url)
        console.print(f"{moved} message(s) sent back to the indexer queue.")
        return
    table = Table("message id", "received", "change")
    dead = list_dead(sqs, settings.cdc_dlq_url)
    for message in dead:
        change = message.change
        table.add_row(message.message_id, str(message.receive_count), str(change or message.body))
    console.print(table)
    console.print(f"{len(dead)} message(s) in the DLQ.")


@app.command()
def simulate(
    users: Annotated[
        int, typer.Option(min=1, max=10_000, help="People who join over the days.")
    ] = 30,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Simulated days, ending today.")] = 21,
    seed: Annotated[int, typer.Option(help="Same seed, same activity.")] = 1,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Simulate weeks of believable activity through the product's real handlers, under a
    simulated clock: every event reaches the lake through the product's own code."""
    from musicsync.simulate import SimulationSummary
    from musicsync.simulate import simulate as run_simulation

    with Progress(console=console) as progress:
        task = progress.add_task("simulating", total=days)

        def on_day(day_index: int, total: int, summary: SimulationSummary) -> None:
            progress.update(
                task, completed=day_index + 1, description=f"day {day_index + 1}/{total}"
            )

        summary = run_simulation(
            data_dir.resolve(), users=users, days=days, seed=seed, on_day=on_day
        )
    events = sum(summary.events.values())
    console.print(
        f"Simulated {summary.days} days ({summary.start:%Y-%m-%d} to {summary.end:%Y-%m-%d}): "
        f"{summary.users_joined} users, {sum(summary.actions.values())} actions, "
        f"{summary.pitches} pitches to {summary.recipients} recipients, {events} events "
        f"of {len(summary.events)} types in {summary.wall_seconds:.0f} s."
    )
    if summary.errors:
        console.print(
            f"[red]{sum(summary.errors.values())} unexpected answers:[/red] {dict(summary.errors)}"
        )
        raise typer.Exit(1)


def _build_marts(data_dir: Path, full_refresh: bool) -> None:
    """Quality checks, then dbt, with a line per model; the summary, or exit 1 naming what
    failed."""
    from musicsync.analytics import AnalyticsBuildError, build

    with Progress(console=console) as progress:
        task = progress.add_task("dbt", total=None)
        built = 0

        def on_model(name: str, status: str, seconds: float) -> None:
            nonlocal built
            if status == "started":
                progress.update(task, description=f"building {name}")
                return
            built += 1
            progress.update(task, completed=built)
            progress.console.print(f"  {name}: {status} ({seconds:.1f} s)")

        try:
            summary = build(data_dir.resolve(), full_refresh=full_refresh, on_model=on_model)
        except AnalyticsBuildError as exc:
            console.print(f"[red]analytics build failed:[/red] {exc}")
            raise typer.Exit(1) from None
    console.print(
        f"Built {summary.models_built} models, {summary.tests_passed} tests passed"
        + (f", {summary.tests_warned} warned" if summary.tests_warned else "")
        + f" in {summary.seconds:.1f} s; marts in {summary.warehouse}"
    )
    if summary.left_out:
        console.print(f"Left out (quality checks failed): {', '.join(summary.left_out)}")


@analytics_app.command("build")
def analytics_build(
    full_refresh: Annotated[bool, typer.Option(help="Rebuild every mart from scratch.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Check new lake partitions, then build the marts (dbt, DuckDB) into the data dir."""
    _build_marts(data_dir, full_refresh)


def _write_dashboard(data_dir: Path, out: Path | None) -> Path:
    from dashboards.charts import WarehouseError
    from dashboards.site import write_dashboard
    from musicsync.analytics import warehouse_path

    try:
        target = out or _settings(data_dir).dashboard_dir
        return write_dashboard(warehouse_path(data_dir.resolve()), target)
    except WarehouseError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


def _write_report(data_dir: Path, pitch_id: uuid.UUID, out: Path | None) -> Path:
    from dashboards.charts import WarehouseError
    from dashboards.report import PitchNotFoundError, write_pitch_report
    from musicsync.analytics import warehouse_path

    target = out or Path(f"pitch-{pitch_id}.html")
    try:
        return write_pitch_report(warehouse_path(data_dir.resolve()), pitch_id, target)
    except (PitchNotFoundError, WarehouseError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


def _pitch_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a pitch id (a UUID)") from None


@report_app.command("pitch")
def report_pitch(
    pitch_id: Annotated[str, typer.Argument(help="The pitch's id.")],
    out: Annotated[
        Path | None, typer.Option(help="File to write (default ./pitch-ID.html).")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Write the pitch engagement report: one self-contained HTML file to forward."""
    path = _write_report(data_dir, _pitch_id(pitch_id), out)
    console.print(f"Pitch report: {path.resolve().as_uri()}")


@app.command()
def dashboard(
    out: Annotated[
        Path | None, typer.Option(help="Folder (default DATA_DIR/analytics/dashboard).")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Write the static dashboard over every mart (served by `musicsync up` at /dashboards)."""
    path = _write_dashboard(data_dir, out)
    console.print(f"Dashboard: {path.resolve().as_uri()}")


@dashboards_app.command("deploy-quicksight")
def deploy_quicksight(
    account_id: Annotated[str, typer.Option(help="AWS account id (12 digits).")],
    principal_arn: Annotated[str, typer.Option(help="QuickSight user or group to own them.")],
    region: Annotated[str, typer.Option(envvar="AWS_REGION")] = "us-east-1",
    athena_workgroup: Annotated[str, typer.Option(help="Athena workgroup.")] = "primary",
    glue_database: Annotated[
        str, typer.Option(envvar="MUSICSYNC_ATHENA_SCHEMA", help="The marts' Athena database.")
    ] = "musicsync_analytics",
    endpoint_url: Annotated[str | None, typer.Option(envvar="AWS_ENDPOINT_URL")] = None,
) -> None:
    """Create or update the QuickSight data source, data sets and dashboard over the marts."""
    from dashboards.quicksight_deploy import QuickSightDeployError
    from dashboards.quicksight_deploy import deploy_quicksight as deploy

    try:
        result = deploy(
            account_id,
            region=region,
            athena_workgroup=athena_workgroup,
            glue_database=glue_database,
            principal_arn=principal_arn,
            endpoint_url=endpoint_url,
        )
    except QuickSightDeployError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(result.summary())


@app.command()
def demo(
    users: Annotated[int, typer.Option(min=1, help="Simulated people.")] = 30,
    days: Annotated[int, typer.Option(min=1, help="Simulated days, ending today.")] = 21,
    seed: Annotated[int, typer.Option(help="Same seed, same activity.")] = 1,
    serve: Annotated[bool, typer.Option(help="Keep serving the stack afterwards.")] = False,
    port: Annotated[int, typer.Option(help="Port for --serve.")] = 8000,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """The whole product on your machine: weeks of simulated activity through the real
    handlers, the marts, the dashboard and a pitch report; then how to browse them."""
    from lake.compaction import compact

    simulate(users=users, days=days, seed=seed, data_dir=data_dir)
    # The marts join events to the day's snapshot of the database's dimension tables.
    lake_snapshot(dt=None, table=None, data_dir=data_dir)
    # The simulated clock makes the lake writer flush once per simulated minute: many small
    # files, which compaction merges, as it would in a day's life of the product.
    compact(data_dir.resolve() / "lake")
    _build_marts(data_dir, full_refresh=True)
    board = _write_dashboard(data_dir, None)
    report = _most_engaged_pitch_report(data_dir)
    console.print(f"\nDashboard:    {board.resolve().as_uri()}")
    if report is not None:
        console.print(f"Pitch report: {report.resolve().as_uri()}")
    console.print(
        f"Marts (DuckDB): {data_dir.resolve() / 'analytics' / 'warehouse.duckdb'}\n"
        f"Browse the product: musicsync up --data-dir {data_dir} (dashboard at /dashboards), "
        f"and a token with: musicsync token alice --data-dir {data_dir}"
    )
    if serve:
        up(port=port, data_dir=data_dir)


def _most_engaged_pitch_report(data_dir: Path) -> Path | None:
    """The report of the pitch with the most plays: the one worth showing first."""
    import duckdb

    from musicsync.analytics import warehouse_path

    with duckdb.connect(str(warehouse_path(data_dir.resolve())), read_only=True) as db:
        row = db.execute(
            "SELECT pitch_id FROM fct_pitch_engagement GROUP BY pitch_id "
            "ORDER BY sum(plays) DESC, pitch_id LIMIT 1"
        ).fetchone()
    if row is None:
        return None
    out = data_dir.resolve() / "analytics" / "reports" / f"pitch-{row[0]}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    return _write_report(data_dir, uuid.UUID(str(row[0])), out)


@app.command("import")
def import_(
    paths: Annotated[
        list[Path], typer.Argument(help="Audio files or folders (searched recursively).")
    ],
    url: Annotated[
        str, typer.Option(help="Base URL of a running stack.")
    ] = "http://127.0.0.1:8000",
    user: Annotated[str, typer.Option(help="Dev identity to upload as.")] = "alice",
    bearer: Annotated[
        str | None,
        typer.Option("--token", envvar="MUSICSYNC_TOKEN", help="Bearer token (instead of --user)."),
    ] = None,
    jobs: Annotated[int, typer.Option(min=1, max=16, help="Files uploaded at once.")] = 4,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Upload every audio file under PATHS through the API, with progress and a failure summary."""
    from musicsync.devidp import DevIdentityProvider
    from musicsync.importer import Importer, find_audio
    from services.core.clock import SystemClock

    files = find_audio(paths)
    if not files:
        console.print("[yellow]No audio files found.[/]")
        raise typer.Exit(1)
    bearer = bearer or DevIdentityProvider(data_dir.resolve(), SystemClock()).mint(user)
    importer = Importer(url, bearer)
    total = sum(f.stat().st_size for f in files)
    columns = (
        *Progress.get_default_columns()[:-1],
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"Uploading {len(files)} file(s)", total=total)
            results = importer.run(files, jobs=jobs, progress=lambda n: progress.advance(task, n))
    finally:
        importer.close()
    failed = [r for r in results if not r.ok]
    console.print(f"Imported {len(results) - len(failed)} of {len(results)} file(s).")
    if failed:
        root = Path(os.path.commonpath([f.parent for f in files]))
        table = Table("file", "code", "why", title=f"Not imported (under {root})")
        for r in failed:
            table.add_row(str(r.path.relative_to(root)), r.code or "", r.detail or "")
        console.print(table)
        raise typer.Exit(1)


def main() -> None:
    # SIGTERM while starting up or importing: unwind (stopping what started), don't just die.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    app()
