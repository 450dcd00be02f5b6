"""TokenVerifier against real issuers: Cognito (moto server) and an Okta-shaped JWKS endpoint."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from threading import Thread
from typing import Any, Literal

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from moto.server import ThreadedMotoServer

from services.core.clock import Clock, ManualClock, SystemClock
from services.core.errors import AuthenticationError
from services.core.identity.issuers import TrustedIssuer
from services.core.identity.verifier import IdentityProviderUnavailable, TokenVerifier

pytestmark = pytest.mark.integration

REGION = "eu-west-1"
PASSWORD = "Correct-Horse-9!"
OKTA_AUDIENCE = "api://default"


def rejection_code(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(AuthenticationError) as caught:
        verifier.verify(token)
    return caught.value.code


# --- Cognito through moto ---------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """A moto server on a free loopback port; yields its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass(frozen=True)
class CognitoLogin:
    issuer: str
    jwks_url: str
    client_id: str
    subject: str
    id_token: str
    access_token: str


class CognitoPool:
    """A user pool in moto, driven through boto3 as the real service would be."""

    def __init__(self, endpoint: str, name: str) -> None:
        self._endpoint = endpoint
        self._client = boto3.client(
            "cognito-idp",
            region_name=REGION,
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.pool_id: str = self._client.create_user_pool(PoolName=name)["UserPool"]["Id"]

    def add_client(self, name: str) -> str:
        created = self._client.create_user_pool_client(
            UserPoolId=self.pool_id,
            ClientName=name,
            ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )
        client_id: str = created["UserPoolClient"]["ClientId"]
        return client_id

    def add_user(self, username: str, *groups: str) -> None:
        self._client.admin_create_user(
            UserPoolId=self.pool_id,
            Username=username,
            UserAttributes=[{"Name": "email", "Value": f"{username}@example.com"}],
            MessageAction="SUPPRESS",
        )
        self._client.admin_set_user_password(
            UserPoolId=self.pool_id, Username=username, Password=PASSWORD, Permanent=True
        )
        for group in groups:
            self._client.create_group(UserPoolId=self.pool_id, GroupName=group)
            self._client.admin_add_user_to_group(
                UserPoolId=self.pool_id, Username=username, GroupName=group
            )

    def login(self, client_id: str, username: str) -> CognitoLogin:
        result = self._client.admin_initiate_auth(
            UserPoolId=self.pool_id,
            ClientId=client_id,
            AuthFlow="ADMIN_USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": username, "PASSWORD": PASSWORD},
        )["AuthenticationResult"]
        attributes = self._client.admin_get_user(UserPoolId=self.pool_id, Username=username)
        subject = next(a["Value"] for a in attributes["UserAttributes"] if a["Name"] == "sub")
        return CognitoLogin(
            # Tokens carry the real AWS issuer; only the keys are served by moto.
            issuer=f"https://cognito-idp.{REGION}.amazonaws.com/{self.pool_id}",
            jwks_url=f"{self._endpoint}/{self.pool_id}/.well-known/jwks.json",
            client_id=client_id,
            subject=subject,
            id_token=result["IdToken"],
            access_token=result["AccessToken"],
        )


@dataclass(frozen=True)
class CognitoSetup:
    web: CognitoLogin
    partner_client: CognitoLogin
    other_pool: CognitoLogin


@pytest.fixture(scope="module")
def cognito(moto_server: str) -> CognitoSetup:
    """Our pool with our app client and a partner's, plus an unrelated pool."""
    ours = CognitoPool(moto_server, "musicsync-users")
    web, partner = ours.add_client("web"), ours.add_client("partner")
    ours.add_user("alice", "admins")
    theirs = CognitoPool(moto_server, "someone-elses-users")
    theirs.add_user("mallory")
    return CognitoSetup(
        web=ours.login(web, "alice"),
        partner_client=ours.login(partner, "alice"),
        other_pool=theirs.login(theirs.add_client("web"), "mallory"),
    )


