"""PostgreSQL access: one connection pool per process, rows as dicts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from psycopg import Connection
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool


def open_pool(url: str, *, max_size: int = 10) -> ConnectionPool[Any]:
    """A pool that is open and has proved it can connect (fails fast on a bad URL)."""
    pool: ConnectionPool[Any] = ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        kwargs={"row_factory": dict_row},
        open=False,
        name="musicsync",
    )
    pool.open(wait=True, timeout=30)
    return pool


@contextmanager
def autocommit(pool: ConnectionPool[Any]) -> Iterator[Connection[Any]]:
    """A pooled connection whose statements each commit on their own: for hot paths of single
    reads or single writes, which then cost no BEGIN and COMMIT round trips."""
    with pool.connection() as conn:
        conn.autocommit = True
        try:
            yield conn
        finally:
            conn.autocommit = False
