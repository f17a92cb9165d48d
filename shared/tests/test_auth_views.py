"""Token checks in views: the verified-token cache, `authenticated`, `caller_id`, fail-closed."""

from __future__ import annotations

import os
import time
import uuid

import jwt
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask_jwt_extended import jwt_required

from shared.auth import (
    DenyListNotReady,
    RevocationList,
    StaticKeys,
    TokenVerifier,
    VerifiedTokens,
    authenticated,
    caller_id,
    init_jwt,
)
from shared.web import create_service_app

ISSUER, AUDIENCE, KID = "dockyard-test", "dockyard-test-api", "test-key"


@pytest.fixture(scope="module")
def private_key():
    """One RSA key for the module's tokens."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_token(private_key, *, user_id: str | None = None, ttl: int = 300, **claims) -> str:
    """An access token as auth signs them."""
    now = int(time.time())
    body = {
        "sub": user_id or str(uuid.uuid4()),
        "jti": str(uuid.uuid4()),
        "fam": str(uuid.uuid4()),
        "type": "access",
        "iat": now,
        "exp": now + ttl,
        "iss": ISSUER,
        "aud": AUDIENCE,
        **claims,
    }
    return jwt.encode(body, private_key, "RS256", headers={"kid": KID})


@pytest.fixture
def revocations(test_env):
    """This run's revocation list in Redis, marked whole (auth does that in production)."""
    revocations = RevocationList.from_url(test_env.redis_url, namespace=test_env.namespace)
    revocations.restore(families={}, token_ids={})
    return revocations


def build_app(private_key, revocations) -> tuple[Flask, TokenVerifier]:
    """A service app with one view behind each decorator, both answering the caller's id."""
    from shared.config import CommonSettings

    app, _api = create_service_app("probe", CommonSettings(), title="probe")
    verifier = TokenVerifier(
        StaticKeys({KID: private_key.public_key()}), revocations, issuer=ISSUER, audience=AUDIENCE
    )
    init_jwt(app, verifier)

    @app.get("/fast")
    @authenticated
    def fast():
        return {"caller": str(caller_id())}

    @app.get("/extended")
    @jwt_required()
    def extended():
        return {"caller": str(caller_id())}

    return app, verifier


@pytest.fixture
def app_and_verifier(private_key, revocations):
    """The probe app and its verifier."""
    return build_app(private_key, revocations)


@pytest.mark.parametrize("path", ["/fast", "/extended"])
def test_caller_id_is_the_tokens_subject_under_either_decorator(
    app_and_verifier, private_key, path
):
    app, _ = app_and_verifier
    user_id = str(uuid.uuid4())
    token = make_token(private_key, user_id=user_id)
    for _ in range(2):  # the second request is answered from the verified-token cache
        response = app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.json
        assert response.json == {"caller": user_id}


@pytest.mark.parametrize("path", ["/fast", "/extended"])
@pytest.mark.parametrize(
    "header, message",
    [
        (None, "Missing bearer token."),
        ("Basic abc", "Missing bearer token."),
        ("Bearer not.a.jwt", "Token is invalid."),
    ],
)
def test_a_request_without_a_usable_token_is_401_in_the_shared_shape(
    app_and_verifier, path, header, message
):
    app, _ = app_and_verifier
    headers = {"Authorization": header} if header else {}
    response = app.test_client().get(path, headers=headers)
    assert response.status_code == 401
    assert response.json == {"status": 401, "code": "UNAUTHENTICATED", "message": message}
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="dockyard"'


@pytest.mark.parametrize("path", ["/fast", "/extended"])
def test_an_expired_token_is_401_token_has_expired(app_and_verifier, private_key, path):
    app, _ = app_and_verifier
    token = make_token(private_key, ttl=-10)
    response = app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json["message"] == "Token has expired."


@pytest.mark.parametrize("path", ["/fast", "/extended"])
def test_a_refresh_token_is_refused(app_and_verifier, private_key, path):
    app, _ = app_and_verifier
    token = make_token(private_key, type="refresh")
    response = app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json["message"] == "Token is invalid."


@pytest.mark.parametrize("path", ["/fast", "/extended"])
def test_a_token_revoked_after_it_was_cached_is_refused(
    app_and_verifier, private_key, revocations, path
):
    app, _ = app_and_verifier
    token = make_token(private_key)
    headers = {"Authorization": f"Bearer {token}"}
    assert app.test_client().get(path, headers=headers).status_code == 200
    revocations.revoke(jti=jwt.decode(token, options={"verify_signature": False})["jti"], ttl=60)
    response = app.test_client().get(path, headers=headers)
    assert response.status_code == 401
    assert response.json["message"] == "Token has been revoked."


