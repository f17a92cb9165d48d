"""Sign-in with OpenID Connect through the gateway, against a real provider on loopback."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from services.auth.tests.oidc_provider import authorize, oidc_provider, provider_settings
from services.gateway.app import create_app as create_gateway_app
from services.gateway.tests.conftest import client_of
from tests.conftest import (
    AUTH_PAYLOAD,
    GraphQLClient,
    auth_service,
    error_codes,
    gateway_settings,
    only_data,
    unique_email,
)

REDIRECT_URI = "http://localhost:3000/auth/callback"
PROVIDERS = "{ authProviders }"
START = (
    "mutation ($p: String!, $r: String!) "
    "{ startOidcLogin(provider: $p, redirectUri: $r) { authorizationUrl state } }"
)
FINISH = (
    "mutation ($p: String!, $c: String!, $s: String!) "
    f"{{ finishOidcLogin(provider: $p, code: $c, state: $s) {{ {AUTH_PAYLOAD} }} }}"
)
ME = "{ me { id email emailVerified createdAt } }"


@pytest.fixture(scope="module")
def oidc_gql(test_env):
    """A gateway in front of an auth service that knows a real provider as `mock`."""
    with oidc_provider() as issuer:
        overrides = provider_settings(issuer, redirect_uris=[REDIRECT_URI])
        with auth_service(**overrides) as auth:
            app = create_gateway_app(gateway_settings(auth.url))
            with client_of(app) as client:
                yield GraphQLClient(client)


def start(gql, redirect_uri=REDIRECT_URI) -> dict:
    """startOidcLogin's response body."""
    return gql(START, {"p": "mock", "r": redirect_uri})


def sign_in(gql, *, subject: str, email: str) -> dict:
    """Start through the gateway, authorize at the provider, finish through the gateway."""
    started = only_data(start(gql))["startOidcLogin"]
    answer = authorize(started["authorizationUrl"], subject=subject, email=email)
    assert answer["location"].startswith(REDIRECT_URI + "?")
    assert answer["state"] == started["state"]
    return gql(FINISH, {"p": "mock", "c": answer["code"], "s": answer["state"]})


def test_the_configured_providers_are_listed(oidc_gql, gql):
    assert only_data(oidc_gql(PROVIDERS)) == {"authProviders": ["mock"]}
    assert only_data(gql(PROVIDERS)) == {"authProviders": []}


def test_start_answers_a_code_flow_url_with_pkce_s256_state_and_nonce(oidc_gql):
    started = only_data(start(oidc_gql))["startOidcLogin"]
    query = parse_qs(urlsplit(started["authorizationUrl"]).query)
    assert query["response_type"] == ["code"]
    assert query["redirect_uri"] == [REDIRECT_URI]
    assert query["state"] == [started["state"]]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert len(query["nonce"][0]) >= 32


def test_a_whole_sign_in_creates_the_user_and_the_next_one_finds_them(oidc_gql):
    subject, email = f"sub-{uuid.uuid4().hex}", unique_email("oidc")
    first = only_data(sign_in(oidc_gql, subject=subject, email=email))["finishOidcLogin"]
    assert first["user"]["email"] == email
    assert first["accessToken"] and first["refreshToken"] and first["expiresIn"] == 900
    assert only_data(oidc_gql(ME, token=first["accessToken"])) == {"me": first["user"]}

    second = only_data(sign_in(oidc_gql, subject=subject, email=email))["finishOidcLogin"]
    assert second["user"]["id"] == first["user"]["id"]
    assert second["accessToken"] != first["accessToken"]


def test_a_replayed_state_is_unauthenticated(oidc_gql):
    started = only_data(start(oidc_gql))["startOidcLogin"]
    answer = authorize(
        started["authorizationUrl"], subject=f"sub-{uuid.uuid4().hex}", email=unique_email()
    )
    variables = {"p": "mock", "c": answer["code"], "s": answer["state"]}
    assert "errors" not in oidc_gql(FINISH, variables)
    replayed = oidc_gql(FINISH, variables)
    assert replayed["data"] is None
    assert error_codes(replayed) == ["UNAUTHENTICATED"]


def test_a_redirect_uri_the_operator_did_not_allow_is_bad_user_input(oidc_gql):
    body = start(oidc_gql, "https://attacker.example.com/auth/callback")
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert set(body["errors"][0]["extensions"]["fields"]) == {"redirectUri"}


def test_an_unknown_provider_is_bad_user_input(oidc_gql):
    body = oidc_gql(START, {"p": "nope", "r": REDIRECT_URI})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert set(body["errors"][0]["extensions"]["fields"]) == {"provider"}
