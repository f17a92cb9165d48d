"""Logout reaches every service: a JWKS-verifying service rejects the token within 2 seconds."""

from __future__ import annotations

import time

import pytest
import requests

from services.auth.app import create_app
from services.auth.config import AuthSettings
from services.auth.tests.conftest import GENEROUS_LIMITS, other_service_verifier, unique_email
from shared.auth import RevocationList, TokenInvalid
from shared.testing import ServerThread


@pytest.fixture(scope="module")
def auth_server(test_env):
    """The auth service over real HTTP on a loopback port."""
    with ServerThread(create_app(AuthSettings(**GENEROUS_LIMITS))) as server:
        yield server


def test_a_logged_out_token_is_rejected_elsewhere_within_two_seconds(auth_server, test_env):
    session = requests.Session()
    tokens = session.post(
        f"{auth_server.url}/v1/auth/register",
        json={"email": unique_email(), "password": "rusty anchor at dawn"},
        timeout=10,
    ).json()
    verifier = other_service_verifier(auth_server.url, test_env)
    identity = verifier.verify(tokens["access_token"])
    assert identity.user_id == tokens["user"]["id"]

    logged_out_at = time.monotonic()
    response = session.post(
        f"{auth_server.url}/v1/auth/logout",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    )
    assert response.status_code == 204
    while True:
        try:
            verifier.verify(tokens["access_token"])
        except TokenInvalid as exc:
            assert "revoked" in str(exc)
            break
        assert time.monotonic() - logged_out_at < 2.0, "token still accepted after 2 seconds"
        time.sleep(0.05)


def test_unknown_key_ids_and_foreign_issuers_are_rejected(auth_server, test_env):
    import jwt

    from shared.testing import generate_private_key_pem

    verifier = other_service_verifier(auth_server.url, test_env)
    forged = jwt.encode(
        {"sub": "x", "jti": "y", "type": "access", "iat": 1, "exp": 4102444800},
        generate_private_key_pem(),
        "RS256",
        headers={"kid": "not-ours"},
    )
    with pytest.raises(TokenInvalid):
        verifier.verify(forged)


def test_a_revocation_written_by_another_process_reaches_auths_own_me_within_two_seconds(
    auth_server, test_env
):
    session = requests.Session()
    tokens = session.post(
        f"{auth_server.url}/v1/auth/register",
        json={"email": unique_email(), "password": "rusty anchor at dawn"},
        timeout=10,
    ).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert session.get(f"{auth_server.url}/v1/users/me", headers=headers).status_code == 200
    # Another auth worker (or the TokensRevoked handler) writes it: not this process's list.
    claims = other_service_verifier(auth_server.url, test_env).decode(tokens["access_token"])
    RevocationList.from_url(test_env.redis_url, namespace=test_env.namespace).revoke(
        family=claims["fam"], ttl=60
    )
    revoked_at = time.monotonic()
    while session.get(f"{auth_server.url}/v1/users/me", headers=headers).status_code == 200:
        assert time.monotonic() - revoked_at < 2.0, "token still accepted after 2 seconds"
        time.sleep(0.05)
    answer = session.get(f"{auth_server.url}/v1/users/me", headers=headers)
    assert answer.status_code == 401 and answer.json()["message"] == "Token has been revoked."
