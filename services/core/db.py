"""PostgreSQL access: one connection pool per process, rows as dicts."""

from __future__ import annotations

from typing import Any

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
