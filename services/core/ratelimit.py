"""Per-key request limits in Redis (ElastiCache in aws, embedded or REDIS_URL locally)."""

from __future__ import annotations

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
    """Count one hit on ``key`` in the current fixed window; raise RateLimited past ``limit``.

    Fixed windows are cheap (one INCR and one EXPIRE in a pipeline) and shared by every process
    and Lambda container that talks to the same Redis.
    """
    now = int(clock.now().timestamp())
    window = now // window_seconds
    counter = f"rate:{key}:{window}"
    pipe = redis.pipeline()
    pipe.incr(counter)
    pipe.expire(counter, window_seconds + 1)
    hits, _ = pipe.execute()
    if int(hits) > limit:
        raise RateLimited(retry_after=(window + 1) * window_seconds - now)
