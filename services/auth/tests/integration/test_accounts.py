"""Password change and reset, email verification and the password policy, over the REST API.

Against the real database and Redis; mailed tokens are read from the mail a real SMTP server
received from the relay, consumer and mail worker (services/auth/tests/mailbox.py).
"""

from __future__ import annotations

import json
import logging
import time
import uuid

import pytest
from sqlalchemy import text

from services.auth.tests.conftest import bearer, unique_email
from services.auth.tests.mailbox import link_token
from shared.testing import gateway_headers

STRONG = "rusty anchor at dawn"
NEWER = "violet harbour lantern"


def register(client, email: str | None = None, password: str = STRONG) -> dict:
    """Register a user; returns the registration body plus email and password."""
    email = email or unique_email()
    response = client.post("/v1/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.json
    return {"email": email, "password": password, **response.json}


def login(client, email: str, password: str):
    """POST /v1/auth/login."""
    return client.post("/v1/auth/login", json={"email": email, "password": password})


@pytest.fixture(autouse=True)
def _mail(pipeline):
    """Every test here may mail: the relay, consumer and mail worker run."""


def tokens_of(auth_app, user_id: str, purpose: str) -> list[dict]:
    """The user's account-token rows of `purpose`, newest first."""
    with auth_app.extensions["auth"].engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT * FROM account_tokens WHERE user_id = :u AND purpose = :p "
                "ORDER BY created_at DESC"
            ),
            {"u": user_id, "p": purpose},
        ).mappings()
        return [dict(row) for row in rows]


def mailed_token(smtp, email: str, purpose: str, count: int = 1) -> str:
    """The token of the `count`th mail to `email` (waiting for it), of `purpose`."""
    path = {"password_reset": "reset-password", "email_verification": "verify-email"}[purpose]
    return link_token(smtp.mailbox.wait_for(email, count)[count - 1], path)


def request_reset(client, email: str):
    """POST the password reset request."""
    return client.post("/v1/auth/password-reset/request", json={"email": email})


def reset(client, token: str, password: str = NEWER):
    """POST a new password with a reset token."""
    return client.post("/v1/auth/password-reset", json={"token": token, "new_password": password})


def is_accepted(client, access_token: str) -> bool:
    """Whether the auth service still takes the access token."""
    return client.get("/v1/users/me", headers=bearer(access_token)).status_code == 200


@pytest.mark.parametrize("password", ["password", "12345678", "qwertyuiop", "aaaaaaaaaaaa"])
def test_register_refuses_common_and_guessable_passwords_with_zxcvbns_advice(client, password):
    response = client.post(
        "/v1/auth/register", json={"email": unique_email(), "password": password}
    )
    assert response.status_code == 400, response.json
    assert response.json["code"] == "BAD_USER_INPUT"
    message = response.json["fields"]["password"]
    assert message.endswith(".") and len(message) > 20


def test_register_weighs_the_password_against_the_users_own_email(client):
    password = "wobbleflump77"
    assert register(client, password=password)["user"]["email"]
    response = client.post(
        "/v1/auth/register",
        json={"email": f"wobbleflump77-{uuid.uuid4().hex[:8]}@example.com", "password": password},
    )
    assert response.status_code == 400
    assert "password" in response.json["fields"]


def test_a_short_password_still_gets_the_length_message(client):
    response = client.post("/v1/auth/register", json={"email": unique_email(), "password": "Xy7!"})
    assert response.status_code == 400
    assert response.json["fields"]["password"] == "Password must be 8 to 1024 characters."


def test_a_reset_request_answers_the_same_for_known_and_unknown_emails(client, auth_app, smtp):
    user = register(client)
    nobody = unique_email("nobody")
    unknown = request_reset(client, nobody)
    known = request_reset(client, user["email"].upper())
    assert known.status_code == unknown.status_code == 204
    assert known.get_data() == unknown.get_data() == b""
    token = mailed_token(smtp, user["email"], "password_reset")
    # Only a hash of the token is stored.
    (row,) = tokens_of(auth_app, user["user"]["id"], "password_reset")
    assert token not in json.dumps(row, default=str)
    time.sleep(1)
    assert smtp.mailbox.to(nobody) == []


def test_reset_sets_the_password_ends_every_session_and_works_once(client, auth_app, caplog, smtp):
    user = register(client)
    second = login(client, user["email"], STRONG).json
    request_reset(client, user["email"])
    token = mailed_token(smtp, user["email"], "password_reset")

    with caplog.at_level(logging.INFO, logger="dockyard.auth.events"):
        response = reset(client, token)
    assert response.status_code == 204, response.json

    for session in (user, second):
        assert not is_accepted(client, session["access_token"])
        refreshed = client.post(
            "/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
        )
        assert refreshed.status_code == 401
    assert login(client, user["email"], STRONG).status_code == 401
    assert login(client, user["email"], NEWER).status_code == 200

    again = reset(client, token, "another fresh passphrase")
    assert again.status_code == 400
    assert again.json["code"] == "BAD_USER_INPUT" and "token" in again.json["fields"]

    (event,) = [r for r in caplog.records if getattr(r, "event", None) == "password_reset"]
    assert event.user_id == user["user"]["id"] and event.client_address
    assert all(token not in r.getMessage() and NEWER not in str(vars(r)) for r in caplog.records)


def test_a_newer_reset_mail_voids_nothing_but_one_use_voids_all(client, auth_app, smtp):
    user = register(client)
    request_reset(client, user["email"])
    first = mailed_token(smtp, user["email"], "password_reset")
    request_reset(client, user["email"])
    second = mailed_token(smtp, user["email"], "password_reset", count=2)
    assert first != second
    assert reset(client, first).status_code == 204
    assert reset(client, second, "another fresh passphrase").status_code == 400


