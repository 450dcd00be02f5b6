"""Verification of RS256 bearer tokens from the configured identity providers.

Rejections raise AuthenticationError with a stable code. Details are fixed strings: they
end up in the WWW-Authenticate header, so nothing taken from the token is echoed, and
they never say which key was tried.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NoReturn

import jwt
from jwt.types import Options

from services.core.clock import Clock
from services.core.errors import AuthenticationError, ProblemError
from services.core.identity.issuers import TrustedIssuer
from services.core.identity.jwks import (
    FetchJwks,
    JwksCache,
    JwksUnavailableError,
    KeySource,
    StaticKeySource,
    fetch_jwks_over_http,
)

_ALGORITHM = "RS256"

# PyJWT would check times against the wall clock; those checks run against the Clock port
# below instead, so PyJWT only verifies the signature (and that `exp` is present).
_SIGNATURE_ONLY: Options = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
    "require": ["exp"],
}
# Cognito names the app client in `aud` on ID tokens but in `client_id` on access tokens,
# which carry no `aud` at all.
_CLIENT_CLAIM = {"id": "aud", "access": "client_id"}


@dataclass(frozen=True)
class VerifiedToken:
    """The caller's identity, taken from a token that passed every check."""

    issuer: str
    subject: str
    email: str | None
    # Whether the identity provider vouches that ``email`` is the user's (pending shares to an
    # address attach only then).
    email_verified: bool
    name: str | None
    groups: tuple[str, ...]
    token_use: str | None
    claims: Mapping[str, Any]


class IdentityProviderUnavailable(ProblemError):
    """503: the token could not be checked because its issuer's keys could not be fetched.

    Not an AuthenticationError on purpose: the token was not found wanting, and a 401
    would make clients throw away a possibly good token and send users to sign in again.
    """

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            503,
            "jwks_unavailable",
            "Identity provider unavailable",
            "The signing keys of the token's issuer could not be fetched, so the token "
            "could not be checked. Retry later with the same token.",
            headers={"Retry-After": str(retry_after_seconds)},
        )


@dataclass(frozen=True)
class _Issuer:
    config: TrustedIssuer
    audiences: frozenset[str]
    keys: KeySource


def _reject(code: str, detail: str) -> NoReturn:
    raise AuthenticationError(code, detail)


