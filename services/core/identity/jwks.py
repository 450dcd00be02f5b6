"""Signing keys of trusted issuers: static sets and per-issuer caches of remote JWKS documents."""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

import jwt

from services.core.clock import Clock

FetchJwks = Callable[[str], dict[str, Any]]

FETCH_TIMEOUT_SECONDS = 5
# A key set is a few KiB; the cap stops a misbehaving endpoint from filling memory.
_MAX_JWKS_BYTES = 1024 * 1024

log = logging.getLogger(__name__)


class JwksUnavailableError(Exception):
    """The issuer's key set could not be fetched and the cache cannot answer without it."""


class KeySource(Protocol):
    def get(self, kid: str) -> jwt.PyJWK | None:
        """The RS256 key published under ``kid``, or None if the issuer has no such key."""
        ...


def fetch_jwks_over_http(url: str) -> dict[str, Any]:
    """GET a JWKS document with the standard library (no extra imports on cold start)."""
    # TrustedIssuer only admits http(s) URLs, so no file:// or custom scheme reaches here.
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310
        body: bytes = response.read(_MAX_JWKS_BYTES + 1)
    if len(body) > _MAX_JWKS_BYTES:
        raise ValueError("JWKS document exceeds 1 MiB")
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("JWKS document is not a JSON object")
    return document


def parse_jwks(document: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    """RS256 signing keys of a JWKS document by ``kid``; keys for other uses are skipped."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ValueError("JWKS document has no 'keys' list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if (
            not isinstance(kid, str)
            or entry.get("kty") != "RSA"
            or entry.get("use", "sig") != "sig"
            or entry.get("alg", "RS256") != "RS256"
        ):
            continue
        try:
            keys[kid] = jwt.PyJWK(entry, algorithm="RS256")
        except (jwt.PyJWTError, ValueError):
            # One broken entry must not take the issuer's other keys down with it.
            log.warning("skipping unusable JWKS entry kid=%r", kid)
    return keys


class StaticKeySource:
    """A key set given in configuration (the built-in dev provider); never refreshed."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self._keys = parse_jwks(document)

    def get(self, kid: str) -> jwt.PyJWK | None:
        return self._keys.get(kid)


class JwksCache:
    """One issuer's remote key set, refreshed after ``ttl_seconds`` or on an unknown ``kid``.

    Every fetch, whatever caused it, opens a window of ``unknown_kid_refetch_seconds`` in
    which no other fetch happens, so tokens carrying random kids cannot drive traffic to
    the issuer. When a refresh fails, keys already cached stay in use.
    """

    def __init__(
        self,
        url: str,
        clock: Clock,
        *,
        fetch: FetchJwks = fetch_jwks_over_http,
        ttl_seconds: int = 3600,
        unknown_kid_refetch_seconds: int = 10,
    ) -> None:
        self._url = url
        self._clock = clock
        self._fetch = fetch
        self._ttl = timedelta(seconds=ttl_seconds)
        self._refetch_interval = timedelta(seconds=unknown_kid_refetch_seconds)
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: datetime | None = None
        self._attempted_at: datetime | None = None
        self._last_attempt_failed = False
        # Held across the fetch: concurrent callers then wait for its keys rather than
        # fail or fetch again; the fetch itself is bounded by its timeout.
        self._lock = threading.Lock()

    def get(self, kid: str) -> jwt.PyJWK | None:
        """The key for ``kid``; raises JwksUnavailableError if only a failed fetch could say."""
        with self._lock:
            now = self._clock.now()
            key = self._keys.get(kid)
            stale = self._fetched_at is None or now - self._fetched_at >= self._ttl
            if (key is None or stale) and self._may_fetch(now):
                self._refresh(now)
                key = self._keys.get(kid)
            if key is None and self._last_attempt_failed:
                raise JwksUnavailableError(self._url)
            return key

    def _may_fetch(self, now: datetime) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self._refetch_interval

    def _refresh(self, now: datetime) -> None:
        self._attempted_at = now
        try:
            keys = parse_jwks(self._fetch(self._url))
        except Exception:
            # The fetcher is injectable, so any failure it raises means "no fresh keys".
            log.warning("fetching JWKS from %s failed", self._url, exc_info=True)
            self._last_attempt_failed = True
            return
        self._keys = keys
        self._fetched_at = now
        self._last_attempt_failed = False