def cognito_verifier(
    login: CognitoLogin, accepts: Literal["id", "access", "any"] = "any"
) -> TokenVerifier:
    issuer = TrustedIssuer(
        kind="cognito",
        issuer=login.issuer,
        audiences=[login.client_id],
        token_use=accepts,
        jwks_url=login.jwks_url,
    )
    # moto stamps tokens with wall time, so the real clock judges them.
    return TokenVerifier([issuer], SystemClock())


def test_a_cognito_id_token_verifies_through_the_pools_http_jwks(cognito: CognitoSetup) -> None:
    # Given a user who signed in to our app client
    login = cognito.web

    # When the ID token is verified with keys fetched from the pool's JWKS endpoint
    verified = cognito_verifier(login).verify(login.id_token)

    # Then the user is identified by the pool's subject, user name and groups
    assert verified.issuer == login.issuer
    assert verified.subject == login.subject
    assert verified.token_use == "id"
    assert verified.name == "alice"
    assert verified.groups == ("admins",)
    # moto's ID tokens carry no `email`, although the user has one.
    assert verified.email is None


def test_a_cognito_access_token_verifies_through_the_pools_http_jwks(
    cognito: CognitoSetup,
) -> None:
    login = cognito.web

    verified = cognito_verifier(login).verify_authorization_header(f"Bearer {login.access_token}")

    assert verified.subject == login.subject
    assert verified.token_use == "access"
    assert verified.name == "alice"
    assert verified.groups == ("admins",)


def test_an_id_token_is_refused_where_only_access_tokens_are_accepted(
    cognito: CognitoSetup,
) -> None:
    # Given a service configured for access tokens only
    verifier = cognito_verifier(cognito.web, accepts="access")

    # Then the access token passes and the ID token is refused for its use
    assert verifier.verify(cognito.web.access_token).token_use == "access"
    assert rejection_code(verifier, cognito.web.id_token) == "token_use_mismatch"


def test_an_access_token_is_refused_where_only_id_tokens_are_accepted(
    cognito: CognitoSetup,
) -> None:
    verifier = cognito_verifier(cognito.web, accepts="id")

    assert verifier.verify(cognito.web.id_token).token_use == "id"
    assert rejection_code(verifier, cognito.web.access_token) == "token_use_mismatch"


def test_a_token_from_another_pool_is_untrusted_although_moto_signs_it_with_the_same_key(
    cognito: CognitoSetup,
) -> None:
    # Given a verifier for our pool, and a genuine token of another pool (moto shares one key)
    verifier = cognito_verifier(cognito.web)

    # Then only the exact issuer check stands between them, and it holds
    assert rejection_code(verifier, cognito.other_pool.id_token) == "token_issuer_untrusted"
    assert rejection_code(verifier, cognito.other_pool.access_token) == "token_issuer_untrusted"


def test_a_token_for_another_app_client_of_our_pool_is_refused(cognito: CognitoSetup) -> None:
    verifier = cognito_verifier(cognito.web)

    assert rejection_code(verifier, cognito.partner_client.id_token) == "token_audience_mismatch"
    assert (
        rejection_code(verifier, cognito.partner_client.access_token) == "token_audience_mismatch"
    )


# --- Okta-shaped issuer over a local JWKS endpoint ---------------------------------------


START = datetime(2030, 1, 1, tzinfo=UTC)
NOW = int(START.timestamp())
KID = "okta-key-1"


