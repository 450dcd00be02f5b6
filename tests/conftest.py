"""Fixtures every test layer shares: a real PostgreSQL database (embedded, or DATABASE_URL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

pytest_plugins = ["tests.support.stack", "tests.support.aws"]


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server: the one named by DATABASE_URL, or an embedded one for this run."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    from musicsync.runtime import start_servers

    servers = start_servers(
        tmp_path_factory.mktemp("pg"), database_url=None, redis_url=None, with_redis=False
    )
    try:
        yield servers.database_url
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A fresh, migrated database of its own for this test run (dropped afterwards)."""
    from services.core import migrate

    name = f"musicsync_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    migrate.upgrade(url)
    try:
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path
