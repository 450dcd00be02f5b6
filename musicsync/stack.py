"""The local stack: embedded servers, migrations, dependencies and the HTTP app, in one process."""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette

from musicsync.asgi import create_app
from musicsync.devidp import DevIdentityProvider
from musicsync.runtime import EmbeddedServers, start_servers
from services.core import migrate, wiring
from services.core.clock import Clock, SystemClock
from services.core.objects.local import LocalObjectStore
from services.core.settings import Settings
from services.gateway.openapi import merged_openapi

if TYPE_CHECKING:
    from ingest.cdc.publisher import Publisher

log = logging.getLogger("musicsync.stack")


@dataclass
class LocalStack:
    settings: Settings
    servers: EmbeddedServers
    deps: wiring.Dependencies
    idp: DevIdentityProvider
    app: Starlette


def local_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings from the environment, with the data dir (and anything else) given."""
    return Settings(data_dir=data_dir, **overrides)


@contextmanager
def local_database(settings: Settings) -> Iterator[str]:
    """The database URL, starting embedded PostgreSQL when none is configured."""
    servers = start_servers(
        settings.data_dir, database_url=settings.database_url, redis_url=None, with_redis=False
    )
    try:
        yield servers.database_url
    finally:
        servers.stop()


@contextmanager
def open_stack(settings: Settings, clock: Clock | None = None) -> Iterator[LocalStack]:
    clock = clock or SystemClock()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    servers = start_servers(
        settings.data_dir, database_url=settings.database_url, redis_url=settings.redis_url
    )
    try:
        migrate.upgrade(servers.database_url)
        _recover_lake(settings, clock)
        idp = DevIdentityProvider(settings.data_dir, clock)
        settings = settings.model_copy(
            update={
                "database_url": servers.database_url,
                "redis_url": servers.redis_url,
                "trusted_issuers": [*settings.trusted_issuers, idp.trusted_issuer()],
            }
        )
        deps = wiring.build(settings, clock)
        wiring.install(deps)
        try:
            app = stack_app(deps, idp)
            stop_sweeping = _every(settings.sweep_seconds, _sweep)
            indexer = _start_indexer(deps)
            try:
                yield LocalStack(settings, servers, deps, idp, app)
            finally:
                indexer.stop()
                stop_sweeping()
        finally:
            wiring.install(None)
            deps.close()
    finally:
        servers.stop()


def stack_app(
    deps: wiring.Dependencies,
    idp: DevIdentityProvider,
    on_shutdown: Callable[[], None] | None = None,
) -> Starlette:
    """The HTTP app over these dependencies (one per serving process)."""
    objects = deps.objects if isinstance(deps.objects, LocalObjectStore) else None
    return create_app(
        objects=objects,
        jwks=idp.jwks,
        ready=lambda: _ready(deps),
        openapi=merged_openapi,
        dashboards=deps.settings.dashboard_dir,
        on_shutdown=on_shutdown,
    )


WORKER_SETTINGS_ENV = "MUSICSYNC_WORKER_SETTINGS"


def worker_app() -> Starlette:
    """The app of one serving process of a multi-worker stack (a uvicorn factory).

    The parent started the servers and applied migrations; it hands over its resolved
    settings through the environment, and this process only builds its own connections.
    """
    settings = Settings.model_validate_json(os.environ[WORKER_SETTINGS_ENV])
    clock = SystemClock()
    deps = wiring.build(settings, clock)
    wiring.install(deps)
    app = stack_app(deps, DevIdentityProvider(settings.data_dir, clock), on_shutdown=deps.close)
    # What start-up made lives as long as the process: out of the collector's sight, full
    # collections stop walking it (they paused requests by 50-150 ms every few seconds).
    gc.freeze()
    return app


def _recover_lake(settings: Settings, clock: Clock) -> None:
    """Events that writers of a crashed run had acknowledged go to the lake before new ones."""
    if settings.profile != "local":
        return
    from ingest.events.lake_writer import recover

    recovered = recover(settings.lake_dir, clock)
    if recovered:
        log.warning("recovered %d events from the spools of a previous run", recovered)


def _start_indexer(deps: wiring.Dependencies) -> Publisher:
    """Keep the search index in step with the database: the outbox's publisher, feeding the
    indexer, in this (the parent) process; serving workers only read the index."""
    from ingest.indexer.local import start_local_indexer

    return start_local_indexer(deps.pool, deps.search_index, conninfo=deps.settings.database_url)


def _sweep() -> None:
    """What EventBridge schedules in aws: expire abandoned uploads, announce expired pitches."""
    from services.library.sweeper import sweep as sweep_uploads
    from services.pitching.sweeper import sweep as sweep_pitches

    sweep_uploads()
    sweep_pitches()


def _every(seconds: float, job: Callable[[], None]) -> Callable[[], None]:
    """Run ``job`` every ``seconds`` in a daemon thread (as EventBridge would); return a stopper."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(seconds):
            try:
                job()
            except Exception:  # a failed sweep is retried on the next tick
                log.exception("periodic job %s failed", job.__name__)

    thread = threading.Thread(target=loop, name=f"every-{job.__name__}", daemon=True)
    thread.start()

    def stopper() -> None:
        stop.set()
        thread.join(timeout=10)

    return stopper


def _ready(deps: wiring.Dependencies) -> dict[str, Any]:
    import redis

    database_url, redis_url = deps.settings.database_url, deps.settings.redis_url
    if not database_url or not redis_url:
        raise RuntimeError("no database or Redis configured")
    pending = migrate.pending(database_url)
    if pending:
        raise RuntimeError(f"migrations not applied: {', '.join(pending)}")
    with deps.pool.connection() as conn:
        conn.execute("SELECT 1")
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
    return {"database": "ok", "redis": "ok", "migrations": "applied"}
