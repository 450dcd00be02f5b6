"""Bodies of the event collector."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_EVENTS = 100
MAX_BODY_BYTES = 64 * 1024


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_EVENTS,
        description="Client usage events, each as in /events/schema.json (the collector sets "
        "the actor, source and receipt time).",
    )


class Rejection(BaseModel):
    index: int = Field(description="Position of the event in the request.")
    event_id: uuid.UUID | None
    code: str
    reason: str


class EventsResult(BaseModel):
    accepted: int
    rejected: list[Rejection]
