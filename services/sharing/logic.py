"""The sharing service's use cases; handlers only parse and call these."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.core import authz
from services.core.errors import NotFound, ProblemError
from services.core.ids import uuid7
from services.core.pagination import decode_cursor, encode_cursor, invalid_cursor
from services.sharing import repository as repo
from services.sharing.models import ShareCreate, ShareOut, SharePage

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg_pool import ConnectionPool

    from ingest.events.emitter import Emitter
    from services.core.clock import Clock
    from services.core.principal import Principal

# An upsert that lost its share to a concurrent revoke tries again this many times.
_UPSERT_ATTEMPTS = 3


@dataclass
class Sharing:
    pool: ConnectionPool[Any]
    clock: Clock
    events: Emitter

    def create_share(self, caller: Principal, request: ShareCreate) -> tuple[ShareOut, bool]:
        """Share the caller's object; the share and whether it is new (else its permission was
        changed, or already was the one asked for)."""
        allowed = authz.SHARE_LEVELS[request.object_type]
        if request.permission not in allowed:
            raise ProblemError(
                422,
                "invalid_permission",
                "Invalid permission",
                f"A {request.object_type} can be shared with permission "
                f"{', '.join(allowed)}; not '{request.permission}'.",
                allowed=list(allowed),
            )
        with self.pool.connection() as conn:
            authz.require(conn, caller.user_id, "manage", request.object_type, request.object_id)
            grantee_id = self._grantee(conn, caller, request)
            share_id, created = self._upsert(conn, caller, request, grantee_id)
            row = repo.get_share(conn, share_id)
        assert row is not None  # made or changed in the transaction just committed
        if created:
            self._emit(caller, "share_created", row)
        return share_out(row), created

    def list_shares(
        self,
        caller: Principal,
        *,
        direction: str,
        object_type: str | None,
        limit: int,
        cursor: str | None,
    ) -> SharePage:
        cursor_scope = f"{direction}|{object_type or ''}"
        after = None
        if cursor:
            after = _cursor_position(decode_cursor(cursor, scope=cursor_scope))
        with self.pool.connection() as conn:
            rows = repo.list_shares(
                conn,
                caller.user_id,
                direction=direction,
                object_type=object_type,
                after=after,
                limit=limit + 1,
            )
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = encode_cursor(
                {"scope": cursor_scope, "at": last["created_at"].isoformat(), "id": last["id"]}
            )
        return SharePage(items=[share_out(row) for row in rows], next_cursor=next_cursor)

    def get_share(self, caller: Principal, share_id: uuid.UUID) -> ShareOut:
        with self.pool.connection() as conn:
            authz.require(conn, caller.user_id, "view", "share", share_id)
            row = repo.get_share(conn, share_id)
        if row is None:  # revoked meanwhile
            raise authz.not_found("share")
        return share_out(row)

    def revoke_share(self, caller: Principal, share_id: uuid.UUID) -> None:
        with self.pool.connection() as conn:
            authz.require(conn, caller.user_id, "manage", "share", share_id)
            row = repo.revoke_share(conn, share_id, self.clock.now())
        if row is None:  # revoked meanwhile
            raise authz.not_found("share")
        self._emit(caller, "share_revoked", row)

    def _grantee(
        self, conn: Connection[Any], caller: Principal, request: ShareCreate
    ) -> uuid.UUID | None:
        """The user the share is for; None when it waits for its address to sign in."""
        if request.grantee_user_id is not None:
            if repo.user(conn, request.grantee_user_id) is None:
                raise NotFound("user_not_found", "User")
            grantee_id: uuid.UUID | None = request.grantee_user_id
        else:
            assert request.grantee_email is not None
            found = repo.verified_user_by_email(conn, request.grantee_email)
            grantee_id = None if found is None else found["id"]
            # The caller's own address, not (yet) vouched for: a share to it could never attach.
            if found is None and request.grantee_email == _lower(caller.email):
                raise _cannot_share_with_self()
        if grantee_id == caller.user_id:
            raise _cannot_share_with_self()
        return grantee_id

    def _upsert(
        self,
        conn: Connection[Any],
        caller: Principal,
        request: ShareCreate,
        grantee_id: uuid.UUID | None,
    ) -> tuple[uuid.UUID, bool]:
        for _ in range(_UPSERT_ATTEMPTS):
            now = self.clock.now()
            result = repo.upsert_share(
                conn,
                {
                    "id": uuid7(now),
                    "owner_id": caller.user_id,
                    "object_type": request.object_type,
                    "object_id": request.object_id,
                    "grantee_id": grantee_id,
                    "grantee_email": request.grantee_email,
                    "permission": request.permission,
                    "now": now,
                },
            )
            if result is not None:
                return result
        raise ProblemError(
            409, "share_conflict", "Share changed meanwhile", "Send the request again."
        )

    def _emit(self, caller: Principal, event_type: str, row: dict[str, Any]) -> None:
        """An event about the share in ``row``, naming its track or playlist."""
        share_id: uuid.UUID = row["id"]
        object_id: uuid.UUID = row["object_id"]
        properties = {"permission": row["permission"]}
        if row["object_type"] == "track":
            self.events.emit(
                event_type,
                actor_type="user",
                actor_id=str(caller.user_id),
                share_id=share_id,
                track_id=object_id,
                properties=properties,
            )
        else:
            self.events.emit(
                event_type,
                actor_type="user",
                actor_id=str(caller.user_id),
                share_id=share_id,
                playlist_id=object_id,
                properties=properties,
            )


def sharing(events: Emitter) -> Sharing:
    """The sharing service over this process's dependencies (built on first use)."""
    from services.core.wiring import dependencies

    deps = dependencies()
    return Sharing(deps.pool, deps.clock, events)


def share_out(row: dict[str, Any]) -> ShareOut:
    return ShareOut.model_validate(
        {
            **row,
            "owner": {"id": row["owner_id"], "name": row["owner_name"]},
            "grantee": {
                "user_id": row["grantee_id"],
                "email": row["grantee_email"],
                "name": row["grantee_name"],
            },
            "status": "pending" if row["grantee_id"] is None else "active",
        }
    )


def _lower(email: str | None) -> str | None:
    return None if email is None else email.strip().lower()


def _cannot_share_with_self() -> ProblemError:
    return ProblemError(
        422,
        "cannot_share_with_self",
        "Cannot share with yourself",
        "You already own what you are sharing: name another user.",
    )


def _cursor_position(state: dict[str, Any]) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor resumes after; a cursor tampered with is a 400."""
    try:
        at = state.get("at")
        if not isinstance(at, str):
            raise TypeError(at)
        created_at = datetime.fromisoformat(at)
        if created_at.tzinfo is None:
            raise ValueError(at)
        return created_at, uuid.UUID(str(state.get("id")))
    except (TypeError, ValueError) as exc:
        raise invalid_cursor() from exc
