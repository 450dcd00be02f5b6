"""Who is calling: first sign-in provisions the user (issuer + subject -> user id)."""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING, Any

from services.core.ids import uuid7
from services.core.principal import Principal

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from services.core.clock import Clock
    from services.core.identity.verifier import VerifiedToken


_UPSERT = """
INSERT INTO users (id, issuer, subject, email, name, created_at, updated_at)
VALUES (%(id)s, %(iss)s, %(sub)s, %(email)s, %(name)s, %(now)s, %(now)s)
ON CONFLICT (issuer, subject) DO UPDATE
   SET email = COALESCE(EXCLUDED.email, users.email),
       name = COALESCE(EXCLUDED.name, users.name),
       updated_at = EXCLUDED.updated_at
 WHERE users.email IS DISTINCT FROM COALESCE(EXCLUDED.email, users.email)
    OR users.name IS DISTINCT FROM COALESCE(EXCLUDED.name, users.name)
RETURNING id
"""


class UserDirectory:
    """Maps verified tokens to users; remembers recent ones so a request costs no write."""

    def __init__(
        self, pool: ConnectionPool[Any], clock: Clock, *, cache_size: int = 10_000
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._cache: dict[tuple[str, str, str | None, str | None], uuid.UUID] = {}
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def provision(self, token: VerifiedToken) -> Principal:
        key = (token.issuer, token.subject, token.email, token.name)
        user_id = self._cache.get(key)
        if user_id is None:
            user_id = self._upsert(token)
            with self._lock:
                if len(self._cache) >= self._cache_size:
                    self._cache.clear()
                self._cache[key] = user_id
        return Principal(user_id, token.issuer, token.subject, token.email, token.name)

    def _upsert(self, token: VerifiedToken) -> uuid.UUID:
        now = self._clock.now()
        params = {
            "id": uuid7(now),
            "iss": token.issuer,
            "sub": token.subject,
            "email": token.email,
            "name": token.name,
            "now": now,
        }
        with self._pool.connection() as conn:
            row = conn.execute(_UPSERT, params).fetchone()
            if row is None:  # already there and unchanged
                row = conn.execute(
                    "SELECT id FROM users WHERE issuer = %s AND subject = %s",
                    (token.issuer, token.subject),
                ).fetchone()
        assert row is not None
        user_id: uuid.UUID = row["id"]
        return user_id
