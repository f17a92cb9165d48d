"""The gateway's service credential: minted once per address, checked per service, expiring."""

from __future__ import annotations

import time

import jwt
import pytest

from shared.service_identity import CredentialCheck, CredentialInvalid, ServiceCredentials

SECRET = "s" * 32


def test_the_gateway_reuses_a_credential_for_half_its_lifetime_per_address():
    credentials = ServiceCredentials({"auth": SECRET}, ttl=60)
    first = credentials.token_for("auth", "198.51.100.1")
    assert credentials.token_for("auth", "198.51.100.1") == first
    assert credentials.token_for("auth", "198.51.100.2") != first
    claims = jwt.decode(first, SECRET, algorithms=["HS256"], audience="auth")
    assert claims["fwd"] == "198.51.100.1" and claims["exp"] - claims["iat"] == 60


def test_a_credential_carries_the_address_only_to_the_service_it_names():
    credentials = ServiceCredentials({"auth": SECRET, "files": "f" * 32})
    token = credentials.token_for("auth", "198.51.100.3")
    assert CredentialCheck("auth", SECRET).forwarded_address(token) == "198.51.100.3"
    assert (
        CredentialCheck("auth", SECRET).forwarded_address(credentials.token_for("auth", None))
        is None
    )
    with pytest.raises(CredentialInvalid):
        CredentialCheck("files", "f" * 32).forwarded_address(token)
    with pytest.raises(CredentialInvalid):
        CredentialCheck("files", SECRET).forwarded_address(token)


def test_a_checked_credential_is_remembered_only_until_it_expires():
    # Expired 8 s ago: still inside the 10 s of clock difference a service forgives, for 2 s.
    token = ServiceCredentials({"auth": SECRET}, ttl=-8).token_for("auth", "198.51.100.4")
    check = CredentialCheck("auth", SECRET)
    assert check.forwarded_address(token) == "198.51.100.4"
    assert check.forwarded_address(token) == "198.51.100.4"
    time.sleep(2.5)
    with pytest.raises(CredentialInvalid):
        check.forwarded_address(token)
