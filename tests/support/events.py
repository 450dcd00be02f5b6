"""A sink that keeps what it is sent: for tests of what services emit."""

from __future__ import annotations

from collections.abc import Sequence

from ingest.events.envelope import UsageEvent


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[UsageEvent] = []

    def send(self, events: Sequence[UsageEvent]) -> None:
        self.events.extend(events)

    def close(self) -> None:
        return None