@pytest.mark.parametrize("path", ["/fast", "/extended"])
def test_a_cached_token_is_refused_with_503_when_the_revocation_list_is_unreachable(
    private_key, path
):
    unreachable = RevocationList(
        redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5), namespace="none"
    )
    app, verifier = build_app(private_key, unreachable)
    token = make_token(private_key)
    verifier.verified.put(token, verifier._decode_in_full(token))
    response = app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert response.json["code"] == "SERVICE_UNAVAILABLE"


def test_a_token_whose_subject_is_not_a_user_id_is_401(app_and_verifier, private_key):
    app, _ = app_and_verifier
    token = make_token(private_key, user_id="admin")
    response = app.test_client().get("/fast", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json["message"] == "Token's subject is not a user id."


class Keys:
    """A key source whose keys a test can retire."""

    def __init__(self, keys: dict):
        self.keys = keys

    def get(self, kid: str):
        """The key for `kid`, like StaticKeys and JwksKeys."""
        from shared.auth import TokenInvalid

        if kid not in self.keys:
            raise TokenInvalid("unknown signing key")
        return self.keys[kid]


def test_the_cache_answers_only_for_the_exact_token_it_verified(private_key):
    cache = VerifiedTokens(Keys({KID: private_key.public_key()}))
    token = make_token(private_key)
    cache.put(token, {"sub": "a", "exp": time.time() + 60})
    assert cache.get(token) == {"sub": "a", "exp": pytest.approx(time.time() + 60, abs=5)}
    assert cache.get(token + "x") is None


def test_the_cache_forgets_a_token_once_it_expires(private_key):
    cache = VerifiedTokens(Keys({KID: private_key.public_key()}))
    token = make_token(private_key)
    cache.put(token, {"sub": "a", "exp": time.time() - 1})
    assert cache.get(token) is None


def test_the_cache_forgets_tokens_of_a_retired_key(private_key):
    keys = Keys({KID: private_key.public_key()})
    cache = VerifiedTokens(keys)
    token = make_token(private_key)
    cache.put(token, {"sub": "a", "exp": time.time() + 60})
    del keys.keys[KID]
    assert cache.get(token) is None


def test_the_cache_keeps_at_most_its_bound(private_key):
    cache = VerifiedTokens(Keys({KID: private_key.public_key()}), max_entries=2)
    tokens = [make_token(private_key) for _ in range(3)]
    for token in tokens:
        cache.put(token, {"sub": "a", "exp": time.time() + 60})
    assert cache.get(tokens[0]) is None
    assert cache.get(tokens[1]) is not None
    assert cache.get(tokens[2]) is not None


def test_a_cached_not_revoked_answer_lasts_at_most_its_seconds(test_env, revocations, private_key):
    caching = RevocationList.from_url(
        test_env.redis_url, namespace=test_env.namespace, not_revoked_cache_seconds=0.5
    )
    elsewhere = RevocationList.from_url(test_env.redis_url, namespace=test_env.namespace)
    claims = jwt.decode(make_token(private_key), options={"verify_signature": False})
    assert caching.is_revoked(claims) is False
    elsewhere.revoke(family=claims["fam"], ttl=60)
    # Another process revoked it: this one may answer from its cache, but only briefly.
    revoked_at = time.monotonic()
    while not caching.is_revoked(claims):
        assert time.monotonic() - revoked_at < 0.6, "stale answer outlived its cache seconds"
        time.sleep(0.02)


def test_a_revocation_through_the_caching_list_itself_counts_at_once(
    test_env, revocations, private_key
):
    caching = RevocationList.from_url(
        test_env.redis_url, namespace=test_env.namespace, not_revoked_cache_seconds=60
    )
    claims = jwt.decode(make_token(private_key), options={"verify_signature": False})
    assert caching.is_revoked(claims) is False
    caching.revoke(jti=claims["jti"], ttl=60)
    assert caching.is_revoked(claims) is True


def test_without_the_ready_marker_a_token_is_refused_with_503_until_it_is_back(private_key):
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    namespace = f"lost-{uuid.uuid4().hex[:8]}"
    rebuilt = []
    lost = RevocationList(client, namespace=namespace)
    app, verifier = build_app(private_key, lost)
    token = make_token(private_key)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        for path in ("/fast", "/extended"):
            response = app.test_client().get(path, headers=headers)
            assert response.status_code == 503
            assert response.json["code"] == "SERVICE_UNAVAILABLE"
        with pytest.raises(DenyListNotReady):
            verifier.verify(token)
        # Auth's own list rebuilds first and then answers.
        rebuilding = RevocationList(
            client,
            namespace=namespace,
            when_not_ready=lambda: rebuilt.append(lost.restore(families={}, token_ids={})),
        )
        assert rebuilding.is_revoked({"jti": "x", "fam": "y"}) is False
        assert len(rebuilt) == 1
        assert app.test_client().get("/fast", headers=headers).status_code == 200
    finally:
        client.delete(lost.ready_key)