class TokenVerifier:
    """Checks bearer tokens against a fixed set of trusted issuers; thread-safe."""

    def __init__(
        self,
        issuers: Sequence[TrustedIssuer],
        clock: Clock,
        *,
        leeway_seconds: int = 30,
        max_token_bytes: int = 8192,
        fetch_jwks: FetchJwks | None = None,
        jwks_ttl_seconds: int = 3600,
        unknown_kid_refetch_seconds: int = 10,
        verified_cache_seconds: int = 300,
        verified_cache_size: int = 10_000,
    ) -> None:
        self._clock = clock
        # Tokens that passed, until min(expiry, now + cache window): a client sends the same
        # token on every request, and the RS256 check is the costliest step of a read. The
        # window is shorter than the key cache's TTL, so a withdrawn key is honoured no longer
        # than it would be without this cache.
        self._verified: dict[str, tuple[float, VerifiedToken]] = {}
        self._cache_seconds = verified_cache_seconds
        self._cache_size = verified_cache_size
        self._leeway = leeway_seconds
        self._max_token_bytes = max_token_bytes
        self._retry_after = unknown_kid_refetch_seconds
        fetch = fetch_jwks or fetch_jwks_over_http
        self._issuers: dict[str, _Issuer] = {}
        for issuer in issuers:
            if issuer.issuer in self._issuers:
                raise ValueError(f"issuer {issuer.issuer!r} is configured twice")
            keys: KeySource
            if issuer.jwks is not None:
                keys = StaticKeySource(issuer.jwks)
            else:
                assert issuer.jwks_url is not None  # TrustedIssuer requires one of the two
                keys = JwksCache(
                    issuer.jwks_url,
                    clock,
                    fetch=fetch,
                    ttl_seconds=jwks_ttl_seconds,
                    unknown_kid_refetch_seconds=unknown_kid_refetch_seconds,
                )
            self._issuers[issuer.issuer] = _Issuer(issuer, frozenset(issuer.audiences), keys)

    def verify_authorization_header(self, value: str | None) -> VerifiedToken:
        """Verify the token of an ``Authorization: Bearer <token>`` header."""
        credentials = (value or "").strip()
        if not credentials:
            _reject("token_missing", "Send the token as 'Authorization: Bearer <token>'.")
        scheme, _, token = credentials.partition(" ")
        if scheme.lower() != "bearer":
            _reject(
                "token_malformed",
                "The Authorization header must use the Bearer scheme: "
                "'Authorization: Bearer <token>'.",
            )
        return self.verify(token.strip())

    def verify(self, token: str) -> VerifiedToken:
        """Verify a compact JWT and return who it identifies, or raise AuthenticationError."""
        now = self._clock.now().timestamp()
        cached = self._verified.get(token)
        if cached is not None and now < cached[0]:
            return cached[1]
        verified = self._verify_uncached(token)
        expires = float(verified.claims["exp"]) + self._leeway
        if len(self._verified) >= self._cache_size:
            self._verified.clear()
        self._verified[token] = (min(expires, now + self._cache_seconds), verified)
        return verified

    def _verify_uncached(self, token: str) -> VerifiedToken:
        if not token:
            _reject("token_missing", "Send the token as 'Authorization: Bearer <token>'.")
        # Refused before any parsing, so an oversized token costs nothing to reject. A JWT
        # is ASCII, for which characters and bytes count the same.
        if len(token) > self._max_token_bytes:
            _reject("token_too_large", f"The token exceeds {self._max_token_bytes} bytes.")
        if not token.isascii():
            _reject("token_malformed", "The token contains characters a JWT cannot contain.")

        header, unverified = _parse_unverified(token)
        if header.get("alg") != _ALGORITHM:
            _reject("token_algorithm_not_allowed", "Only RS256-signed tokens are accepted.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            _reject("token_malformed", "The token header has no key id ('kid').")
        iss = unverified.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            _reject(
                "token_issuer_untrusted",
                "The token's issuer ('iss') is not an identity provider this service trusts.",
            )

        try:
            key = issuer.keys.get(kid)
        except JwksUnavailableError:
            raise IdentityProviderUnavailable(self._retry_after) from None
        if key is None:
            _reject(
                "token_key_unknown",
                "The token was signed with a key its issuer does not publish; "
                "sign in again to get a new token.",
            )

        claims = _verify_signature(token, key)
        self._check_times(claims)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            _reject("token_claims_missing", "The token has no subject ('sub') claim.")
        token_use = _check_audience(issuer, claims)
        return VerifiedToken(
            issuer=issuer.config.issuer,
            subject=subject,
            email=_string_claim(claims, "email"),
            # Cognito sends the string "true"; Okta and OIDC send a JSON boolean.
            email_verified=claims.get("email_verified") in (True, "true"),
            name=_name(issuer.config, claims),
            groups=_groups(claims),
            token_use=token_use,
            claims=MappingProxyType(claims),
        )

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock.now().timestamp()
        exp = _numeric_date(claims, "exp")
        assert exp is not None  # PyJWT enforced require=["exp"]
        # RFC 7519: the token is invalid from `exp` on, hence >=.
        if now >= exp + self._leeway:
            _reject("token_expired", "The token has expired; get a new one.")
        nbf = _numeric_date(claims, "nbf")
        if nbf is not None and now < nbf - self._leeway:
            _reject(
                "token_not_yet_valid",
                "The token is not valid yet ('nbf'); check the issuing system's clock.",
            )
        iat = _numeric_date(claims, "iat")
        if iat is not None and iat > now + self._leeway:
            _reject(
                "token_not_yet_valid",
                "The token was issued in the future ('iat'); check the issuing system's clock.",
            )


def _parse_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload, read only to choose the issuer and key; nothing is trusted yet.

    Decoded with the C base64 codec rather than PyJWT's, whose per-character check would
    double the cost of a verification; PyJWT still parses everything that gets verified.
    """
    segments = token.split(".")
    try:
        if len(segments) != 3:
            raise ValueError("a JWS in compact form has three segments")
        return _json_segment(segments[0]), _json_segment(segments[1])
    except (ValueError, RecursionError):
        _reject(
            "token_malformed",
            "The token is not a JWT: expected three base64url segments "
            "(header.payload.signature) with JSON header and payload.",
        )


def _json_segment(segment: str) -> dict[str, Any]:
    raw = base64.b64decode(segment + "=" * (-len(segment) % 4), altchars=b"-_", validate=True)
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("segment is not a JSON object")
    return value


def _verify_signature(token: str, key: jwt.PyJWK) -> dict[str, Any]:
    try:
        return jwt.decode(token, key=key, algorithms=[_ALGORITHM], options=_SIGNATURE_ONLY)
    except jwt.InvalidSignatureError:
        _reject("token_signature_invalid", "The token's signature does not match its contents.")
    except jwt.MissingRequiredClaimError:
        _reject("token_claims_missing", "The token has no expiry ('exp') claim.")
    except jwt.PyJWTError:
        _reject("token_malformed", "The token could not be decoded.")


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    # bool is an int subclass, and JSON admits NaN/Infinity, which would never expire.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _reject(
            "token_malformed",
            f"The token's '{name}' claim must be a number of seconds since the epoch.",
        )
    return float(value)


def _check_audience(issuer: _Issuer, claims: Mapping[str, Any]) -> str | None:
    """Raise unless the token is meant for this service; return its ``token_use``."""
    config = issuer.config
    if config.kind == "cognito":
        token_use = claims.get("token_use")
        if token_use not in ("id", "access"):
            _reject(
                "token_claims_missing",
                "The Cognito token has no 'token_use' claim of 'id' or 'access'.",
            )
        if config.token_use not in ("any", token_use):
            _reject(
                "token_use_mismatch",
                f"This service accepts Cognito {config.token_use} tokens only, "
                f"not {token_use} tokens.",
            )
        field = _CLIENT_CLAIM[token_use]
        client = claims.get(field)
        if not isinstance(client, str) or client not in issuer.audiences:
            _reject(
                "token_audience_mismatch",
                f"The token was issued for a different app client ('{field}').",
            )
        return str(token_use)

    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not any(isinstance(a, str) and a in issuer.audiences for a in audiences):
        _reject("token_audience_mismatch", "The token was issued for a different audience ('aud').")
    if config.kind == "dev":
        if claims.get("token_use") != "id":
            _reject("token_use_mismatch", "The dev identity provider's tokens must be ID tokens.")
        return "id"
    return None


def _string_claim(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None


def _name(config: TrustedIssuer, claims: Mapping[str, Any]) -> str | None:
    name = _string_claim(claims, "name")
    if name is None and config.kind == "cognito":
        # Cognito puts the user name in `cognito:username` (ID) or `username` (access).
        name = _string_claim(claims, "cognito:username") or _string_claim(claims, "username")
    return name


def _groups(claims: Mapping[str, Any]) -> tuple[str, ...]:
    value = claims.get("cognito:groups", claims.get("groups"))
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(group for group in value if isinstance(group, str))
    return ()
