"""Identifiers: UUIDv7 (time-ordered, so primary-key inserts stay append-only)."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime


def uuid7(at: datetime) -> uuid.UUID:
    """A RFC 9562 version-7 UUID whose timestamp is ``at`` (from the clock port)."""
    ms = int(at.timestamp() * 1000) & ((1 << 48) - 1)
    rand = secrets.randbits(74)
    value = (
        (ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    )
    return uuid.UUID(int=value)
