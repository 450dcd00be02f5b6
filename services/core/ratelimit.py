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


def check_rates(redis: Any, clock: Clock, limits: Sequence[tuple[str, int, int]]) -> None:
    """Count one hit on each (key, limit, window seconds), all in one round trip; raise
    RateLimited (with the longest wait) if any is past its limit.

    Fixed windows are cheap (one INCR and one EXPIRE per key in a pipeline) and shared by every
    process and Lambda container that talks to the same Redis.
    """
    now = int(clock.now().timestamp())
    pipe = redis.pipeline(transaction=False)
    windows = []
    for key, _, window_seconds in limits:
        window = now // window_seconds
        counter = f"rate:{key}:{window}"
        pipe.incr(counter)
        pipe.expire(counter, window_seconds + 1)
        windows.append(window)
    replies = pipe.execute()
    waits = [
        (window + 1) * window_seconds - now
        for (_, limit, window_seconds), window, hits in zip(
            limits, windows, replies[::2], strict=True
        )
        if int(hits) > limit
    ]
    if waits:
        raise RateLimited(retry_after=max(waits))
