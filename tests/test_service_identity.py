"""The gateway's calls pass a service that requires its credential; nobody else's do."""

from __future__ import annotations

import logging

import requests

from services.gateway.app import create_app as create_gateway_app
from services.gateway.tests.conftest import client_of
from tests.conftest import (
    PASSWORD,
    REGISTER,
    GraphQLClient,
    auth_service,
    error_codes,
    gateway_settings,
    unique_email,
)


def test_the_gateway_passes_a_service_that_requires_its_credential(test_env):
    with auth_service(SERVICE_CREDENTIAL_REQUIRED=True) as auth:
        gql = GraphQLClient(client_of(create_gateway_app(gateway_settings(auth.url))))
        body = gql(REGISTER, {"e": unique_email("sid"), "p": PASSWORD})
        assert body.get("errors") is None, body
        direct = requests.post(
            f"{auth.url}/v1/auth/register",
            json={"email": unique_email("sid"), "password": PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.1"},
            timeout=10,
        )
        assert direct.status_code == 401
        assert direct.json()["code"] == "SERVICE_CREDENTIAL_REQUIRED"
        keys = requests.get(f"{auth.url}/v1/.well-known/jwks.json", timeout=10)
        assert keys.status_code == 200


def test_a_gateway_with_the_wrong_secret_reports_the_service_unavailable(test_env, caplog):
    wrong = "w" * 64
    with auth_service(SERVICE_CREDENTIAL_REQUIRED=True) as auth:
        settings = gateway_settings(auth.url, AUTH_SERVICE_SECRET=wrong)
        gql = GraphQLClient(client_of(create_gateway_app(settings)))
        with caplog.at_level(logging.ERROR, logger="dockyard.gateway.clients"):
            body = gql(REGISTER, {"e": unique_email("sid"), "p": PASSWORD})
    assert error_codes(body) == ["SERVICE_UNAVAILABLE"]
    assert "check AUTH_SERVICE_SECRET" in caplog.text
    assert wrong not in caplog.text
