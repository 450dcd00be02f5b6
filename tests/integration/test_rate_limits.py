"""Fixed-window request limits, counted in the stack's real Redis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.core.clock import ManualClock
from services.core.ratelimit import RateLimited, check_rate, check_rates
from tests.support.stack import StackHarness

pytestmark = pytest.mark.integration


@pytest.fixture
def redis(harness: StackHarness) -> Any:
    return harness.stack.deps.redis


def _clock() -> ManualClock:
    # 10 s into a minute: the window ends 50 s later
    return ManualClock(datetime(2026, 11, 28, 12, 0, 10, tzinfo=UTC))


def test_the_hit_past_the_limit_is_refused_until_its_window_ends(redis: Any) -> None:
    # Given a limit of 3 a minute
    key, clock = f"test:{uuid.uuid4()}", _clock()
    for _ in range(3):
        check_rate(redis, clock, key, limit=3, window_seconds=60)
    # When a fourth comes in the same minute, Then it waits for the next window
    with pytest.raises(RateLimited) as limited:
        check_rate(redis, clock, key, limit=3, window_seconds=60)
    assert limited.value.status == 429 and limited.value.headers == {"Retry-After": "50"}
    # And in the next window the count starts again
    clock.advance(timedelta(seconds=50))
    check_rate(redis, clock, key, limit=3, window_seconds=60)


def test_each_counter_expires_after_its_window(redis: Any) -> None:
    key, clock = f"test:{uuid.uuid4()}", _clock()
    check_rate(redis, clock, key, limit=10, window_seconds=60)
    check_rate(redis, clock, key, limit=10, window_seconds=60)
    counters = redis.keys(f"rate:{key}:*")
    assert len(counters) == 1 and int(redis.get(counters[0])) == 2
    assert 0 < redis.ttl(counters[0]) <= 61


def test_several_limits_count_together_and_the_longest_wait_is_given(redis: Any) -> None:
    # Given a per-minute limit with room and a per-hour limit already reached
    minute, hour, clock = f"test:{uuid.uuid4()}", f"test:{uuid.uuid4()}", _clock()
    check_rates(redis, clock, [(hour, 1, 3600)])
    # When one call counts a hit on both
    with pytest.raises(RateLimited) as limited:
        check_rates(redis, clock, [(minute, 5, 60), (hour, 1, 3600)])
    # Then both were counted, and the wait is the hour's
    assert limited.value.headers == {"Retry-After": str(3600 - 10)}
    assert int(redis.get(redis.keys(f"rate:{minute}:*")[0])) == 1
    assert int(redis.get(redis.keys(f"rate:{hour}:*")[0])) == 2
