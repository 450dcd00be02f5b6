"""Events that clients report: each checked on its own, with who and where set by the server.

Signed-in players report through the collector (`POST /v1/events`), pitch recipients through
their link (`POST /p/{token}/events`). Both take the same body and answer the same way; a bad
event is refused with its reason and does not stop the others. What a client may not say (who
acts, which pitch, where the event came from) is not in the JSON Schema at all, so a forged field
refuses the event.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ingest.events.catalogue import CATALOGUE, validate
from ingest.events.envelope import ActorType, UsageEvent

MAX_EVENTS = 100
MAX_BODY_BYTES = 64 * 1024
MAX_AGE = timedelta(days=7)
MAX_AHEAD = timedelta(minutes=5)
# The envelope columns a client may fill (beyond the always-required ones).
CLIENT_COLUMNS = (
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


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_EVENTS,
        description="Client usage events, each as in ingest/events/generated/event.schema.json "
        "(the server sets the actor, source and receipt time).",
    )


class Rejection(BaseModel):
    index: int = Field(description="Position of the event in the request.")
    event_id: uuid.UUID | None
    code: str
    reason: str


class EventsResult(BaseModel):
    accepted: int
    rejected: list[Rejection]


@dataclass(frozen=True)
class Reporter:
    """Who reports, as the server established it, and what it sets on every event."""

    actor_type: ActorType
    actor_id: str
    source: str
    correlation_id: str | None
    # Columns taken from the session or link, never from the body (e.g. pitch_id).
    fixed: Mapping[str, Any] = field(default_factory=dict)


class Refused(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class Parsed:
    """The events that passed, each with its index in the body, and the refused ones."""

    accepted: list[tuple[int, UsageEvent]]
    rejected: list[Rejection]

    def refuse(self, index: int, event: UsageEvent, code: str, reason: str) -> None:
        self.accepted = [(i, e) for i, e in self.accepted if i != index]
        rejection = Rejection(index=index, event_id=event.event_id, code=code, reason=reason)
        self.rejected.append(rejection)

    def result(self) -> EventsResult:
        return EventsResult(
            accepted=len(self.accepted), rejected=sorted(self.rejected, key=lambda r: r.index)
        )


def parse_events(bodies: list[dict[str, Any]], reporter: Reporter, now: datetime) -> Parsed:
    parsed = Parsed([], [])
    seen: set[uuid.UUID] = set()
    for index, body in enumerate(bodies):
        try:
            event = parse_event(body, reporter, now)
            if event.event_id in seen:
                raise Refused("duplicate_event_id", "This event_id is already in the request.")
            seen.add(event.event_id)
            parsed.accepted.append((index, event))
        except Refused as refused:
            parsed.rejected.append(_rejection(index, body, refused.code, refused.reason))
    return parsed


def parse_event(body: dict[str, Any], reporter: Reporter, now: datetime) -> UsageEvent:
    """One client event, or ``Refused`` with the reason."""
    errors = sorted(_validator().iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.absolute_path) or "event"
        raise Refused("invalid_event", f"{where}: {first.message}")
    entry = CATALOGUE[body["event_type"]]
    if reporter.actor_type not in entry.actor_types:
        who = " or ".join(entry.actor_types)
        raise Refused("wrong_actor", f"{entry.name} events are reported by a {who}, not by you.")
    occurred_at = datetime.fromisoformat(body["occurred_at"])
    if occurred_at.tzinfo is None:
        raise Refused("invalid_event", "occurred_at: needs a UTC offset, e.g. 'Z'.")
    if now - occurred_at > MAX_AGE:
        raise Refused("too_old", "occurred_at is more than 7 days ago.")
    if occurred_at - now > MAX_AHEAD:
        raise Refused("in_the_future", "occurred_at is more than 5 minutes ahead.")
    event = UsageEvent(
        event_id=uuid.UUID(body["event_id"]),
        event_type=entry.name,
        event_version=body["event_version"],
        occurred_at=occurred_at,
        actor_type=reporter.actor_type,
        actor_id=reporter.actor_id,
        source=reporter.source,
        session_id=body.get("session_id"),
        correlation_id=reporter.correlation_id,
        **{k: _typed(k, body[k]) for k in CLIENT_COLUMNS if k in body},
        **reporter.fixed,
    )
    if problems := validate(event):
        raise Refused("invalid_event", "; ".join(problems))
    return event


@cache
def _validator() -> Any:
    # jsonschema costs 0.1 s to import: paid on the first request, not at cold start.
    import json

    from jsonschema import Draft202012Validator, FormatChecker

    from ingest.events.schemas import json_schema

    schema = json.loads(json.dumps(json_schema()))
    return Draft202012Validator(schema, format_checker=FormatChecker())


def _typed(name: str, value: Any) -> Any:
    return uuid.UUID(value) if name.endswith("_id") else value


def _rejection(index: int, body: Any, code: str, reason: str) -> Rejection:
    try:
        event_id = uuid.UUID(str(body.get("event_id")))
    except (AttributeError, ValueError):
        event_id = None
    return Rejection(index=index, event_id=event_id, code=code, reason=reason)
