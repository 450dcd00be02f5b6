"""What the library's use cases share: their dependencies and how they emit events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from services.core import authz
from services.core.principal import Principal
from services.library.models import TrackOut

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from ingest.events.emitter import Emitter
    from services.core.clock import Clock
    from services.core.objects.port import ObjectStore
    from services.core.settings import Settings


def track_out(row: dict[str, Any], level: int) -> TrackOut:
    """A track as the API shows it to a caller at ``level``."""
    return TrackOut.model_validate({**row, "permission": authz.permission_name("track", level)})


@dataclass
class LibraryBase:
    pool: ConnectionPool[Any]
    objects: ObjectStore
    clock: Clock
    settings: Settings
    events: Emitter

    def _emit(self, caller: Principal, event_type: str, **columns: Any) -> None:
        self.events.emit(event_type, actor_type="user", actor_id=str(caller.user_id), **columns)
