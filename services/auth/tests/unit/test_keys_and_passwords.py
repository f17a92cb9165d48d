"""Signing keys get stable ids and a public-only JWKS; passwords hash with argon2id."""

from __future__ import annotations

from services.auth.keys import SigningKeys
from services.auth.passwords import PasswordHasher
from shared.testing import generate_private_key_pem


def test_key_id_is_stable_and_the_jwks_holds_no_private_part():
    pem = generate_private_key_pem()
    first, second = SigningKeys.load(pem, []), SigningKeys.load(pem, [])
    assert first.kid == second.kid
    (jwk,) = first.jwks()["keys"]
    assert jwk["kid"] == first.kid
    assert not {"d", "p", "q"} & set(jwk)


def test_retired_public_keys_stay_in_the_jwks():
    old = SigningKeys.load(generate_private_key_pem(), [])
    new = SigningKeys.load(generate_private_key_pem(), [old.public_pem])
    assert {key["kid"] for key in new.jwks()["keys"]} == {old.kid, new.kid}


def test_next_public_keys_are_published_but_never_sign():
    upcoming = SigningKeys.load(generate_private_key_pem(), [])
    current = SigningKeys.load(generate_private_key_pem(), [], [upcoming.public_pem])
    assert {key["kid"] for key in current.jwks()["keys"]} == {current.kid, upcoming.kid}
    assert current.kid != upcoming.kid
    assert current.public_pem != upcoming.public_pem


def test_password_hashes_are_argon2id_and_verify():
    hasher = PasswordHasher(time_cost=1, memory_kib=1024)
    hashed = hasher.hash("correct horse")
    assert hashed.startswith("$argon2id$")
    assert hasher.verify(hashed, "correct horse")
    assert not hasher.verify(hashed, "wrong horse")
    assert not hasher.verify(None, "correct horse")
    assert not hasher.verify("not-a-hash", "correct horse")
