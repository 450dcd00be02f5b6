"""Client events in: validate each one, take the actor from the session, send the rest on.

The body's events are checked one by one; a bad one is refused with its reason and does not
stop the others. What the caller may not say (who they are, which pitch, where the event came
from) is not in the JSON Schema at all, so a forged field refuses the event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from ingest.events.catalogue import CATALOGUE, validate
from ingest.events.envelope import UsageEvent
from services.collector.models import EventsResult, Rejection
from services.core.principal import Principal

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from ingest.events.emitter import Emitter
    from services.core.clock import Clock

MAX_AGE = timedelta(days=7)
MAX_AHEAD = timedelta(minutes=5)
SOURCE = "collector"


@cache
def _validator() -> Any:
    # jsonschema costs 0.1 s to import: paid on the first request, not at cold start.
    import json

    from jsonschema import Draft202012Validator, FormatChecker

    from ingest.events.schemas import json_schema

    schema = json.loads(json.dumps(json_schema()))
    return Draft202012Validator(schema, format_checker=FormatChecker())


class _Refused(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class Collector:
    pool: ConnectionPool[Any]
    clock: Clock
    events: Emitter

    def collect(
        self, caller: Principal, bodies: list[dict[str, Any]], correlation_id: str | None
    ) -> EventsResult:
        now = self.clock.now()
        rejected: list[Rejection] = []
        candidates: list[tuple[int, UsageEvent]] = []
        seen: set[uuid.UUID] = set()
        for index, body in enumerate(bodies):
            try:
                event = self._event(caller, body, now, correlation_id)
                if event.event_id in seen:
                    raise _Refused("duplicate_event_id", "This event_id is already in the request.")
                seen.add(event.event_id)
                candidates.append((index, event))
            except _Refused as refused:
                rejected.append(_rejection(index, body, refused.code, refused.reason))
        visible = self._visible_objects(caller, (e for _, e in candidates))
        accepted = []
        for index, event in candidates:
            hidden = [
                name
                for name in ("track_id", "playlist_id", "share_id")
                if getattr(event, name) is not None and getattr(event, name) not in visible
            ]
            if hidden:
                rejected.append(
                    Rejection(
                        index=index,
                        event_id=event.event_id,
                        code="object_not_accessible",
                        reason=f"No {hidden[0].removesuffix('_id')} with that id is visible "
                        "to you.",
                    )
                )
            else:
                accepted.append(event)
        self.events.forward(accepted)
        return EventsResult(
            accepted=len(accepted), rejected=sorted(rejected, key=lambda r: r.index)
        )

    def _event(
        self, caller: Principal, body: dict[str, Any], now: datetime, correlation_id: str | None
    ) -> UsageEvent:
        errors = sorted(_validator().iter_errors(body), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            where = ".".join(str(p) for p in first.absolute_path) or "event"
            raise _Refused("invalid_event", f"{where}: {first.message}")
        entry = CATALOGUE[body["event_type"]]
        if "user" not in entry.actor_types:
            raise _Refused(
                "wrong_actor",
                f"{entry.name} events come from pitch recipients, through the pitch link.",
            )
        occurred_at = datetime.fromisoformat(body["occurred_at"])
        if occurred_at.tzinfo is None:
            raise _Refused("invalid_event", "occurred_at: needs a UTC offset, e.g. 'Z'.")
        if now - occurred_at > MAX_AGE:
            raise _Refused("too_old", "occurred_at is more than 7 days ago.")
        if occurred_at - now > MAX_AHEAD:
            raise _Refused("in_the_future", "occurred_at is more than 5 minutes ahead.")
        event = UsageEvent(
            event_id=uuid.UUID(body["event_id"]),
            event_type=entry.name,
            event_version=body["event_version"],
            occurred_at=occurred_at,
            actor_type="user",
            actor_id=str(caller.user_id),
            source=SOURCE,
            session_id=body.get("session_id"),
            correlation_id=correlation_id,
            **{k: _typed(k, body[k]) for k in _CLIENT_COLUMNS if k in body},
        )
        if problems := validate(event):
            raise _Refused("invalid_event", "; ".join(problems))
        return event

    def _visible_objects(self, caller: Principal, events: Iterable[UsageEvent]) -> set[uuid.UUID]:
        """The named tracks the caller may see (playlists and shares: none exist yet)."""
        tracks = {e.track_id for e in events if e.track_id is not None}
        if not tracks:
            return set()
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT id FROM tracks WHERE id = ANY(%s) AND owner_id = %s",
                (list(tracks), caller.user_id),
            ).fetchall()
        return {row["id"] for row in rows}


_CLIENT_COLUMNS = (
    "track_id",
    "playlist_id",
    "share_id",
    "position_ms",
    "listened_ms",
    "bytes",
    "result_count",
    "latency_ms",
    "properties",
)


def _typed(name: str, value: Any) -> Any:
    return uuid.UUID(value) if name.endswith("_id") else value


def _rejection(index: int, body: Any, code: str, reason: str) -> Rejection:
    try:
        event_id = uuid.UUID(str(body.get("event_id")))
    except (AttributeError, ValueError):
        event_id = None
    return Rejection(index=index, event_id=event_id, code=code, reason=reason)
