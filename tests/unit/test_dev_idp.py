"""DevIdentityProvider: tokens for the local stack, verified like any other issuer's."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from musicsync.devidp import (
    DEV_AUDIENCE,
    DEV_ISSUER,
    KEY_FILE_NAME,
    DevIdentityProvider,
    _rfc7638_thumbprint,
)
from services.core.clock import ManualClock
from services.core.errors import AuthenticationError
from services.core.identity.verifier import TokenVerifier

pytestmark = pytest.mark.unit


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2030, 1, 1, tzinfo=UTC))


def test_a_minted_token_verifies_against_the_providers_own_issuer_config(
    tmp_path: Path, clock: ManualClock
) -> None:
    # Given the dev provider and a verifier that trusts it
    idp = DevIdentityProvider(tmp_path, clock)
    verifier = TokenVerifier([idp.trusted_issuer()], clock)

    # When a token is minted for a user
    verified = verifier.verify(idp.mint("ada", name="Ada Lovelace"))

    # Then it identifies that user as an ID token of the dev issuer
    assert verified.issuer == DEV_ISSUER
    assert verified.subject == "ada"
    assert verified.email == "ada@example.com"
    assert verified.name == "Ada Lovelace"
    assert verified.token_use == "id"
    assert verified.claims["aud"] == DEV_AUDIENCE


def test_a_minted_token_lives_for_its_ttl_on_the_clock(tmp_path: Path, clock: ManualClock) -> None:
    idp = DevIdentityProvider(tmp_path, clock)
    verifier = TokenVerifier([idp.trusted_issuer()], clock, leeway_seconds=0)
    token = idp.mint("ada", email="ada@musicsync.test", ttl_seconds=600)

    clock.advance(timedelta(seconds=599))
    assert verifier.verify(token).email == "ada@musicsync.test"

    clock.advance(timedelta(seconds=1))
    with pytest.raises(AuthenticationError) as caught:
        verifier.verify(token)
    assert caught.value.code == "token_expired"


def test_the_key_persists_across_instances(tmp_path: Path, clock: ManualClock) -> None:
    # Given a token minted before a restart
    token = DevIdentityProvider(tmp_path, clock).mint("ada")

    # When the provider is created again over the same directory
    restarted = DevIdentityProvider(tmp_path, clock)

    # Then it publishes the same key and still accepts the old token
    assert restarted.jwks() == DevIdentityProvider(tmp_path, clock).jwks()
    assert TokenVerifier([restarted.trusted_issuer()], clock).verify(token).subject == "ada"


def test_the_key_file_is_private_to_its_owner(tmp_path: Path, clock: ManualClock) -> None:
    DevIdentityProvider(tmp_path / "state", clock)

    mode = stat.S_IMODE((tmp_path / "state" / KEY_FILE_NAME).stat().st_mode)

    assert mode == 0o600
    assert [p.name for p in (tmp_path / "state").iterdir()] == [KEY_FILE_NAME]


def test_the_kid_is_the_rfc7638_thumbprint_of_the_public_key() -> None:
    # The example key and thumbprint of RFC 7638, section 3.1.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
        "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
        "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )

    assert (
        _rfc7638_thumbprint({"n": n, "e": "AQAB"}) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    )


def test_the_published_key_is_named_by_its_thumbprint(tmp_path: Path, clock: ManualClock) -> None:
    (jwk,) = DevIdentityProvider(tmp_path, clock).jwks()["keys"]

    assert jwk["kid"] == _rfc7638_thumbprint(jwk)
    assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig")
