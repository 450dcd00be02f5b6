"""TokenVerifier: every forged, stale or misdirected token is refused with its own code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from services.core.clock import ManualClock
from services.core.errors import AuthenticationError
from services.core.identity.issuers import TrustedIssuer
from services.core.identity.verifier import IdentityProviderUnavailable, TokenVerifier

pytestmark = pytest.mark.unit

START = datetime(2030, 1, 1, tzinfo=UTC)
NOW = int(START.timestamp())
LEEWAY = 30

OKTA_ISSUER = "https://idp.example.test/oauth2/default"
OKTA_AUDIENCE = "api://musicsync"
COGNITO_ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Pool1"
COGNITO_CLIENT = "web-client-id"
JWKS_URL = "https://idp.example.test/oauth2/default/v1/keys"

TokenUse = Literal["id", "access", "any"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> str:
    """A JWS assembled by hand, as an attacker would, without PyJWT's safety checks."""
    return ".".join(
        [
            b64url(json.dumps(header).encode()),
            b64url(json.dumps(claims).encode()),
            b64url(signature),
        ]
    )


@dataclass
class Signer:
    """An issuer's RSA signing key and the JWKS that publishes it."""

    kid: str
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwk(self) -> dict[str, Any]:
        public: dict[str, Any] = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk()]}

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid, **header})


class CountingFetcher:
    """Stands in for the JWKS endpoint; counts how often it is asked."""

    def __init__(self, *documents: dict[str, Any]) -> None:
        self.documents = list(documents)
        self.calls = 0
        self.fail = False

    def __call__(self, url: str) -> dict[str, Any]:
        self.calls += 1
        if self.fail:
            raise OSError("connection refused")
        # The last document keeps being served once the earlier ones are used up.
        return self.documents.pop(0) if len(self.documents) > 1 else self.documents[0]


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer(kid="key-2030-01")


@pytest.fixture(scope="module")
def other_signer() -> Signer:
    return Signer(kid="key-2030-02")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


def okta_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": OKTA_ISSUER,
        "aud": OKTA_AUDIENCE,
        "sub": "00u1abcd",
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "groups": ["listeners"],
        "iat": NOW,
        "exp": NOW + 3600,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def cognito_claims(token_use: str, **overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": COGNITO_ISSUER,
        "sub": "5f0c1e7a-1111-2222-3333-444455556666",
        "token_use": token_use,
        "iat": NOW,
        "auth_time": NOW,
        "exp": NOW + 3600,
        "cognito:groups": ["admins"],
    }
    if token_use == "id":
        claims.update({"aud": COGNITO_CLIENT, "cognito:username": "ada"})
    else:
        claims.update({"client_id": COGNITO_CLIENT, "username": "ada"})
    claims.update(overrides)
    return claims


def okta_verifier(signer: Signer, clock: ManualClock, **options: Any) -> TokenVerifier:
    issuer = TrustedIssuer(
        kind="okta", issuer=OKTA_ISSUER, audiences=[OKTA_AUDIENCE], jwks=signer.jwks()
    )
    return TokenVerifier([issuer], clock, leeway_seconds=LEEWAY, **options)


def cognito_verifier(
    signer: Signer, clock: ManualClock, accepts: TokenUse = "any"
) -> TokenVerifier:
    issuer = TrustedIssuer(
        kind="cognito",
        issuer=COGNITO_ISSUER,
        audiences=[COGNITO_CLIENT],
        token_use=accepts,
        jwks=signer.jwks(),
    )
    return TokenVerifier([issuer], clock, leeway_seconds=LEEWAY)


def remote_verifier(clock: ManualClock, fetcher: CountingFetcher) -> TokenVerifier:
    issuer = TrustedIssuer(
        kind="okta", issuer=OKTA_ISSUER, audiences=[OKTA_AUDIENCE], jwks_url=JWKS_URL
    )
    return TokenVerifier([issuer], clock, leeway_seconds=LEEWAY, fetch_jwks=fetcher)


