"""ID token checks: signature, algorithm, issuer, audience, nonce and expiry (Authlib, joserfc)."""

from __future__ import annotations

import base64
import json
import time

import pytest
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError
from joserfc.jwk import KeySet, OctKey, RSAKey

from services.auth.oidc_providers import ID_TOKEN_ALGORITHMS, ProviderLoginRejected, verify_id_token

ISSUER = "https://id.example.com"
CLIENT_ID = "dockyard"
NONCE = "n-0123456789abcdef0123456789abcdef"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
KEYS = KeySet([RSAKey.import_key(KEY.as_dict(private=False))])


def claims(**changes):
    """Valid ID token claims, with some changed (None removes a claim)."""
    now = int(time.time())
    values = {
        "iss": ISSUER,
        "sub": "subject-1",
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 300,
        "nonce": NONCE,
        "email": "someone@example.com",
        "email_verified": True,
    }
    values.update(changes)
    return {name: value for name, value in values.items() if value is not None}


def sign(payload, *, key=KEY, alg="RS256", kid="k1") -> str:
    """A compact JWS of `payload`."""
    return jwt.encode({"alg": alg, "kid": kid}, payload, key)


def verify(token: str, **overrides):
    """verify_id_token with the test's expectations."""
    options = {
        "keys": KEYS,
        "algorithms": ID_TOKEN_ALGORITHMS,
        "issuer": ISSUER,
        "client_id": CLIENT_ID,
        "nonce": NONCE,
    }
    return verify_id_token(token, **{**options, **overrides})


def b64(data: dict) -> str:
    """base64url JSON without padding, as in a JWS."""
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_valid_id_token_gives_its_claims():
    verified = verify(sign(claims()))
    assert verified["sub"] == "subject-1" and verified["email_verified"] is True


def test_an_audience_list_containing_the_client_is_accepted():
    assert verify(sign(claims(aud=[CLIENT_ID], azp=CLIENT_ID)))["sub"] == "subject-1"


def test_a_tampered_payload_is_refused():
    header, _payload, signature = sign(claims()).split(".")
    forged = b64(claims(sub="someone-else"))
    with pytest.raises(ProviderLoginRejected):
        verify(f"{header}.{forged}.{signature}")


def test_an_unsigned_token_is_refused():
    unsigned = f"{b64({'alg': 'none', 'kid': 'k1'})}.{b64(claims())}."
    with pytest.raises(ProviderLoginRejected):
        verify(unsigned)


def test_an_hmac_token_keyed_with_a_shared_secret_is_refused():
    token = sign(claims(), key=OctKey.import_key("client-secret-" * 4), alg="HS256")
    with pytest.raises(ProviderLoginRejected):
        verify(token)


def test_a_token_signed_by_another_key_under_the_same_kid_is_refused():
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
    with pytest.raises(ProviderLoginRejected):
        verify(sign(claims(), key=stranger))


def test_an_unknown_key_id_asks_for_the_keys_again():
    other = RSAKey.generate_key(2048, parameters={"kid": "k2"}, private=True)
    with pytest.raises(InvalidKeyIdError):
        verify(sign(claims(), key=other, kid="k2"))


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "another-client"},
        {"aud": ["another-client"]},
        {"aud": None},
        {"iss": "https://evil.example.com"},
        {"iss": None},
        {"nonce": "another-nonce"},
        {"nonce": None},
        {"exp": 1_700_000_000},  # 2023: long expired (a fixed value keeps the test id stable)
        {"exp": None},
        {"sub": None},
        {"sub": ""},
        {"sub": "s" * 256},
        {"sub": 12345},
        {"aud": [CLIENT_ID, "another"], "azp": "another"},
    ],
    ids=lambda changes: ",".join(f"{k}={v}" for k, v in changes.items()),
)
def test_a_token_with_a_wrong_or_missing_claim_is_refused(changes):
    with pytest.raises(ProviderLoginRejected):
        verify(sign(claims(**changes)))


def test_a_token_just_expired_within_the_leeway_is_accepted():
    assert verify(sign(claims(exp=int(time.time()) - 10)))["sub"] == "subject-1"


def test_verifying_without_a_nonce_is_a_programming_error():
    with pytest.raises(ValueError, match="nonce"):
        verify(sign(claims()), nonce="")
