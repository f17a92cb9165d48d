"""Fixtures of the auth service's tests: an app on this run's database, a client, users."""

from __future__ import annotations

import uuid

import pytest

from services.auth.app import create_app
from services.auth.config import AuthSettings

# The SMTP server and the mail processes, for the tests that read account mail.
from services.auth.tests.mailbox import mail_env, pipeline, smtp  # noqa: F401
from shared.auth import JwksKeys, RevocationList, TokenVerifier

GENEROUS_LIMITS = {
    "LOGIN_LIMIT_PER_IP": "10000/minute",
    "LOGIN_FREE_FAILURES": 10000,
    "REGISTER_LIMIT_PER_IP": "10000/minute",
    "EMAIL_REQUEST_LIMIT_PER_IP": "10000/minute",
    "EMAIL_REQUEST_LIMIT_PER_ACCOUNT": "10000/minute",
}


@pytest.fixture(scope="session")
def auth_app(test_env):
    """One auth app for the session, with limits too high to interfere."""
    return create_app(AuthSettings(**GENEROUS_LIMITS))


@pytest.fixture
def client(auth_app):
    """A test client of the auth app."""
    return auth_app.test_client()


@pytest.fixture
def make_app(test_env):
    """Build an auth app with some settings overridden."""

    def build(**overrides):
        return create_app(AuthSettings(**{**GENEROUS_LIMITS, **overrides}))

    return build


def unique_email(prefix: str = "user") -> str:
    """An email no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture
def registered(client):
    """A freshly registered user: email, password and the registration response body."""
    email, password = unique_email(), "correct horse battery"
    response = client.post("/v1/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.json
    return {"email": email, "password": password, **response.json}


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


def other_service_verifier(auth_url: str, test_env) -> TokenVerifier:
    """What files, tasks and the gateway build: JWKS over HTTP plus the shared revocation list."""
    return TokenVerifier(
        JwksKeys(f"{auth_url}/v1/.well-known/jwks.json"),
        RevocationList.from_url(test_env.redis_url, namespace=test_env.namespace),
        issuer="dockyard-auth",
        audience="dockyard",
    )
