"""Rendered pitch pages kept per recipient: served only for the fingerprint they were made from."""

from __future__ import annotations

import uuid

from services.pitching.page_cache import PageCache


def test_a_page_is_served_only_for_the_fingerprint_it_was_rendered_from() -> None:
    cache = PageCache(max_chars=1000)
    recipient = uuid.uuid4()
    cache.put(recipient, ("digest-1", "Title"), "<p>one</p>")
    assert cache.get(recipient, ("digest-1", "Title")) == "<p>one</p>"
    assert cache.get(recipient, ("digest-2", "Title")) is None
    assert cache.get(recipient, ("digest-1", "New title")) is None
    assert cache.get(uuid.uuid4(), ("digest-1", "Title")) is None


def test_a_new_rendering_replaces_the_recipients_old_one() -> None:
    cache = PageCache(max_chars=1000)
    recipient = uuid.uuid4()
    cache.put(recipient, "v1", "old")
    cache.put(recipient, "v2", "new")
    assert len(cache) == 1
    assert cache.get(recipient, "v1") is None and cache.get(recipient, "v2") == "new"


def test_the_least_recently_used_pages_go_first_when_the_size_is_reached() -> None:
    # Given room for three pages of 10 characters, and three kept, the first read again
    cache = PageCache(max_chars=30)
    a, b, c, d = (uuid.uuid4() for _ in range(4))
    for recipient in (a, b, c):
        cache.put(recipient, "v", "x" * 10)
    assert cache.get(a, "v") is not None
    # When a fourth is kept, Then the one read longest ago (b) makes room
    cache.put(d, "v", "y" * 10)
    assert len(cache) == 3
    assert cache.get(b, "v") is None
    assert all(cache.get(r, "v") is not None for r in (a, c, d))


def test_a_page_larger_than_the_whole_cache_is_not_kept() -> None:
    cache = PageCache(max_chars=5)
    cache.put(uuid.uuid4(), "v", "x" * 6)
    assert len(cache) == 0
