"""The library's use cases; handlers only parse and call these."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.library.tracks import Tracks
from services.library.uploads import Uploads

if TYPE_CHECKING:
    from ingest.events.emitter import Emitter


class Library(Uploads, Tracks):
    """Uploads and tracks, over one set of dependencies."""


def library(events: Emitter) -> Library:
    """The library over this process's dependencies (built on first use)."""
    from services.core.wiring import dependencies

    deps = dependencies()
    return Library(deps.pool, deps.objects, deps.clock, deps.settings, events)
