"""Account management through the gateway: the real auth service, relay, consumer, mail worker
and a real SMTP server; the tests read the mail and follow its links."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.auth.tests.mailbox import link_token
from services.gateway.app import create_app as create_gateway_app
from services.gateway.context import verify_token
from services.gateway.errors import GatewayError
from services.gateway.tests.conftest import client_of
from tests.conftest import (
    AUTH_PAYLOAD,
    PASSWORD,
    REGISTER,
    GraphQLClient,
    auth_service,
    error_codes,
    gateway_settings,
    only_data,
    register,
    unique_email,
)

NEW_PASSWORD = "violet harbour lantern"
ME = "{ me { id email emailVerified } }"
LOGIN = (
    f"mutation ($e: String!, $p: String!) {{ login(email: $e, password: $p) {{ {AUTH_PAYLOAD} }} }}"
)
REFRESH = f"mutation ($r: String!) {{ refreshToken(refreshToken: $r) {{ {AUTH_PAYLOAD} }} }}"
CHANGE = (
    "mutation ($c: String!, $n: String!) "
    f"{{ changePassword(currentPassword: $c, newPassword: $n) {{ {AUTH_PAYLOAD} }} }}"
)
REQUEST_RESET = "mutation ($e: String!) { requestPasswordReset(email: $e) }"
RESET = "mutation ($t: String!, $n: String!) { resetPassword(token: $t, newPassword: $n) }"
REQUEST_VERIFICATION = "mutation { requestEmailVerification }"
VERIFY = "mutation ($t: String!) { verifyEmail(token: $t) { id email emailVerified } }"


def refused_everywhere_within_two_seconds(gateway_app, gql, access_token: str) -> None:
    """The gateway's own verifier (JWKS + deny-list) and auth both refuse the token in 2 s."""
    verifier = gateway_app.gateway.verifier
    started = time.monotonic()
    while True:
        try:
            asyncio.run(verify_token(verifier, access_token))
        except GatewayError as exc:
            assert exc.code == "UNAUTHENTICATED"
            break
        assert time.monotonic() - started < 2.0, "token still accepted after 2 seconds"
        time.sleep(0.05)
    assert error_codes(gql(ME, token=access_token)) == ["UNAUTHENTICATED"]


def test_a_reset_mail_resets_the_password_and_ends_every_session(gateway_app, gql, smtp, pipeline):
    email = unique_email("reset")
    first = register(gql, email)
    second = only_data(gql(LOGIN, {"e": email, "p": PASSWORD}))["login"]

    assert only_data(gql(REQUEST_RESET, {"e": email})) == {"requestPasswordReset": True}
    (mail,) = smtp.mailbox.wait_for(email)
    token = link_token(mail, "reset-password")

    assert only_data(gql(RESET, {"t": token, "n": NEW_PASSWORD})) == {"resetPassword": True}
    for session in (first, second):
        refused_everywhere_within_two_seconds(gateway_app, gql, session["accessToken"])
        assert error_codes(gql(REFRESH, {"r": session["refreshToken"]})) == ["UNAUTHENTICATED"]
    assert error_codes(gql(LOGIN, {"e": email, "p": PASSWORD})) == ["UNAUTHENTICATED"]
    assert "errors" not in gql(LOGIN, {"e": email, "p": NEW_PASSWORD})

    again = gql(RESET, {"t": token, "n": "another fresh passphrase"})
    (error,) = again["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert set(error["extensions"]["fields"]) == {"token"}


def test_a_reset_request_for_an_unknown_email_is_true_too(gql):
    assert only_data(gql(REQUEST_RESET, {"e": unique_email("nobody")})) == {
        "requestPasswordReset": True
    }


def test_a_verification_mail_verifies_the_email(gql, smtp, pipeline):
    email = unique_email("verify")
    user = register(gql, email)
    assert user["user"]["emailVerified"] is False
    assert only_data(gql(REQUEST_VERIFICATION, token=user["accessToken"])) == {
        "requestEmailVerification": True
    }
    (mail,) = smtp.mailbox.wait_for(email)
    verified = only_data(gql(VERIFY, {"t": link_token(mail, "verify-email")}))["verifyEmail"]
    assert verified == {"id": user["user"]["id"], "email": email, "emailVerified": True}
    assert only_data(gql(ME, token=user["accessToken"]))["me"]["emailVerified"] is True


def test_change_password_returns_a_new_session_and_ends_the_others(gateway_app, gql):
    email = unique_email("change")
    first = register(gql, email)
    other = only_data(gql(LOGIN, {"e": email, "p": PASSWORD}))["login"]

    changed = only_data(
        gql(CHANGE, {"c": PASSWORD, "n": NEW_PASSWORD}, token=first["accessToken"])
    )["changePassword"]
    assert changed["user"]["id"] == first["user"]["id"]
    assert only_data(gql(ME, token=changed["accessToken"]))["me"]["email"] == email
    for session in (first, other):
        refused_everywhere_within_two_seconds(gateway_app, gql, session["accessToken"])
        assert error_codes(gql(REFRESH, {"r": session["refreshToken"]})) == ["UNAUTHENTICATED"]
    assert "errors" not in gql(REFRESH, {"r": changed["refreshToken"]})


@pytest.mark.parametrize(
    ("current", "new", "field"),
    [
        ("not my password", NEW_PASSWORD, "currentPassword"),
        (PASSWORD, "password", "newPassword"),
        (PASSWORD, "12345678", "newPassword"),
        (PASSWORD, "short", "newPassword"),
    ],
)
def test_change_password_input_errors_name_the_argument(gql, current, new, field):
    user = register(gql)
    body = gql(CHANGE, {"c": current, "n": new}, token=user["accessToken"])
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert set(error["extensions"]["fields"]) == {field}
    assert body["data"] is None
    assert "errors" not in gql(ME, token=user["accessToken"])


@pytest.mark.parametrize("password", ["password", "12345678"])
def test_register_refuses_weak_passwords_with_advice(gql, password):
    body = gql(REGISTER, {"e": unique_email(), "p": password})
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "common" in error["extensions"]["fields"]["password"]


def test_account_operations_that_need_a_session_are_unauthenticated_without_one(gql):
    assert error_codes(gql(REQUEST_VERIFICATION)) == ["UNAUTHENTICATED"]
    assert error_codes(gql(CHANGE, {"c": PASSWORD, "n": NEW_PASSWORD})) == ["UNAUTHENTICATED"]


def test_unknown_tokens_are_bad_user_input_on_the_token(gql):
    for operation, variables in ((RESET, {"t": "nope", "n": NEW_PASSWORD}), (VERIFY, {"t": "x"})):
        (error,) = gql(operation, variables)["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert set(error["extensions"]["fields"]) == {"token"}


def test_reset_requests_are_rate_limited(test_env):
    with auth_service(EMAIL_REQUEST_LIMIT_PER_ACCOUNT="2/minute") as auth:
        gql = GraphQLClient(client_of(create_gateway_app(gateway_settings(auth.url))))
        email = unique_email("limited")
        answers = [gql(REQUEST_RESET, {"e": email}) for _ in range(3)]
        assert [a.get("data") for a in answers[:2]] == [{"requestPasswordReset": True}] * 2
        (error,) = answers[2]["errors"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert error["extensions"]["retryAfter"] > 0
