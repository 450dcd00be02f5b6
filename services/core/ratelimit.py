"""Per-key request limits in Redis (ElastiCache in aws, embedded or REDIS_URL locally)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.core.clock import Clock
from services.core.errors import ProblemError


class RateLimited(ProblemError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(
            429,
            "rate_limited",
            "Too many requests",
            f"Slow down: try again in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
        )


def check_rate(redis: Any, clock: Clock, key: str, *, limit: int, window_seconds: int) -> None:
    """Count one hit on ``key`` in the current fixed window; raise RateLimited past ``limit``."""
    check_rates(redis, clock, [(key, limit, window_seconds)])


# INCR every counter, starting each one's expiry when it is created: one command, one reply,
# atomic (no counter is ever left without its expiry).
_COUNT_HITS = """
local hits = {}
for i, key in ipairs(KEYS) do
  hits[i] = redis.call('INCR', key)
  if hits[i] == 1 then redis.call('EXPIRE', key, ARGV[i]) end
end
return hits
"""


def check_rates(redis: Any, clock: Clock, limits: Sequence[tuple[str, int, int]]) -> None:
    """Count one hit on each (key, limit, window seconds), all in one round trip; raise
    RateLimited (with the longest wait) if any is past its limit.

    Fixed windows are cheap (one counter per key and window, in one script call) and shared by
    every process and Lambda container that talks to the same Redis.
    """
    now = int(clock.now().timestamp())
    windows = [now // window_seconds for _, _, window_seconds in limits]
    counters = [f"rate:{key}:{window}" for (key, _, _), window in zip(limits, windows, strict=True)]
    # register_script only hashes the text; the call is EVALSHA (EVAL once per server).
    replies = redis.register_script(_COUNT_HITS)(
        keys=counters, args=[window_seconds + 1 for _, _, window_seconds in limits]
    )
    waits = [
        (window + 1) * window_seconds - now
        for (_, limit, window_seconds), window, hits in zip(limits, windows, replies, strict=True)
        if int(hits) > limit
    ]
    if waits:
        raise RateLimited(retry_after=max(waits))
