"""Who is calling: first sign-in provisions the user (issuer + subject -> user id).

Provisioning also attaches the pending shares made to the user's address before they had an
account, in the same transaction, once the identity provider vouches for the address.
"""

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
INSERT INTO users (id, issuer, subject, email, email_verified, name, created_at, updated_at)
VALUES (%(id)s, %(iss)s, %(sub)s, %(email)s, COALESCE(%(verified)s, false), %(name)s, %(now)s,
        %(now)s)
ON CONFLICT (issuer, subject) DO UPDATE
   SET email = COALESCE(EXCLUDED.email, users.email),
       email_verified = COALESCE(%(verified)s, users.email_verified),
       name = COALESCE(EXCLUDED.name, users.name),
       updated_at = EXCLUDED.updated_at
 WHERE users.email IS DISTINCT FROM COALESCE(EXCLUDED.email, users.email)
    OR users.email_verified IS DISTINCT FROM COALESCE(%(verified)s, users.email_verified)
    OR users.name IS DISTINCT FROM COALESCE(EXCLUDED.name, users.name)
RETURNING id, email, email_verified
"""

# Pending shares to this address become the user's. Where the owner had also shared the same
# object with the user directly, the live share stands and the pending one is withdrawn (the
# first statement), so none is left pending for ever.
_DROP_SUPERSEDED = """
UPDATE shares s SET revoked_at = %(now)s, updated_at = %(now)s, version = s.version + 1
 WHERE s.grantee_id IS NULL AND s.revoked_at IS NULL AND s.grantee_email = lower(%(email)s)
   AND EXISTS (
       SELECT 1 FROM shares o
        WHERE o.grantee_id = %(user)s AND o.revoked_at IS NULL
          AND (o.track_id = s.track_id OR o.playlist_id = s.playlist_id))
"""
_ATTACH_PENDING = """
UPDATE shares s SET grantee_id = %(user)s, updated_at = %(now)s, version = s.version + 1
 WHERE s.grantee_id IS NULL AND s.revoked_at IS NULL AND s.grantee_email = lower(%(email)s)
   AND s.owner_id <> %(user)s
"""


class UserDirectory:
    """Maps verified tokens to users; remembers recent ones so a request costs no write."""

    def __init__(
        self, pool: ConnectionPool[Any], clock: Clock, *, cache_size: int = 10_000
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._cache: dict[tuple[str, str, str | None, bool, str | None], uuid.UUID] = {}
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def provision(self, token: VerifiedToken) -> Principal:
        key = (token.issuer, token.subject, token.email, token.email_verified, token.name)
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
            # A token without an address says nothing about the one on record.
            "verified": token.email_verified if token.email else None,
            "name": token.name,
            "now": now,
        }
        with self._pool.connection() as conn:
            row = conn.execute(_UPSERT, params).fetchone()
            if row is not None and row["email"] and row["email_verified"]:
                attach = {"user": row["id"], "email": row["email"], "now": now}
                conn.execute(_DROP_SUPERSEDED, attach)
                conn.execute(_ATTACH_PENDING, attach)
            if row is None:  # already there and unchanged
                row = conn.execute(
                    "SELECT id FROM users WHERE issuer = %s AND subject = %s",
                    (token.issuer, token.subject),
                ).fetchone()
        assert row is not None
        user_id: uuid.UUID = row["id"]
        return user_id
