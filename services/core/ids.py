"""Identifiers: UUIDv7 (time-ordered, so primary-key inserts stay append-only)."""

from __future__ import annotations

import os
import threading
import uuid
from datetime import datetime

_lock = threading.Lock()
_last = 0
# Random bytes from the OS, drawn a page at a time: one system call per id cost 3 us of the
# lake writer's 10 us budget per event.
_POOL_SIZE = 4096
_pool = b""
_offset = 0


def _reset_after_fork() -> None:
    # A forked child starts with its parent's pool: without a reset both would make equal ids.
    global _pool, _offset, _last
    _pool, _offset, _last = b"", 0, 0


os.register_at_fork(after_in_child=_reset_after_fork)


def uuid7(at: datetime) -> uuid.UUID:
    """A RFC 9562 version-7 UUID whose timestamp is ``at`` (from the clock port).

    Monotonic within a millisecond (RFC 9562 section 6.2, method 3): an id made in the same
    millisecond as the previous one is the previous one plus one, so ids sort in the order
    they were made. A clock that steps back (a simulation rewinding) is followed, not fought:
    the ids keep saying when they were made.
    """
    global _last, _pool, _offset
    ms = int(at.timestamp() * 1000) & ((1 << 48) - 1)
    with _lock:
        if _offset + 10 > len(_pool):
            _pool, _offset = os.urandom(_POOL_SIZE), 0
        rand = int.from_bytes(_pool[_offset : _offset + 10]) >> 6  # 74 random bits
        _offset += 10
        value = (
            (ms << 80)
            | (0x7 << 76)
            | ((rand >> 62) << 64)
            | (0b10 << 62)
            | (rand & ((1 << 62) - 1))
        )
        if value >> 80 == _last >> 80 and value <= _last:
            value = _next_after(_last)
        _last = value
    return uuid.UUID(int=value)


def _next_after(value: int) -> int:
    """The smallest valid v7 value above ``value``: increments skip the version/variant bits."""
    rand_b = (value & ((1 << 62) - 1)) + 1
    rand_a = (value >> 64) & 0xFFF
    ms = value >> 80
    if rand_b >> 62:  # rand_b overflowed: carry into rand_a, then into the timestamp
        rand_b = 0
        rand_a += 1
        if rand_a >> 12:
            rand_a = 0
            ms += 1
    return (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
