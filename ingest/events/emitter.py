"""Makes usage events, checks them against the catalogue, and sends them in one batch per flush.

One ``Emitter`` per invocation (a Lambda call, a request, a CLI command) is the intended use: it
holds that invocation's buffer and is not thread-safe. Flush at the end of the invocation.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypedDict, Unpack

from ingest.events.catalogue import CATALOGUE, validate
from ingest.events.envelope import ActorType, UsageEvent
from ingest.events.sink import EventSink, EventsLost
from services.core.clock import Clock
from services.core.ids import uuid7

logger = logging.getLogger("musicsync.events")


class EventColumns(TypedDict, total=False):
    """The object, measure and ``properties`` columns a producer may fill."""

    track_id: uuid.UUID
    playlist_id: uuid.UUID
    pitch_id: uuid.UUID
    recipient_id: uuid.UUID
    share_id: uuid.UUID
    position_ms: int
    listened_ms: int
    bytes: int
    result_count: int
    latency_ms: int
    properties: Mapping[str, Any]


class Emitter:
    def __init__(
        self, sink: EventSink, clock: Clock, *, source: str, correlation_id: str | None = None
    ) -> None:
        """``correlation_id`` is the invocation's, stamped on every event that names none."""
        self._sink = sink
        self._clock = clock
        self._source = source
        self._correlation_id = correlation_id
        self._buffer: list[UsageEvent] = []

    @property
    def pending(self) -> tuple[UsageEvent, ...]:
        """The events emitted since the last flush."""
        return tuple(self._buffer)

    def emit(
        self,
        event_type: str,
        *,
        actor_type: ActorType,
        actor_id: str | None = None,
        session_id: str | None = None,
        correlation_id: str | None = None,
        **columns: Unpack[EventColumns],
    ) -> UsageEvent:
        """Make, check and buffer one event.

        Raises ValueError when the event breaks the catalogue: that is a bug in the caller, and
        it must fail in tests rather than reach the lake.
        """
        event = self.make(
            event_type,
            actor_type=actor_type,
            actor_id=actor_id,
            session_id=session_id,
            correlation_id=correlation_id,
            **columns,
        )
        self._buffer.append(event)
        return event

    def make(
        self,
        event_type: str,
        *,
        actor_type: ActorType,
        actor_id: str | None = None,
        session_id: str | None = None,
        correlation_id: str | None = None,
        recorded: tuple[uuid.UUID, datetime] | None = None,
        **columns: Unpack[EventColumns],
    ) -> UsageEvent:
        """Make and check one event without buffering it: for a producer that records the event
        elsewhere first (in the same transaction as its effect), then ``forward``s it.

        ``recorded`` is the (event id, time) it was already recorded under, where the record
        had to be written before the event could be made.
        """
        entry = CATALOGUE.get(event_type)
        if entry is None:
            raise ValueError(f"cannot emit {event_type!r}: unknown event type")
        if "properties" in columns:
            # The event waits in the buffer: a caller reusing its dict must not change it there.
            columns["properties"] = dict(columns["properties"])
        if recorded is None:
            now = self._clock.now()
            event_id = uuid7(now)
        else:
            event_id, now = recorded
        event = UsageEvent(
            event_id=event_id,
            event_type=event_type,
            event_version=entry.version,
            occurred_at=now,
            actor_type=actor_type,
            source=self._source,
            actor_id=actor_id,
            session_id=session_id,
            correlation_id=correlation_id or self._correlation_id,
            **columns,
        )
        if problems := validate(event):
            raise ValueError(f"cannot emit {event_type!r}: " + "; ".join(problems))
        return event

    def forward(self, events: Sequence[UsageEvent]) -> None:
        """Buffer events made elsewhere (a client, through the collector), checked like ours."""
        for event in events:
            if problems := validate(event):
                raise ValueError(f"cannot forward {event.event_type!r}: " + "; ".join(problems))
        self._buffer.extend(events)

    def flush(self) -> None:
        """Send the buffered events through the sink in one call; never raises.

        The sink raises only when it could neither deliver nor dead-letter the batch. The
        events are then gone, so the error log line, with every event id, is their trace.
        """
        if not self._buffer:
            return
        batch = tuple(self._buffer)
        self._buffer.clear()
        try:
            self._sink.send(batch)
        except Exception as exc:
            # Failing the invocation over analytics would lose the user's request as well.
            lost = exc.events if isinstance(exc, EventsLost) else batch
            event_ids = [str(e.event_id) for e in lost]
            logger.exception(
                "event sink failed: %d events lost: %s",
                len(lost),
                " ".join(event_ids),
                extra={"event_ids": event_ids, "event_count": len(lost)},
            )
