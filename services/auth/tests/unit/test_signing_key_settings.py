"""The rotation settings take concatenated PEM RSA public keys and refuse anything else at start."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.auth.config import AuthSettings
from services.auth.keys import SigningKeys
from shared.config import ConfigError
from shared.testing import generate_private_key_pem

ROTATION_SETTINGS = ["AUTH_JWT_PREVIOUS_PUBLIC_KEYS", "AUTH_JWT_NEXT_PUBLIC_KEYS"]


def settings(**environ: str) -> AuthSettings:
    """Auth settings read from just these variables and a signing key."""
    return AuthSettings({"AUTH_JWT_PRIVATE_KEY": generate_private_key_pem(), **environ})


def rsa_public_pem() -> str:
    """A fresh RSA public key in PEM."""
    return SigningKeys.load(generate_private_key_pem(), []).public_pem


def ec_public_pem() -> str:
    """A public key auth cannot sign or verify RS256 with."""
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.mark.parametrize("name", ROTATION_SETTINGS)
def test_concatenated_keys_with_escaped_newlines_read_as_one_pem_each(name):
    first, second = rsa_public_pem(), rsa_public_pem()
    read = settings(**{name: (first + second).replace("\n", "\\n")})
    attr = name.removeprefix("AUTH_")
    assert getattr(read, attr) == [first, second]


@pytest.mark.parametrize("name", ROTATION_SETTINGS)
def test_the_rotation_settings_default_to_no_keys(name):
    assert getattr(settings(), name.removeprefix("AUTH_")) == []


@pytest.mark.parametrize("name", ROTATION_SETTINGS)
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (lambda: "garbage", "key 1 of 1 is not a PEM RSA public key"),
        (
            lambda: rsa_public_pem() + "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
            "key 2 of 2 is not a PEM RSA public key",
        ),
        (ec_public_pem, "key 1 of 1 is not a PEM RSA public key"),
    ],
    ids=["not a PEM", "second key truncated", "not RSA"],
)
def test_a_malformed_key_fails_at_start_naming_the_setting(name, value, problem):
    with pytest.raises(ConfigError) as raised:
        settings(**{name: value()})
    assert name in str(raised.value)
    assert problem in str(raised.value)