def rejection(call: Callable[[], object], code: str) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as caught:
        call()
    assert caught.value.code == code, caught.value.detail
    assert caught.value.status == 401
    return caught.value


# --- accepted tokens -------------------------------------------------------------------


def test_a_valid_okta_token_yields_the_callers_identity(signer: Signer, clock: ManualClock) -> None:
    # Given a token signed by the trusted issuer for this service's audience
    token = signer.sign(okta_claims())

    # When it is verified
    verified = okta_verifier(signer, clock).verify(token)

    # Then the identity comes from its claims
    assert verified.issuer == OKTA_ISSUER
    assert verified.subject == "00u1abcd"
    assert verified.email == "ada@example.com"
    assert verified.name == "Ada Lovelace"
    assert verified.groups == ("listeners",)
    assert verified.token_use is None
    assert verified.claims["aud"] == OKTA_AUDIENCE


def test_an_audience_list_is_accepted_when_one_entry_is_ours(
    signer: Signer, clock: ManualClock
) -> None:
    token = signer.sign(okta_claims(aud=["api://other", OKTA_AUDIENCE]))

    assert okta_verifier(signer, clock).verify(token).subject == "00u1abcd"


@pytest.mark.parametrize("token_use", ["id", "access"])
def test_cognito_id_and_access_tokens_both_pass_when_any_use_is_allowed(
    signer: Signer, clock: ManualClock, token_use: str
) -> None:
    # Given a Cognito issuer that accepts both token kinds
    verifier = cognito_verifier(signer, clock)

    # When either kind is verified
    verified = verifier.verify(signer.sign(cognito_claims(token_use)))

    # Then the user name and groups are read from Cognito's own claims
    assert verified.token_use == token_use
    assert verified.name == "ada"
    assert verified.groups == ("admins",)
    assert verified.email is None


def test_the_bearer_scheme_is_matched_case_insensitively(
    signer: Signer, clock: ManualClock
) -> None:
    token = signer.sign(okta_claims())

    verified = okta_verifier(signer, clock).verify_authorization_header(f"bEaReR {token}")

    assert verified.subject == "00u1abcd"


# --- forged tokens ---------------------------------------------------------------------


def test_an_unsigned_alg_none_token_is_refused(signer: Signer, clock: ManualClock) -> None:
    # Given a token that claims to need no signature
    token = compact({"alg": "none", "kid": signer.kid}, okta_claims(), b"")

    # Then it is refused for its algorithm
    rejection(lambda: okta_verifier(signer, clock).verify(token), "token_algorithm_not_allowed")


