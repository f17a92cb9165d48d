"""Service credentials: minted once per address, checked per service and caller, expiring."""

from __future__ import annotations

import time

import jwt
import pytest

from shared.config import ConfigError
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


PEER = "p" * 32


def _peer_check() -> CredentialCheck:
    """Files' check: the gateway's key for files, and the tasks service's own."""
    return CredentialCheck("files", SECRET, peers={"tasks": PEER})


def _claims(**overrides) -> dict:
    now = int(time.time())
    return {"iss": "dockyard-tasks", "aud": "files", "iat": now, "exp": now + 60, **overrides}


def test_a_peer_credential_names_its_caller_and_is_checked_with_that_pairs_secret():
    token = ServiceCredentials({"files": PEER}, caller="tasks").token_for("files", None)
    assert jwt.decode(token, PEER, algorithms=["HS256"], audience="files")["iss"] == (
        "dockyard-tasks"
    )
    verified = _peer_check().verify(token)
    assert (verified.caller, verified.address, verified.user) == ("tasks", None, None)
    gateway = ServiceCredentials({"files": SECRET}).token_for("files", "198.51.100.5")
    assert _peer_check().verify(gateway).caller == "gateway"


def test_a_peer_credential_signed_with_another_secret_is_invalid():
    for secret in (SECRET, "x" * 32):  # the gateway's key for files, or nobody's
        token = ServiceCredentials({"files": secret}, caller="tasks").token_for("files", None)
        with pytest.raises(CredentialInvalid, match="Signature"):
            _peer_check().verify(token)


def test_a_credential_of_a_caller_the_service_does_not_know_is_invalid():
    for issuer in ("dockyard-files", "dockyard-auth", "someone-else"):
        token = jwt.encode(_claims(iss=issuer), PEER, algorithm="HS256")
        with pytest.raises(CredentialInvalid):
            _peer_check().verify(token)
    # The tasks service's key does not make it the gateway.
    forged = jwt.encode(_claims(iss="dockyard-gateway", obo="someone"), PEER, algorithm="HS256")
    with pytest.raises(CredentialInvalid, match="Signature"):
        _peer_check().verify(forged)


def test_a_peer_credential_that_names_a_user_or_client_is_invalid():
    for extra in ({"obo": "0d6d1b5e-5b69-4c36-8a50-3a6c2b6c9a01"}, {"fwd": "198.51.100.6"}):
        token = jwt.encode(_claims(**extra), PEER, algorithm="HS256")
        with pytest.raises(CredentialInvalid, match="names a client or user"):
            _peer_check().verify(token)
    peer = ServiceCredentials({"files": PEER}, caller="tasks")
    with pytest.raises(ValueError):
        peer.token_for("files", None, on_behalf_of="0d6d1b5e-5b69-4c36-8a50-3a6c2b6c9a01")
    with pytest.raises(ValueError):
        peer.token_for("files", "198.51.100.6")


def test_an_expired_peer_credential_or_one_for_another_service_is_invalid():
    expired = ServiceCredentials({"files": PEER}, caller="tasks", ttl=-30).token_for("files", None)
    with pytest.raises(CredentialInvalid, match="expired"):
        _peer_check().verify(expired)
    elsewhere = ServiceCredentials({"tasks": PEER}, caller="tasks").token_for("tasks", None)
    with pytest.raises(CredentialInvalid, match="Audience"):
        _peer_check().verify(elsewhere)


def test_a_service_refuses_to_check_two_callers_with_one_secret():
    with pytest.raises(ConfigError, match="secret of its own"):
        CredentialCheck("files", SECRET, peers={"tasks": SECRET})
