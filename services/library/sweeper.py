"""Scheduled Lambda (EventBridge, every few minutes): clean up uploads that were never completed."""

from __future__ import annotations

from typing import Any

from ingest.events.emitter import Emitter
from services.library.logic import library


def sweep() -> int:
    """Expire overdue uploads; their rejection events go out with this run."""
    from services.core.wiring import dependencies

    deps = dependencies()
    events = Emitter(deps.events, deps.clock, source="library-sweeper")
    try:
        return library(events).expire_uploads()
    finally:
        events.flush()


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    return {"expired": sweep()}
