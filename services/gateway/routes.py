"""Which service answers which path: the routing table of the gateway (and of the local stack)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache
from typing import Any

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]

# (path prefix, handler module); longest prefix wins. Modules expose `app` and `lambda_handler`.
ROUTES: tuple[tuple[str, str], ...] = (
    ("/v1/me", "services.library.handler"),
    ("/v1/uploads", "services.library.handler"),
    ("/v1/tracks", "services.library.handler"),
    ("/v1/events", "services.collector.handler"),
    ("/v1/playlists", "services.playlists.handler"),
    ("/v1/shares", "services.sharing.handler"),
    ("/v1/pitches", "services.pitching.handler"),
    ("/v1/search", "services.search.handler"),
    # Pitch links: the recipient page, its media, feedback and player events (no sign-in).
    ("/p", "services.pitching.handler"),
)
SERVICE_MODULES: tuple[str, ...] = tuple(dict.fromkeys(module for _, module in ROUTES))


def module_for(path: str) -> str | None:
    best: tuple[int, str] | None = None
    for prefix, module in ROUTES:
        if (path == prefix or path.startswith(prefix + "/")) and (
            best is None or len(prefix) > best[0]
        ):
            best = (len(prefix), module)
    return None if best is None else best[1]


@cache
def handler(module: str) -> LambdaHandler:
    fn: LambdaHandler = importlib.import_module(module).lambda_handler
    return fn
