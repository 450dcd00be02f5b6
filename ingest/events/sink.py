"""The port of event sinks: Firehose in the aws profile, the local lake writer in local."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ingest.events.envelope import UsageEvent


class EventSink(Protocol):
    def send(self, events: Sequence[UsageEvent]) -> None:
        """Deliver the events, or hand them to the dead-letter store.

        Raises only when neither worked; then the caller still holds the events and must log
        them, so that no event is lost without a trace.
        """
        ...

    def close(self) -> None:
        """Flush whatever is buffered (at shutdown)."""
        ...
