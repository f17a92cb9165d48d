"""Rotating the signing key logs nobody out: old tokens keep working, the next key is announced.

Each "rollout" builds a new auth app on the same database and Redis, as a restarted pod would.
"""

from __future__ import annotations

import jwt
import pytest

from services.auth.keys import SigningKeys
from services.auth.tests.conftest import bearer, other_service_verifier, unique_email
from shared.auth import TokenInvalid
from shared.testing import ServerThread, generate_private_key_pem

PASSWORD = "rusty anchor at dawn"


def public_pem(private_pem: str) -> str:
    """The public half of a private key, in PEM."""
    return SigningKeys.load(private_pem, []).public_pem


def kid_of(private_pem: str) -> str:
    """The key id auth gives a private key."""
    return SigningKeys.load(private_pem, []).kid


def signed_with(token: str) -> str:
    """The key id a token's header names."""
    return jwt.get_unverified_header(token)["kid"]


def register(client) -> tuple[str, str]:
    """A new account; returns its email and the token pair of its first session."""
    email = unique_email("rotation")
    response = client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.json
    return email, response.json


def log_in(client, email: str) -> dict:
    """A second session of the account."""
    response = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.json
    return response.json


def refresh(client, refresh_token: str):
    """Trade a refresh token."""
    return client.post("/v1/auth/refresh", json={"refresh_token": refresh_token})


def test_sessions_signed_with_the_retired_key_keep_refreshing_after_rotation(make_app):
    key_a, key_b = generate_private_key_pem(), generate_private_key_pem()
    before = make_app(JWT_PRIVATE_KEY=key_a).test_client()
    email, first = register(before)
    second = log_in(before, email)
    assert signed_with(first["refresh_token"]) == kid_of(key_a)

    after = make_app(JWT_PRIVATE_KEY=key_b, JWT_PREVIOUS_PUBLIC_KEYS=[public_pem(key_a)])
    after = after.test_client()
    assert after.get("/v1/users/me", headers=bearer(first["access_token"])).status_code == 200
    refreshed = refresh(after, first["refresh_token"])
    assert refreshed.status_code == 200, refreshed.json
    assert signed_with(refreshed.json["access_token"]) == kid_of(key_b)
    assert signed_with(refreshed.json["refresh_token"]) == kid_of(key_b)
    assert refresh(after, refreshed.json["refresh_token"]).status_code == 200
    # Rotation keeps the family rules: the retired-key token, once used, revokes its family.
    assert refresh(after, first["refresh_token"]).status_code == 401

    dropped = make_app(JWT_PRIVATE_KEY=key_b).test_client()
    refused = refresh(dropped, second["refresh_token"])
    garbage = refresh(dropped, "a.b.c")
    assert refused.status_code == garbage.status_code == 401
    assert refused.json == garbage.json
    assert refused.json["message"] == "Refresh token rejected: refresh token is invalid."
    assert dropped.get("/v1/users/me", headers=bearer(second["access_token"])).status_code == 401


@pytest.mark.parametrize(
    "header", [{"kid": "no-such-key"}, {}], ids=["unknown key id", "no key id"]
)
def test_a_refresh_token_naming_no_known_key_is_refused_as_invalid(make_app, header):
    key = generate_private_key_pem()
    client = make_app(JWT_PRIVATE_KEY=key).test_client()
    _email, tokens = register(client)
    claims = jwt.decode(tokens["refresh_token"], options={"verify_signature": False})
    forged = jwt.encode(claims, key, "RS256", headers=header)
    if not header:
        assert "kid" not in jwt.get_unverified_header(forged)
    response = refresh(client, forged)
    assert response.status_code == 401
    assert response.json["message"] == "Refresh token rejected: refresh token is invalid."


def test_the_next_key_is_published_before_auth_signs_with_it(make_app, test_env):
    key_a, key_c = generate_private_key_pem(), generate_private_key_pem()
    announcing = make_app(JWT_PRIVATE_KEY=key_a, JWT_NEXT_PUBLIC_KEYS=[public_pem(key_c)])
    with ServerThread(announcing) as old_pod:
        jwks = announcing.test_client().get("/v1/.well-known/jwks.json").json
        assert {key["kid"] for key in jwks["keys"]} == {kid_of(key_a), kid_of(key_c)}
        _email, old_session = register(announcing.test_client())
        assert signed_with(old_session["access_token"]) == kid_of(key_a)
        verifier = other_service_verifier(old_pod.url, test_env)
        verifier.verify(old_session["access_token"])

    # The JWKS server is gone: the verifier can only use the keys it fetched before the switch.
    switched = make_app(JWT_PRIVATE_KEY=key_c, JWT_PREVIOUS_PUBLIC_KEYS=[public_pem(key_a)])
    _email, new_session = register(switched.test_client())
    assert signed_with(new_session["access_token"]) == kid_of(key_c)
    assert verifier.verify(new_session["access_token"]).user_id == new_session["user"]["id"]
    verifier.verify(old_session["access_token"])

    # An auth pod not yet rolled takes refresh tokens the rolled ones signed.
    refreshed = refresh(announcing.test_client(), new_session["refresh_token"])
    assert refreshed.status_code == 200, refreshed.json
    assert signed_with(refreshed.json["access_token"]) == kid_of(key_a)


def test_without_announcing_it_a_new_key_is_unknown_to_a_verifier_that_fetched_earlier(
    make_app, test_env
):
    key_a, key_c = generate_private_key_pem(), generate_private_key_pem()
    unannounced = make_app(JWT_PRIVATE_KEY=key_a)
    with ServerThread(unannounced) as old_pod:
        _email, old_session = register(unannounced.test_client())
        verifier = other_service_verifier(old_pod.url, test_env)
        verifier.verify(old_session["access_token"])

    switched = make_app(JWT_PRIVATE_KEY=key_c, JWT_PREVIOUS_PUBLIC_KEYS=[public_pem(key_a)])
    _email, new_session = register(switched.test_client())
    with pytest.raises(TokenInvalid, match="unknown signing key"):
        verifier.verify(new_session["access_token"])
