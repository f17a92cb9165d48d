"""The gateway's calls pass a service requiring its credential; a peer's pass its endpoints only."""

from __future__ import annotations

import logging
import os
import time
import uuid

import jwt
import requests

from services.gateway.app import create_app as create_gateway_app
from services.gateway.tests.conftest import client_of
from shared.service_identity import HEADER, peer_secret_var
from shared.testing import gateway_headers, peer_headers
from tests.conftest import (
    PASSWORD,
    REGISTER,
    GraphQLClient,
    auth_service,
    error_codes,
    gateway_settings,
    register,
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


def _peer_token(caller: str, callee: str, **claims: str) -> str:
    """A credential `caller` signs for `callee` with their pair's key, with any extra claims."""
    secret = peer_secret_var(caller, callee).read(os.environ, production=False)
    now = int(time.time())
    issued = {"iss": f"dockyard-{caller}", "aud": callee, "iat": now, "exp": now + 60, **claims}
    return jwt.encode(issued, secret, algorithm="HS256")


def _answer(url: str, token: str) -> tuple[int, str | None]:
    response = requests.get(url, headers={HEADER: token}, timeout=10)
    return response.status_code, response.json().get("code") if response.content else None


def test_files_serves_its_input_files_endpoint_to_the_tasks_service_only(files_server):
    url = f"{files_server.url}/internal/v1/files/{uuid.uuid4()}/content?task={uuid.uuid4()}"
    # Accepted: past the credential, files answers for the file itself (no such file).
    assert _answer(url, peer_headers("tasks", "files")[HEADER])[0] == 404
    assert _answer(url, gateway_headers("files")[HEADER]) == (403, "SERVICE_CALLER_NOT_ALLOWED")
    assert _answer(url, gateway_headers("files", "198.51.100.7")[HEADER])[0] == 403
    assert _answer(url, _peer_token("files", "tasks")) == (401, "SERVICE_CREDENTIAL_INVALID")
    assert requests.get(url, timeout=10).status_code == 401


def test_tasks_serves_its_outputs_endpoint_to_the_files_service_only(tasks_server):
    url = f"{tasks_server.url}/internal/v1/tasks/{uuid.uuid4()}/outputs/result.txt"
    # Accepted: past the credential, tasks answers for the task itself (no finished task).
    assert _answer(url, peer_headers("files", "tasks")[HEADER])[0] == 404
    assert _answer(url, gateway_headers("tasks")[HEADER]) == (403, "SERVICE_CALLER_NOT_ALLOWED")
    assert _answer(url, _peer_token("tasks", "files")) == (401, "SERVICE_CREDENTIAL_INVALID")
    assert requests.get(url, timeout=10).status_code == 401


def test_a_peer_credential_is_refused_on_every_public_endpoint(files_server, tasks_server, gql):
    user = register(gql)
    bearer = {"Authorization": f"Bearer {user['accessToken']}"}
    for server, caller, callee, path in (
        (files_server, "tasks", "files", "/v1/files"),
        (tasks_server, "files", "tasks", "/v1/tasks"),
    ):
        url = f"{server.url}{path}"
        # The gateway's credential with the user's token is served, the peer's is not.
        served = requests.get(url, headers={**bearer, **gateway_headers(callee)}, timeout=10)
        assert served.status_code == 200, served.text
        peer = {**bearer, **peer_headers(caller, callee)}
        refused = requests.get(url, headers=peer, timeout=10)
        assert (refused.status_code, refused.json()["code"]) == (403, "SERVICE_CALLER_NOT_ALLOWED")
        # Nor may a peer act for a user (obo) or forward a client (fwd), on any endpoint.
        for claims in ({"obo": user["user"]["id"]}, {"fwd": "198.51.100.8"}):
            token = _peer_token(caller, callee, **claims)
            assert _answer(url, token) == (401, "SERVICE_CREDENTIAL_INVALID")
        assert _answer(f"{server.url}{path}/missing", peer_headers(caller, callee)[HEADER]) == (
            403,
            "SERVICE_CALLER_NOT_ALLOWED",
        )
