"""Built-in identity provider for the local stack: mints RS256 ID tokens for any user name."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from services.core.clock import Clock
from services.core.identity.issuers import TrustedIssuer

DEV_ISSUER = "https://dev-idp.musicsync.local"
DEV_AUDIENCE = "musicsync-local"
KEY_FILE_NAME = "dev-idp-key.pem"


class DevIdentityProvider:
    """Signs tokens with an RSA key kept on disk, so tokens survive a restart of the stack."""

    def __init__(self, key_dir: Path, clock: Clock) -> None:
        self._clock = clock
        self._private_key = _load_or_create_key(key_dir / KEY_FILE_NAME)
        public_jwk: dict[str, Any] = RSAAlgorithm.to_jwk(
            self._private_key.public_key(), as_dict=True
        )
        self._kid = _rfc7638_thumbprint(public_jwk)
        self._jwk = {
            "kty": "RSA",
            "kid": self._kid,
            "use": "sig",
            "alg": "RS256",
            "n": public_jwk["n"],
            "e": public_jwk["e"],
        }

    def jwks(self) -> dict[str, Any]:
        """The public key set, as served at a JWKS endpoint."""
        return {"keys": [dict(self._jwk)]}

    def trusted_issuer(self) -> TrustedIssuer:
        """Configuration under which a TokenVerifier accepts this provider's tokens."""
        return TrustedIssuer(
            kind="dev", issuer=DEV_ISSUER, audiences=[DEV_AUDIENCE], jwks=self.jwks()
        )

    def mint(
        self,
        username: str,
        *,
        email: str | None = None,
        name: str | None = None,
        ttl_seconds: int = 12 * 3600,
        email_verified: bool = True,
    ) -> str:
        """A signed ID token for ``username``, valid from the clock's now for ``ttl_seconds``.

        ``email_verified=False`` stands for a provider that does not vouch for the address.
        """
        now = self._clock.now()
        issued_at = int(now.timestamp())
        claims: dict[str, Any] = {
            "iss": DEV_ISSUER,
            "aud": DEV_AUDIENCE,
            "sub": username,
            "email": email or f"{username}@example.com",
            "email_verified": email_verified,
            "token_use": "id",
            "iat": issued_at,
            "nbf": issued_at,
            "exp": int((now + timedelta(seconds=ttl_seconds)).timestamp()),
        }
        if name is not None:
            claims["name"] = name
        return jwt.encode(claims, self._private_key, algorithm="RS256", headers={"kid": self._kid})


def _load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        return _create_key(path)
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return key


def _create_key(path: Path) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Written to a private (0600) temporary file and then linked into place: the key is
    # never readable by others or half-written under its name, and of two processes
    # starting together the second adopts the first one's key.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
        path.hardlink_to(temporary)
    except FileExistsError:
        return _load_or_create_key(path)
    finally:
        Path(temporary).unlink()
    return key


def _rfc7638_thumbprint(jwk: dict[str, Any]) -> str:
    """SHA-256 JWK thumbprint: the required RSA members, sorted, without whitespace."""
    canonical = json.dumps(
        {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