def test_an_hs256_token_keyed_with_the_public_key_is_refused(
    signer: Signer, clock: ManualClock
) -> None:
    # Given the key-confusion attack: HMAC keyed with the issuer's public PEM
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": signer.kid}).encode())
    payload = b64url(json.dumps(okta_claims()).encode())
    mac = hmac.new(signer.public_pem(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{b64url(mac)}"

    # Then it is refused for its algorithm before any key is used
    rejection(lambda: okta_verifier(signer, clock).verify(token), "token_algorithm_not_allowed")


def test_a_tampered_payload_fails_the_signature_check(signer: Signer, clock: ManualClock) -> None:
    # Given a genuine token whose payload was swapped for a more privileged one
    header, _, signature = signer.sign(okta_claims()).split(".")
    forged = okta_claims(sub="admin", groups=["admins"])
    token = f"{header}.{b64url(json.dumps(forged).encode())}.{signature}"

    # Then the signature no longer matches, and the detail does not name the key
    error = rejection(lambda: okta_verifier(signer, clock).verify(token), "token_signature_invalid")
    assert signer.kid not in (error.detail or "")


def test_a_token_signed_by_another_key_under_our_kid_fails_the_signature_check(
    signer: Signer, other_signer: Signer, clock: ManualClock
) -> None:
    token = other_signer.sign(okta_claims(), kid=signer.kid)

    rejection(lambda: okta_verifier(signer, clock).verify(token), "token_signature_invalid")


@pytest.mark.parametrize(
    "issuer",
    [
        "https://idp.example.test/oauth2",
        "https://idp.example.test",
        OKTA_ISSUER + "/",
        OKTA_ISSUER + "-evil",
        OKTA_ISSUER + ".evil.example",
        "https://IDP.example.test/oauth2/default",
    ],
    ids=["prefix", "host-only", "trailing-slash", "suffix", "domain-suffix", "case"],
)
def test_an_issuer_that_only_resembles_the_trusted_one_is_untrusted(
    signer: Signer, clock: ManualClock, issuer: str
) -> None:
    # Given a token signed with the trusted key but an `iss` that is not exactly ours
    token = signer.sign(okta_claims(iss=issuer))

    # Then the issuer is untrusted
    rejection(lambda: okta_verifier(signer, clock).verify(token), "token_issuer_untrusted")


def test_a_token_without_an_issuer_is_untrusted(signer: Signer, clock: ManualClock) -> None:
    token = signer.sign(okta_claims(iss=None))

    rejection(lambda: okta_verifier(signer, clock).verify(token), "token_issuer_untrusted")


# --- audience and token use ------------------------------------------------------------


@pytest.mark.parametrize("aud", ["api://other", ["api://other", "api://third"], None])
def test_a_token_for_another_audience_is_refused(
    signer: Signer, clock: ManualClock, aud: Any
) -> None:
    token = signer.sign(okta_claims(aud=aud))

    rejection(lambda: okta_verifier(signer, clock).verify(token), "token_audience_mismatch")


@pytest.mark.parametrize(("token_use", "client_claim"), [("id", "aud"), ("access", "client_id")])
def test_a_cognito_token_for_another_app_client_is_refused(
    signer: Signer, clock: ManualClock, token_use: str, client_claim: str
) -> None:
    # Given a Cognito token issued to a different app client of the same pool
    token = signer.sign(cognito_claims(token_use, **{client_claim: "someone-elses-client"}))

    # Then it is refused for its audience
    rejection(lambda: cognito_verifier(signer, clock).verify(token), "token_audience_mismatch")


def test_a_cognito_access_token_does_not_pass_on_an_aud_claim(
    signer: Signer, clock: ManualClock
) -> None:
    # Given an access token naming our client only in `aud`, where Cognito never puts it
    claims = cognito_claims("access", aud=COGNITO_CLIENT)
    del claims["client_id"]

    rejection(
        lambda: cognito_verifier(signer, clock).verify(signer.sign(claims)),
        "token_audience_mismatch",
    )


@pytest.mark.parametrize(("required", "sent"), [("access", "id"), ("id", "access")])
def test_a_cognito_token_of_the_wrong_kind_is_refused(
    signer: Signer, clock: ManualClock, required: TokenUse, sent: str
) -> None:
    # Given an issuer that accepts only one kind of Cognito token
    verifier = cognito_verifier(signer, clock, accepts=required)

    # When the other kind is presented
    token = signer.sign(cognito_claims(sent))

    # Then it is refused for its use
    rejection(lambda: verifier.verify(token), "token_use_mismatch")


def test_a_cognito_token_without_token_use_is_refused(signer: Signer, clock: ManualClock) -> None:
    claims = cognito_claims("id")
    del claims["token_use"]

    rejection(
        lambda: cognito_verifier(signer, clock).verify(signer.sign(claims)),
        "token_claims_missing",
    )


# --- time ------------------------------------------------------------------------------


def test_an_expired_token_is_refused(signer: Signer, clock: ManualClock) -> None:
    token = signer.sign(okta_claims(exp=NOW - 3600))

    rejection(lambda: okta_verifier(signer, clock).verify(token), "token_expired")


def test_expiry_is_judged_by_the_clock_port_not_wall_time(
    signer: Signer, clock: ManualClock
) -> None:
    # Given a token valid for an hour from the (simulated) start time
    verifier = okta_verifier(signer, clock)
    token = signer.sign(okta_claims())
    assert verifier.verify(token)

    # When the simulated clock moves past expiry plus leeway
    clock.advance(timedelta(seconds=3600 + LEEWAY))

    # Then the token is expired although wall time never reached 2030
    rejection(lambda: verifier.verify(token), "token_expired")


@pytest.mark.parametrize(("seconds_past_exp", "accepted"), [(LEEWAY - 1, True), (LEEWAY, False)])
def test_expiry_leeway_is_honoured_up_to_the_boundary(
    signer: Signer, clock: ManualClock, seconds_past_exp: int, accepted: bool
) -> None:
    # Given a token that expired a moment ago
    verifier = okta_verifier(signer, clock)
    token = signer.sign(okta_claims(iat=NOW - 3600, exp=NOW - seconds_past_exp))

    # Then it is accepted within the leeway and refused from its end on
    if accepted:
        assert verifier.verify(token).subject == "00u1abcd"
    else:
        rejection(lambda: verifier.verify(token), "token_expired")


@pytest.mark.parametrize(("nbf_ahead", "accepted"), [(LEEWAY, True), (LEEWAY + 1, False)])
def test_a_token_not_valid_yet_is_refused_beyond_the_leeway(
    signer: Signer, clock: ManualClock, nbf_ahead: int, accepted: bool
) -> None:
    verifier = okta_verifier(signer, clock)
    token = signer.sign(okta_claims(nbf=NOW + nbf_ahead))

    if accepted:
        assert verifier.verify(token).subject == "00u1abcd"
    else:
        rejection(lambda: verifier.verify(token), "token_not_yet_valid")


def test_a_token_issued_in_the_future_is_refused(signer: Signer, clock: ManualClock) -> None:
    token = signer.sign(okta_claims(iat=NOW + LEEWAY + 60))

    rejection(lambda: okta_verifier(signer, clock).verify(token), "token_not_yet_valid")


@pytest.mark.parametrize("exp", ["tomorrow", True, float("inf")], ids=["string", "bool", "inf"])
def test_an_expiry_that_is_not_a_finite_number_is_malformed(
    signer: Signer, clock: ManualClock, exp: Any
) -> None:
    token = signer.sign(okta_claims(exp=exp))

    rejection(lambda: okta_verifier(signer, clock).verify(token), "token_malformed")


@pytest.mark.parametrize("claim", ["exp", "sub"])
def test_a_token_without_a_required_claim_is_refused(
    signer: Signer, clock: ManualClock, claim: str
) -> None:
    token = signer.sign(okta_claims(**{claim: None}))

    rejection(lambda: okta_verifier(signer, clock).verify(token), "token_claims_missing")


# --- keys ------------------------------------------------------------------------------


def test_a_flood_of_unknown_kids_causes_one_fetch_per_interval(
    signer: Signer, clock: ManualClock
) -> None:
    # Given an issuer whose keys are fetched on demand
    fetcher = CountingFetcher(signer.jwks())
    verifier = remote_verifier(clock, fetcher)
    body = b64url(json.dumps(okta_claims()).encode())

    def flood() -> None:
        for _ in range(1000):
            kid = uuid.uuid4().hex
            header = b64url(json.dumps({"alg": "RS256", "kid": kid}).encode())
            error = rejection(
                partial(verifier.verify, f"{header}.{body}.c2ln"), "token_key_unknown"
            )
            assert kid not in (error.detail or "")

    # When 1,000 tokens with random kids arrive
    flood()

    # Then the key set was fetched once
    assert fetcher.calls == 1

    # And once the refetch interval has passed exactly one more fetch is allowed
    clock.advance(timedelta(seconds=10))
    flood()
    assert fetcher.calls == 2


def test_requests_arriving_during_the_first_fetch_wait_for_its_keys(
    signer: Signer, clock: ManualClock
) -> None:
    # Given a cold cache, a slow key endpoint and many request threads at once
    fetcher = CountingFetcher(signer.jwks())

    def slow_fetch(url: str) -> dict[str, Any]:
        time.sleep(0.05)
        return fetcher(url)

    issuer = TrustedIssuer(
        kind="okta", issuer=OKTA_ISSUER, audiences=[OKTA_AUDIENCE], jwks_url=JWKS_URL
    )
    verifier = TokenVerifier([issuer], clock, fetch_jwks=slow_fetch)
    token = signer.sign(okta_claims())

    def attempt(_: int) -> str:
        try:
            return verifier.verify(token).subject
        except AuthenticationError as error:
            return error.code

    # When they all present genuine tokens while the first fetch is in flight
    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = set(pool.map(attempt, range(200)))

    # Then every one is verified with the keys of that single fetch
    assert outcomes == {"00u1abcd"}
    assert fetcher.calls == 1


def test_a_rotated_key_is_picked_up_at_the_next_allowed_refetch(
    signer: Signer, other_signer: Signer, clock: ManualClock
) -> None:
    # Given keys already fetched, and an issuer that then rotates to a new key
    fetcher = CountingFetcher(signer.jwks(), other_signer.jwks())
    verifier = remote_verifier(clock, fetcher)
    assert verifier.verify(signer.sign(okta_claims()))
    rotated = other_signer.sign(okta_claims())

    # When a token signed with the new key arrives inside the refetch interval
    rejection(lambda: verifier.verify(rotated), "token_key_unknown")

    # Then after the interval the key set is refetched and the new key is trusted
    clock.advance(timedelta(seconds=10))
    assert verifier.verify(rotated).subject == "00u1abcd"
    assert fetcher.calls == 2
    # And the retired key is gone with it, for tokens not seen before
    rejection(lambda: verifier.verify(signer.sign(okta_claims(jti="new"))), "token_key_unknown")


def test_cached_keys_expire_after_their_ttl(signer: Signer, clock: ManualClock) -> None:
    fetcher = CountingFetcher(signer.jwks())
    verifier = remote_verifier(clock, fetcher)
    verifier.verify(signer.sign(okta_claims(exp=NOW + 7200, jti="1")))

    clock.advance(timedelta(minutes=59))
    verifier.verify(signer.sign(okta_claims(exp=NOW + 7200, jti="2")))
    assert fetcher.calls == 1

    clock.advance(timedelta(minutes=1))
    verifier.verify(signer.sign(okta_claims(exp=NOW + 7200, jti="3")))
    assert fetcher.calls == 2


def test_an_unreachable_key_endpoint_is_a_503_not_a_token_rejection(
    signer: Signer, clock: ManualClock
) -> None:
    # Given an issuer whose JWKS endpoint is down
    fetcher = CountingFetcher(signer.jwks())
    fetcher.fail = True
    verifier = remote_verifier(clock, fetcher)
    token = signer.sign(okta_claims())

    # When tokens arrive
    for _ in range(50):
        with pytest.raises(IdentityProviderUnavailable) as caught:
            verifier.verify(token)

    # Then the client is told to retry, and the endpoint is not hammered
    assert caught.value.status == 503
    assert caught.value.code == "jwks_unavailable"
    assert caught.value.headers["Retry-After"] == "10"
    assert fetcher.calls == 1


def test_cached_keys_stay_in_use_while_the_key_endpoint_is_down(
    signer: Signer, clock: ManualClock
) -> None:
    # Given keys fetched earlier, past their TTL, and an endpoint that is now down
    fetcher = CountingFetcher(signer.jwks())
    verifier = remote_verifier(clock, fetcher)
    verifier.verify(signer.sign(okta_claims()))
    clock.advance(timedelta(hours=2))
    fetcher.fail = True

    # When a token signed with a known key arrives
    verified = verifier.verify(signer.sign(okta_claims(iat=NOW + 7200, exp=NOW + 10800)))

    # Then it is still verified with the cached key
    assert verified.subject == "00u1abcd"
    assert fetcher.calls == 2


# --- size and framing ------------------------------------------------------------------


def test_an_oversized_token_is_refused_before_it_is_decoded(
    signer: Signer, clock: ManualClock
) -> None:
    # Given 8 KiB + 1 of bytes that would not even decode
    fetcher = CountingFetcher(signer.jwks())
    verifier = remote_verifier(clock, fetcher)
    token = "!" * (8 * 1024 + 1)

    # Then the size alone rejects it, with no parsing and no key lookup
    rejection(lambda: verifier.verify(token), "token_too_large")
    rejection(lambda: verifier.verify_authorization_header(f"Bearer {token}"), "token_too_large")
    assert fetcher.calls == 0


def test_the_size_limit_is_inclusive(signer: Signer, clock: ManualClock) -> None:
    token = signer.sign(okta_claims())

    assert okta_verifier(signer, clock, max_token_bytes=len(token)).verify(token)
    rejection(
        lambda: okta_verifier(signer, clock, max_token_bytes=len(token) - 1).verify(token),
        "token_too_large",
    )


@pytest.mark.parametrize("header", [None, "", "   ", "Bearer", "Bearer    "])
def test_a_missing_bearer_token_is_reported_as_missing(
    signer: Signer, clock: ManualClock, header: str | None
) -> None:
    verifier = okta_verifier(signer, clock)

    rejection(lambda: verifier.verify_authorization_header(header), "token_missing")


@pytest.mark.parametrize(
    "header",
    [
        "Basic YWRhOnNlY3JldA==",
        "garbage",
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "Bearer e30.e30",
        "Bearer W10.e30.c2ln",
        "Bearer ëyJ.e30.c2ln",
    ],
    ids=["basic", "no-scheme", "one-segment", "not-base64-json", "two-segments", "array", "utf8"],
)
def test_a_garbage_authorization_header_is_malformed(
    signer: Signer, clock: ManualClock, header: str
) -> None:
    verifier = okta_verifier(signer, clock)

    rejection(lambda: verifier.verify_authorization_header(header), "token_malformed")


def test_a_token_without_a_kid_is_malformed(signer: Signer, clock: ManualClock) -> None:
    token = jwt.encode(okta_claims(), signer.key, algorithm="RS256")

    rejection(lambda: okta_verifier(signer, clock).verify(token), "token_malformed")


# --- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys",
    [{}, {"jwks_url": JWKS_URL, "jwks": {"keys": []}}, {"jwks_url": "http://idp.example.test/k"}],
    ids=["neither", "both", "plain-http-off-loopback"],
)
def test_an_issuer_needs_exactly_one_safe_key_source(keys: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="jwks"):
        TrustedIssuer(kind="okta", issuer=OKTA_ISSUER, audiences=[OKTA_AUDIENCE], **keys)


def test_a_token_seen_before_is_not_checked_again_within_the_cache_window(
    signer: Signer, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.core.identity import verifier as module

    # Given a verifier that has accepted a token once
    verifier = okta_verifier(signer, clock)
    token = signer.sign(okta_claims())
    first = verifier.verify(token)
    checks: list[str] = []
    real = module._verify_signature

    def counting(token: str, key: Any) -> dict[str, Any]:
        checks.append(token)
        return real(token, key)

    monkeypatch.setattr(module, "_verify_signature", counting)

    # When the same token comes again within five minutes
    clock.advance(timedelta(minutes=4))
    again = verifier.verify(token)

    # Then it is the same identity, without another signature check
    assert again == first
    assert checks == []

    # And after the window it is checked again in full
    clock.advance(timedelta(minutes=2))
    assert verifier.verify(token) == first
    assert checks == [token]


def test_a_cached_token_still_expires_on_time(signer: Signer, clock: ManualClock) -> None:
    verifier = okta_verifier(signer, clock)
    token = signer.sign(okta_claims(exp=NOW + 120))
    verifier.verify(token)
    clock.advance(timedelta(seconds=120 + LEEWAY))
    rejection(lambda: verifier.verify(token), "token_expired")
