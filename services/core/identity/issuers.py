"""Configuration of the identity providers whose tokens the platform accepts."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Plain HTTP would let anyone on the path substitute their own signing keys; loopback is
# allowed because the local stack and its tests serve keys there.
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class TrustedIssuer(BaseModel):
    """One identity provider: the exact ``iss`` it signs with, its audiences and its keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["cognito", "okta", "dev"]
    issuer: str = Field(min_length=1)
    audiences: list[str] = Field(min_length=1)
    # Which Cognito token kind is accepted (a claim value, not a secret).
    token_use: Literal["id", "access", "any"] = "any"  # noqa: S105
    jwks_url: str | None = None
    jwks: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> TrustedIssuer:
        if (self.jwks_url is None) == (self.jwks is None):
            raise ValueError("set exactly one of jwks_url and jwks")
        if self.kind != "cognito" and self.token_use != "any":  # noqa: S105
            raise ValueError("token_use applies to cognito issuers only")
        if self.jwks_url is not None:
            url = urlsplit(self.jwks_url)
            secure = url.scheme == "https" or (
                url.scheme == "http" and url.hostname in _LOOPBACK_HOSTS
            )
            if not secure or not url.hostname:
                raise ValueError("jwks_url must be https (plain http only on loopback)")
        return self
