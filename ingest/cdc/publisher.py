"""The publisher: takes outbox rows, sends them to a sink, marks them published.

``publish_pending`` is one batch in one transaction: lock due rows (``FOR UPDATE SKIP LOCKED``,
so publishers running side by side share the work without sending a row twice at once), send
them, mark the delivered ones published, commit. A crash between the send and the commit leaves
the rows unpublished: they are sent again, which the indexer shrugs off. Rows the sink did not
take are put back with a backoff. ``drain`` repeats it until nothing is due.

Sinks: ``ingest.cdc.sns.SnsSink`` (``aws``: SNS -> SQS -> the indexer Lambda) and
``ingest.indexer.local.IndexingSink`` (``local``: the indexer itself, in process). The local
sink indexes before it reports a row delivered, so there the outbox is the durable queue: a
change is marked published only once the index holds it.

``Publisher`` is the long-running loop of the local stack: it LISTENs on a dedicated
connection, drains on each notification (sent at commit by the outbox triggers), and every
``poll_seconds`` anyway (a notification missed while reconnecting, a row waiting out its
backoff); every ``sweep_every`` seconds it also runs the sweeper.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

import psycopg

from ingest.cdc.outbox import CHANNEL, ChangeMessage, claim, mark_failed, mark_published

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 500


class ChangeSink(Protocol):
    def send(self, messages: Sequence[ChangeMessage]) -> Mapping[int, str]:
        """Deliver the messages; those not delivered, as outbox id -> error. Raising means
        none was delivered."""
        ...


def publish_pending(
    pool: ConnectionPool[Any],
    sink: ChangeSink,
    limit: int = DEFAULT_LIMIT,
    *,
    min_age: timedelta | None = None,
) -> int:
    """Publish one batch of up to ``limit`` due rows (with ``min_age``: only rows at least that
    old); how many were published."""
    return _publish_batch(pool, sink, limit, min_age)[1]


def drain(
    pool: ConnectionPool[Any],
    sink: ChangeSink,
    limit: int = DEFAULT_LIMIT,
    *,
    min_age: timedelta | None = None,
) -> int:
    """Publish batches until none is full (nothing more is due); how many were published.
    Rows that fail wait out their backoff, so this always ends."""
    total = 0
    while True:
        claimed, published = _publish_batch(pool, sink, limit, min_age)
        total += published
        if claimed < limit:
            return total


def _publish_batch(
    pool: ConnectionPool[Any], sink: ChangeSink, limit: int, min_age: timedelta | None
) -> tuple[int, int]:
    with pool.connection() as conn, conn.transaction():
        messages = claim(conn, limit, min_age=min_age)
        if not messages:
            return 0, 0
        try:
            failed = dict(sink.send(messages))
        except Exception as exc:
            log.exception("sending %d outbox rows failed", len(messages))
            failed = {m.outbox_id: f"{type(exc).__name__}: {exc}" for m in messages}
        claimed = {m.outbox_id for m in messages}
        failed = {i: error for i, error in failed.items() if i in claimed}
        published = [m.outbox_id for m in messages if m.outbox_id not in failed]
        mark_published(conn, published)
        mark_failed(conn, failed)
    if failed:
        log.warning(
            "%d of %d outbox rows not delivered (retried after a backoff): %s",
            len(failed),
            len(messages),
            sorted(set(failed.values()))[:3],
        )
    return len(messages), len(published)


class Publisher:
    """Drains the outbox into ``sink`` on every NOTIFY and every ``poll_seconds``, in a thread
    of its own, until ``stop``. Errors are logged and retried with a backoff; nothing is lost
    meanwhile, since rows stay in the outbox until delivered."""

    def __init__(
        self,
        pool: ConnectionPool[Any],
        sink: ChangeSink,
        *,
        conninfo: str | None = None,
        poll_seconds: float = 5.0,
        limit: int = DEFAULT_LIMIT,
        sweep_every: float | None = 300.0,
        sweep_after: timedelta = timedelta(seconds=60),
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self._pool = pool
        self._sink = sink
        self._conninfo: str | Callable[[], str] = (
            conninfo if conninfo is not None else pool.conninfo
        )
        self._poll = poll_seconds
        self._limit = limit
        self._sweep_every = sweep_every
        self._sweep_after = sweep_after
        self._retention = retention
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # For health checks and tests.
        self.published = 0
        self.drains = 0
        self.last_error: str | None = None
        self.listening = threading.Event()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the publisher is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="cdc-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the outbox publisher did not stop within %.1f s", timeout)
            self._thread = None

    def __enter__(self) -> Publisher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _drain(self) -> None:
        self.published += drain(self._pool, self._sink, self._limit)
        self.drains += 1

    def _run(self) -> None:
        from ingest.cdc.sweeper import sweep

        conn: psycopg.Connection[Any] | None = None
        failures = 0
        due = True  # drain at start: rows may wait from before
        next_poll = time.monotonic() + self._poll
        next_sweep = time.monotonic() + (self._sweep_every or 0)
        try:
            while not self._stop.is_set():
                try:
                    if conn is None:
                        info = self._conninfo
                        conn = psycopg.connect(
                            info if isinstance(info, str) else info(), autocommit=True
                        )
                        conn.execute(f"LISTEN {CHANNEL}")
                        self.listening.set()
                        due = True  # notifications sent while not listening are gone
                    now = time.monotonic()
                    if due or now >= next_poll:
                        due = False
                        next_poll = now + self._poll
                        self._drain()
                    if self._sweep_every is not None and now >= next_sweep:
                        next_sweep = now + self._sweep_every
                        sweep(
                            self._pool,
                            self._sink,
                            older_than=self._sweep_after,
                            retention=self._retention,
                        )
                    failures = 0
                    # Short waits, so that stop() is noticed quickly.
                    wait = max(0.0, min(0.5, next_poll - time.monotonic()))
                    for _ in conn.notifies(timeout=wait, stop_after=1):
                        due = True
                except Exception as exc:
                    failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("the outbox publisher failed (%d in a row)", failures)
                    if conn is not None and (conn.closed or conn.broken):
                        self.listening.clear()
                        conn = None
                    due = True
                    self._stop.wait(min(30.0, 0.2 * 2 ** min(failures, 8)))
        finally:
            self.listening.clear()
            if conn is not None:
                conn.close()
