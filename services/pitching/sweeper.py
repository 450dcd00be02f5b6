"""Scheduled Lambda (EventBridge, every few minutes): announce pitches that reached their expiry.

Links check the expiry themselves on every use; this only records, once per expiry, that a
pitch expired (``pitch_expired``), so the lake knows when each pitch stopped being open.
"""

from __future__ import annotations

from typing import Any

from ingest.events.emitter import Emitter
from services.pitching import repository as repo

BATCH = 500


def sweep() -> int:
    """Announce every pitch past its expiry not yet announced; how many there were."""
    from services.core.wiring import dependencies

    deps = dependencies()
    events = Emitter(deps.events, deps.clock, source="pitching-sweeper")
    announced = 0
    try:
        while True:
            with deps.pool.connection() as conn, conn.transaction():
                expired = repo.expiring_pitches(conn, deps.clock.now(), BATCH)
            for row in expired:
                events.emit(
                    "pitch_expired",
                    actor_type="system",
                    pitch_id=row["id"],
                    properties={"owner_id": str(row["owner_id"])},
                )
            announced += len(expired)
            if len(expired) < BATCH:
                return announced
    finally:
        events.flush()


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    return {"expired": sweep()}