class JwksServer:
    """Serves one key set on loopback the way an Okta authorization server does; counts GETs."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.requests = 0
        body = json.dumps(document).encode()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/oauth2/default/v1/keys":
                    self.send_error(404)
                    return
                owner.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Keep request lines out of the test output."""

        # Single-threaded on purpose: requests are then counted without races.
        self._http = HTTPServer(("127.0.0.1", 0), Handler)
        port = self._http.server_address[1]
        self.issuer = f"http://127.0.0.1:{port}/oauth2/default"
        self.jwks_url = f"{self.issuer}/v1/keys"
        # A short poll interval keeps shutdown, and so each test's teardown, quick.
        self._thread = Thread(target=self._http.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self._running = True

    def stop(self) -> None:
        if self._running:
            self._http.shutdown()
            self._http.server_close()
            self._thread.join()
            self._running = False


@pytest.fixture(scope="module")
def okta_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_server(okta_key: rsa.RSAPrivateKey) -> Iterator[JwksServer]:
    """An Okta-like JWKS endpoint on a random loopback port, publishing ``okta_key``."""
    public: dict[str, Any] = RSAAlgorithm.to_jwk(okta_key.public_key(), as_dict=True)
    server = JwksServer({"keys": [{**public, "kid": KID, "alg": "RS256", "use": "sig"}]})
    yield server
    server.stop()


def okta_token(key: rsa.RSAPrivateKey, issuer: str, *, kid: str = KID) -> str:
    """An access token shaped like Okta's (custom authorization server `default`)."""
    claims = {
        "ver": 1,
        "jti": f"AT.{uuid.uuid4().hex}",
        "iss": issuer,
        "aud": OKTA_AUDIENCE,
        "iat": NOW,
        "exp": NOW + 3600,
        "cid": "0oa1clientid",
        "uid": "00u1userid",
        "scp": ["openid", "email"],
        "sub": "ada@example.com",
        "groups": ["Everyone", "listeners"],
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def okta_verifier(server: JwksServer, clock: Clock, jwks_url: str | None = None) -> TokenVerifier:
    issuer = TrustedIssuer(
        kind="okta",
        issuer=server.issuer,
        audiences=[OKTA_AUDIENCE],
        jwks_url=jwks_url or server.jwks_url,
    )
    return TokenVerifier([issuer], clock)


def test_an_okta_token_verifies_through_its_jwks_endpoint(
    jwks_server: JwksServer, okta_key: rsa.RSAPrivateKey
) -> None:
    verifier = okta_verifier(jwks_server, ManualClock(START))

    verified = verifier.verify(okta_token(okta_key, jwks_server.issuer))

    assert verified.issuer == jwks_server.issuer
    assert verified.subject == "ada@example.com"
    assert verified.groups == ("Everyone", "listeners")
    assert verified.token_use is None
    assert jwks_server.requests == 1


def test_a_kid_flood_reaches_the_jwks_endpoint_at_most_once_per_ten_seconds(
    jwks_server: JwksServer, okta_key: rsa.RSAPrivateKey
) -> None:
    # Given a verifier that has fetched the issuer's keys
    clock = ManualClock(START)
    verifier = okta_verifier(jwks_server, clock)
    genuine = okta_token(okta_key, jwks_server.issuer)
    verifier.verify(genuine)
    payload = genuine.split(".")[1]

    def flood() -> None:
        for _ in range(1000):
            forged_header = json.dumps({"alg": "RS256", "kid": uuid.uuid4().hex}).encode()
            token = f"{base64.urlsafe_b64encode(forged_header).decode().rstrip('=')}.{payload}.c2ln"
            with pytest.raises(AuthenticationError, match="does not publish"):
                verifier.verify(token)

    # When 1,000 tokens with random kids arrive
    flood()

    # Then the endpoint saw no further request
    assert jwks_server.requests == 1

    # And ten seconds later one more, whatever the size of the next flood
    clock.advance(timedelta(seconds=10))
    flood()
    assert jwks_server.requests == 2
    assert verifier.verify(genuine).subject == "ada@example.com"


@pytest.mark.parametrize("down", ["stopped", "wrong-path"])
def test_an_unreachable_jwks_endpoint_gives_a_clear_retryable_error(
    jwks_server: JwksServer, okta_key: rsa.RSAPrivateKey, down: str
) -> None:
    # Given an endpoint that refuses connections, or answers 404
    if down == "stopped":
        jwks_server.stop()
        url = jwks_server.jwks_url
    else:
        url = jwks_server.issuer + "/v1/no-such-keys"
    verifier = okta_verifier(jwks_server, ManualClock(START), jwks_url=url)

    # When a token of that issuer arrives
    with pytest.raises(IdentityProviderUnavailable) as caught:
        verifier.verify(okta_token(okta_key, jwks_server.issuer))

    # Then the caller learns the issuer's keys could not be fetched and may retry
    assert caught.value.status == 503
    assert caught.value.code == "jwks_unavailable"
    assert "could not be fetched" in (caught.value.detail or "")
    assert caught.value.headers == {"Retry-After": "10"}
