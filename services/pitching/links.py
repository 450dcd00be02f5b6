"""Capability links: tokens (only their hash is stored), link passwords and the browser session
that a correct password opens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import struct
import uuid
from datetime import datetime
from functools import cache
from typing import Any

TOKEN_BYTES = 32  # 256 bits from the OS's CSPRNG
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
SESSION_COOKIE = "pitch_session"


def new_token() -> tuple[str, bytes]:
    """A fresh link token and the hash under which it is stored."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, token_hash(token)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


def well_formed(token: str) -> bool:
    """Whether ``token`` could be one of ours (anything else is unknown without a lookup)."""
    return bool(_TOKEN.fullmatch(token))


@cache
def _hasher() -> Any:
    # argon2-cffi builds its bindings on import: paid by the first password, not at cold start.
    from argon2 import PasswordHasher

    return PasswordHasher()


def hash_password(password: str) -> str:
    """Argon2id, memory-hard, with the library's current recommended parameters."""
    hashed: str = _hasher().hash(password)
    return hashed


def password_matches(password_hash: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return bool(_hasher().verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


class Sessions:
    """Signed cookies saying "this browser gave the right password for this recipient's link".

    The signature covers the password hash, so changing or removing the password ends every
    session opened with the old one.
    """

    def __init__(self, key: bytes, ttl_seconds: int) -> None:
        self._key = hashlib.sha256(b"musicsync pitch session\x00" + key).digest()
        self.ttl_seconds = ttl_seconds

    def issue(self, recipient_id: uuid.UUID, password_hash: str, now: datetime) -> str:
        expires = int(now.timestamp()) + self.ttl_seconds
        payload = recipient_id.bytes + struct.pack(">Q", expires)
        return _b64(payload + self._sign(payload, password_hash))

    def valid(
        self, value: str | None, recipient_id: uuid.UUID, password_hash: str, now: datetime
    ) -> bool:
        if not value:
            return False
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except ValueError:
            return False
        payload, signature = raw[:24], raw[24:]
        if len(payload) != 24 or not hmac.compare_digest(
            signature, self._sign(payload, password_hash)
        ):
            return False
        (expires,) = struct.unpack(">Q", payload[16:])
        return payload[:16] == recipient_id.bytes and now.timestamp() < expires

    def _sign(self, payload: bytes, password_hash: str) -> bytes:
        return hmac.new(self._key, payload + password_hash.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
