"""The port of event sinks: Firehose in the aws profile, the local lake writer in local."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ingest.events.envelope import UsageEvent


class EventsLost(Exception):
    """Some events could neither be delivered nor dead-lettered: exactly these."""

    def __init__(self, events: Sequence[UsageEvent]) -> None:
        super().__init__(f"{len(events)} events could not be delivered or dead-lettered")
        self.events = tuple(events)


class EventSink(Protocol):
    def send(self, events: Sequence[UsageEvent]) -> None:
        """Deliver the events, or hand them to the dead-letter store.

        Raises only when neither worked (``EventsLost`` naming exactly the events concerned,
        or any other exception for the whole batch); the caller then logs them, so that no
        event is lost without a trace.
        """
        ...

    def close(self) -> None:
        """Flush whatever is buffered (at shutdown)."""
        ...