@pytest.mark.parametrize("token", ["", "not-a-token", "x" * 43])
def test_unknown_reset_tokens_are_bad_user_input_on_the_token(client, token):
    response = reset(client, token)
    assert response.status_code == 400
    assert "token" in response.json["fields"]


def test_an_expired_reset_token_is_refused(client, auth_app, smtp):
    user = register(client)
    request_reset(client, user["email"])
    token = mailed_token(smtp, user["email"], "password_reset")
    with auth_app.extensions["auth"].engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE account_tokens SET expires_at = now() - interval '1 second' "
                "WHERE user_id = :u"
            ),
            {"u": user["user"]["id"]},
        )
    response = reset(client, token)
    assert response.status_code == 400 and "token" in response.json["fields"]
    assert login(client, user["email"], STRONG).status_code == 200


def test_a_weak_new_password_keeps_the_reset_token_usable(client, auth_app, smtp):
    user = register(client)
    request_reset(client, user["email"])
    token = mailed_token(smtp, user["email"], "password_reset")
    weak = reset(client, token, "password1")
    assert weak.status_code == 400
    assert set(weak.json["fields"]) == {"new_password"}
    assert reset(client, token).status_code == 204


def change(client, access_token: str, current: str, new: str):
    """POST a password change as the holder of `access_token`."""
    return client.post(
        "/v1/auth/password-change",
        json={"current_password": current, "new_password": new},
        headers=bearer(access_token),
    )


def test_change_password_keeps_only_the_new_session(client, caplog):
    user = register(client)
    other = login(client, user["email"], STRONG).json

    with caplog.at_level(logging.INFO, logger="dockyard.auth.events"):
        response = change(client, user["access_token"], STRONG, NEWER)
    assert response.status_code == 200, response.json
    fresh = response.json
    assert fresh["user"]["id"] == user["user"]["id"]

    assert is_accepted(client, fresh["access_token"])
    for session in (user, other):
        assert not is_accepted(client, session["access_token"])
        refreshed = client.post(
            "/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
        )
        assert refreshed.status_code == 401
    kept = client.post("/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
    assert kept.status_code == 200
    assert login(client, user["email"], NEWER).status_code == 200
    assert login(client, user["email"], STRONG).status_code == 401
    (event,) = [r for r in caplog.records if getattr(r, "event", None) == "password_changed"]
    assert event.user_id == user["user"]["id"] and event.client_address


def test_change_password_with_a_wrong_current_password_is_bad_input_on_that_field(client):
    user = register(client)
    response = change(client, user["access_token"], "not my password", NEWER)
    assert response.status_code == 400
    assert set(response.json["fields"]) == {"current_password"}
    assert is_accepted(client, user["access_token"])


def test_change_password_refuses_a_weak_new_password_and_changes_nothing(client):
    user = register(client)
    response = change(client, user["access_token"], STRONG, "12345678")
    assert response.status_code == 400
    assert set(response.json["fields"]) == {"new_password"}
    assert is_accepted(client, user["access_token"])
    assert login(client, user["email"], STRONG).status_code == 200


def test_change_password_needs_a_token(client):
    response = client.post(
        "/v1/auth/password-change", json={"current_password": STRONG, "new_password": NEWER}
    )
    assert response.status_code == 401


def test_email_verification_marks_the_user_verified_once(client, auth_app, smtp):
    user = register(client)
    assert user["user"]["email_verified"] is False
    response = client.post("/v1/users/me/email-verification", headers=bearer(user["access_token"]))
    assert response.status_code == 204
    token = mailed_token(smtp, user["email"], "email_verification")

    verified = client.post("/v1/auth/email-verification", json={"token": token})
    assert verified.status_code == 200, verified.json
    assert verified.json["email_verified"] is True and verified.json["id"] == user["user"]["id"]
    me = client.get("/v1/users/me", headers=bearer(user["access_token"])).json
    assert me["email_verified"] is True

    again = client.post("/v1/auth/email-verification", json={"token": token})
    assert again.status_code == 400 and "token" in again.json["fields"]
    # A reset token is no verification token, and the other way round.
    assert reset(client, token).status_code == 400


def test_a_verified_email_is_not_mailed_again(client, auth_app, smtp):
    user = register(client)
    client.post("/v1/users/me/email-verification", headers=bearer(user["access_token"]))
    token = mailed_token(smtp, user["email"], "email_verification")
    client.post("/v1/auth/email-verification", json={"token": token})
    client.post("/v1/users/me/email-verification", headers=bearer(user["access_token"]))
    time.sleep(1.5)
    assert len(smtp.mailbox.to(user["email"])) == 1
    assert len(tokens_of(auth_app, user["user"]["id"], "email_verification")) == 1


def test_reset_requests_are_rate_limited_per_email_whatever_the_address(make_app):
    client = make_app(EMAIL_REQUEST_LIMIT_PER_ACCOUNT="2/minute").test_client()
    email = unique_email()
    statuses = [
        client.post(
            "/v1/auth/password-reset/request",
            json={"email": email},
            headers=gateway_headers("auth", f"198.51.100.{index}"),
        ).status_code
        for index in range(3)
    ]
    assert statuses == [204, 204, 429]
    other = client.post("/v1/auth/password-reset/request", json={"email": unique_email()})
    assert other.status_code == 204


def test_verification_requests_are_rate_limited_per_user(make_app):
    client = make_app(EMAIL_REQUEST_LIMIT_PER_ACCOUNT="2/minute").test_client()
    user = register(client)
    statuses = [
        client.post(
            "/v1/users/me/email-verification",
            headers={**bearer(user["access_token"]), **gateway_headers("auth", f"198.51.100.{i}")},
        ).status_code
        for i in range(3)
    ]
    assert statuses == [204, 204, 429]
