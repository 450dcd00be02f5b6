"""Client events in from signed-in users: the actor is the caller, and every object an event
names must be one the caller may see."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingest.events.client import EventsResult, Parsed, Reporter, parse_events
from services.core import authz
from services.core.principal import Principal

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from ingest.events.emitter import Emitter
    from services.core.clock import Clock

SOURCE = "collector"
_NAMED: tuple[authz.ObjectType, ...] = ("track", "playlist", "share")


@dataclass
class Collector:
    pool: ConnectionPool[Any]
    clock: Clock
    events: Emitter

    def collect(
        self, caller: Principal, bodies: list[dict[str, Any]], correlation_id: str | None
    ) -> EventsResult:
        reporter = Reporter("user", str(caller.user_id), SOURCE, correlation_id)
        parsed = parse_events(bodies, reporter, self.clock.now())
        self._refuse_hidden(caller, parsed)
        self.events.forward([event for _, event in parsed.accepted])
        return parsed.result()

    def _refuse_hidden(self, caller: Principal, parsed: Parsed) -> None:
        """Refuse events naming a track, playlist or share the caller may not see."""
        named: dict[authz.ObjectType, set[uuid.UUID]] = {kind: set() for kind in _NAMED}
        for _, event in parsed.accepted:
            for kind in _NAMED:
                if (value := getattr(event, f"{kind}_id")) is not None:
                    named[kind].add(value)
        with self.pool.connection() as conn:
            found = authz.levels_by_type(conn, caller.user_id, named)
        for index, event in list(parsed.accepted):
            hidden = [
                kind
                for kind in _NAMED
                if (value := getattr(event, f"{kind}_id")) is not None
                and found[kind].get(value, 0) <= 0
            ]
            if hidden:
                parsed.refuse(
                    index,
                    event,
                    "object_not_accessible",
                    f"No {hidden[0]} with that id is visible to you.",
                )
