"""Rendered pitch pages, kept per recipient while what they show is unchanged.

A 50-track page is over 1,000 escaped values; rendering it costs several times what the
database takes to digest the rows it shows. Each view therefore asks the database for that
digest, and the page is rendered again only when the digest or the pitch's own text differs
from the cached copy's. Nothing is ever invalidated: a stale page cannot be served, because
its fingerprint would not match. The cache lives in the process (a Lambda container keeps it
between invocations), is bounded in characters, and drops the least recently used pages first.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Hashable


class PageCache:
    def __init__(self, max_chars: int) -> None:
        self._max_chars = max_chars
        self._chars = 0
        self._pages: OrderedDict[uuid.UUID, tuple[Hashable, str]] = OrderedDict()
        # One handler thread per container in practice; the lock keeps other uses safe.
        self._lock = threading.Lock()

    def get(self, recipient_id: uuid.UUID, fingerprint: Hashable) -> str | None:
        """The page cached for the recipient, if it was rendered from the same fingerprint."""
        with self._lock:
            cached = self._pages.get(recipient_id)
            if cached is None or cached[0] != fingerprint:
                return None
            self._pages.move_to_end(recipient_id)
            return cached[1]

    def put(self, recipient_id: uuid.UUID, fingerprint: Hashable, page: str) -> None:
        if len(page) > self._max_chars:
            return
        with self._lock:
            old = self._pages.pop(recipient_id, None)
            if old is not None:
                self._chars -= len(old[1])
            self._pages[recipient_id] = (fingerprint, page)
            self._chars += len(page)
            while self._chars > self._max_chars:
                _, (_, dropped) = self._pages.popitem(last=False)
                self._chars -= len(dropped)

    def __len__(self) -> int:
        return len(self._pages)
