"""Security events reach the JSON log with who and from where, and never a secret."""

from __future__ import annotations

import json
import logging

import pytest

from services.auth.tests.conftest import bearer, unique_email
from shared.logging import JsonFormatter
from shared.testing import gateway_headers

ADDRESS, OWNER = "198.51.100.23", "192.0.2.99"


@pytest.fixture
def events(caplog, auth_app):
    """The auth event records of the test, as the JSON lines the service writes."""
    # auth_app first: the process's first app sets up logging, which replaces root's handlers
    # (caplog's among them).
    caplog.set_level(logging.INFO, logger="dockyard.auth.events")

    def lines() -> list[dict]:
        formatter = JsonFormatter("auth")
        return [
            json.loads(formatter.format(record))
            for record in caplog.records
            if record.name == "dockyard.auth.events"
        ]

    return lines


def test_every_security_event_is_logged_with_user_and_address_and_no_secret(make_app, events):
    client = make_app(LOGIN_FREE_FAILURES=1).test_client()
    headers = gateway_headers("auth", ADDRESS)
    email, password = unique_email(), "a secret passphrase"
    registered = client.post("/v1/auth/register", json={"email": email, "password": password}).json
    user_id = registered["user"]["id"]

    wrong = {"email": email, "password": "wrong secret guess"}
    assert client.post("/v1/auth/login", json=wrong, headers=headers).status_code == 401
    assert client.post("/v1/auth/login", json=wrong, headers=headers).status_code == 429

    def log_in() -> dict:
        right = {"email": email, "password": password}
        response = client.post("/v1/auth/login", json=right, headers=gateway_headers("auth", OWNER))
        assert response.status_code == 200, response.json
        return response.json

    login = log_in()
    rotated = client.post("/v1/auth/refresh", json={"refresh_token": login["refresh_token"]}).json
    reused = client.post(
        "/v1/auth/refresh", json={"refresh_token": login["refresh_token"]}, headers=headers
    )
    assert reused.status_code == 401
    last = log_in()
    logout = client.post("/v1/auth/logout", headers={**headers, **bearer(last["access_token"])})
    assert logout.status_code == 204
    everywhere = {**headers, **bearer(registered["access_token"])}
    assert client.post("/v1/auth/logout-all", headers=everywhere).status_code == 204

    lines = events()
    seen = [(line["event"], line.get("user_id"), line["client_address"]) for line in lines]
    assert seen == [
        ("login_failed", user_id, ADDRESS),
        ("login_throttled", None, ADDRESS),
        ("login_succeeded", user_id, OWNER),
        ("refresh_reuse_detected", user_id, ADDRESS),
        ("login_succeeded", user_id, OWNER),
        ("logged_out", user_id, ADDRESS),
        ("logged_out_everywhere", user_id, ADDRESS),
    ]
    assert lines[0]["level"] == "WARNING" and lines[2]["level"] == "INFO"
    assert lines[-1]["sessions_ended"] == 1
    everything = json.dumps(lines)
    secrets = [password, "wrong secret guess", email]
    for tokens in (registered, login, rotated, last):
        secrets += [tokens["access_token"], tokens["refresh_token"]]
    for secret in secrets:
        assert secret not in everything


def test_a_failed_login_for_an_unknown_email_is_logged_without_a_user(client, events):
    response = client.post(
        "/v1/auth/login",
        json={"email": unique_email(), "password": "whatever it is"},
        headers=gateway_headers("auth", ADDRESS),
    )
    assert response.status_code == 401
    (line,) = events()
    assert line["event"] == "login_failed" and "user_id" not in line
    assert line["client_address"] == ADDRESS and line["failures"] == 1
