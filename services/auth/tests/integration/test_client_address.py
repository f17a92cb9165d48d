"""Auth counts a caller by its socket address unless the gateway's credential names another."""

from __future__ import annotations

import logging
import time

import jwt
import pytest
import redis
import requests

from services.auth.app import create_app
from services.auth.config import AuthSettings
from services.auth.tests.conftest import GENEROUS_LIMITS, unique_email
from shared.testing import ServerThread, gateway_headers, production_environ


def _register(url: str, headers: dict[str, str]) -> requests.Response:
    return requests.post(
        f"{url}/v1/auth/register",
        json={"email": unique_email("addr"), "password": "correct horse battery"},
        headers=headers,
        timeout=10,
    )


@pytest.fixture
def limited_auth(test_env):
    """A real auth service over HTTP allowing two registrations a minute per client address."""
    settings = AuthSettings(**{**GENEROUS_LIMITS, "REGISTER_LIMIT_PER_IP": "2/minute"})
    # The buckets of 127.0.0.1 are this run's, shared by every test that registers from it.
    client = redis.Redis.from_url(test_env.redis_url)
    stale = list(client.scan_iter(f"LIMITS:LIMITER/{test_env.namespace}:ratelimit/*", count=1000))
    if stale:
        client.delete(*stale)
    with ServerThread(create_app(settings)) as server:
        yield server


def test_a_forwarded_address_without_the_gateways_credential_is_ignored(limited_auth):
    statuses = [
        _register(limited_auth.url, {"X-Forwarded-For": f"203.0.113.{index}"}).status_code
        for index in range(1, 4)
    ]
    # Each request claimed another address; all three came from 127.0.0.1, one bucket.
    assert statuses == [201, 201, 429]


def test_the_address_the_gateway_vouches_for_is_the_client_address(limited_auth):
    statuses = [
        _register(
            limited_auth.url,
            {**gateway_headers("auth", f"198.51.100.{index}"), "X-Forwarded-For": "192.0.2.1"},
        ).status_code
        for index in range(1, 5)
    ]
    assert statuses == [201, 201, 201, 201]
    vouched = gateway_headers("auth", "198.51.100.200")
    assert [_register(limited_auth.url, vouched).status_code for _ in range(3)] == [201, 201, 429]


def _forged(secret: str, **claims: object) -> dict[str, str]:
    now = int(time.time())
    body = {"iss": "dockyard-gateway", "aud": "auth", "iat": now, "exp": now + 60, **claims}
    return {"X-Service-Token": jwt.encode(body, secret, algorithm="HS256")}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda s: _forged("x" * 40, fwd="198.51.100.7"), id="another-secret"),
        pytest.param(lambda s: _forged(s, aud="files", fwd="198.51.100.7"), id="for-files"),
        pytest.param(lambda s: _forged(s, exp=int(time.time()) - 3600), id="expired"),
        pytest.param(lambda s: {"X-Service-Token": "not.a.token"}, id="garbage"),
        pytest.param(
            lambda s: {"X-Service-Token": jwt.encode({"aud": "auth"}, s, algorithm="HS256")},
            id="no-expiry",
        ),
    ],
)
def test_a_credential_that_is_not_the_gateways_for_auth_is_refused(make_app, headers, caplog):
    app = make_app()
    secret = app.extensions["auth"].settings.SERVICE_SECRET
    sent = headers(secret)
    with caplog.at_level(logging.WARNING, logger="dockyard.service_identity"):
        response = app.test_client().post(
            "/v1/auth/register",
            json={"email": unique_email(), "password": "correct horse battery"},
            headers=sent,
        )
    assert response.status_code == 401
    assert response.json["code"] == "SERVICE_CREDENTIAL_INVALID"
    assert secret not in response.get_data(as_text=True)
    (refusal,) = [r for r in caplog.records if r.name == "dockyard.service_identity"]
    assert (refusal.client, refusal.path) == ("127.0.0.1", "/v1/auth/register")
    assert sent["X-Service-Token"] not in caplog.text and secret not in caplog.text


def test_a_required_credential_refuses_bare_calls_but_not_probes_or_public_keys(make_app):
    client = make_app(SERVICE_CREDENTIAL_REQUIRED=True).test_client()
    bare = client.post("/v1/auth/login", json={"email": unique_email(), "password": "x"})
    assert bare.status_code == 401
    assert bare.json == {
        "status": 401,
        "code": "SERVICE_CREDENTIAL_REQUIRED",
        "message": "A service credential is required.",
    }
    for path in ("/healthz", "/v1/.well-known/jwks.json", "/openapi.json"):
        assert client.get(path).status_code == 200, path
    signed = client.post(
        "/v1/auth/login",
        json={"email": unique_email(), "password": "wrong password"},
        headers=gateway_headers("auth", "198.51.100.9"),
    )
    # Past the credential check: the login itself fails.
    assert signed.status_code == 401 and signed.json["code"] == "UNAUTHENTICATED"


def test_production_requires_the_credential_and_development_does_not(test_env):
    # Nothing is reached: the refusal comes before any database, broker or Redis call.
    environ = production_environ(AUTH_JWT_PRIVATE_KEY=test_env.private_key_pem)
    production = AuthSettings(environ, **GENEROUS_LIMITS)
    development = AuthSettings(**GENEROUS_LIMITS)
    refused = create_app(production).test_client().get("/v1/users/me")
    assert refused.status_code == 401 and refused.json["code"] == "SERVICE_CREDENTIAL_REQUIRED"
    bare = create_app(development).test_client().get("/v1/users/me")
    assert bare.status_code == 401 and bare.json["code"] == "UNAUTHENTICATED"
