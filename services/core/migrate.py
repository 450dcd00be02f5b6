"""Versioned SQL migrations (yoyo), shipped inside the package."""

from __future__ import annotations

from pathlib import Path

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _yoyo_uri(database_url: str) -> str:
    # yoyo picks its driver from the scheme; psycopg 3 is the one we ship.
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url


def pending(database_url: str) -> list[str]:
    from yoyo import get_backend, read_migrations

    backend = get_backend(_yoyo_uri(database_url))
    return [m.id for m in backend.to_apply(read_migrations(str(MIGRATIONS_DIR)))]


def upgrade(database_url: str) -> list[str]:
    """Apply every pending migration under yoyo's lock; return the ids applied."""
    from yoyo import get_backend, read_migrations

    backend = get_backend(_yoyo_uri(database_url))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        todo = backend.to_apply(migrations)
        backend.apply_migrations(todo)
    return [m.id for m in todo]
