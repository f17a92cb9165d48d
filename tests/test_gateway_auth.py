"""Accounts through the gateway, against the real auth service, database and Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from services.gateway.app import create_app as create_gateway_app
from services.gateway.tests.conftest import client_of
from tests.conftest import (
    AUTH_PAYLOAD,
    PASSWORD,
    REGISTER,
    GraphQLClient,
    auth_service,
    error_codes,
    free_port,
    gateway_settings,
    only_data,
    register,
    unique_email,
)

LOGIN = (
    f"mutation ($e: String!, $p: String!) {{ login(email: $e, password: $p) {{ {AUTH_PAYLOAD} }} }}"
)
REFRESH = f"mutation ($r: String!) {{ refreshToken(refreshToken: $r) {{ {AUTH_PAYLOAD} }} }}"
ME = "{ me { id email emailVerified createdAt } }"
LOGOUT = "mutation { logout }"


def test_register_login_me_refresh_logout_then_me_is_unauthenticated(gql):
    email = unique_email("Flow")
    registered = register(gql, f"  {email.upper()} ")
    assert registered["user"]["email"] == email.lower()
    assert registered["expiresIn"] == 900
    assert datetime.fromisoformat(registered["user"]["createdAt"]).tzinfo is not None

    logged_in = gql(LOGIN, {"e": email, "p": PASSWORD})["data"]["login"]
    assert logged_in["user"] == registered["user"]
    assert logged_in["accessToken"] != registered["accessToken"]

    me = gql(ME, token=logged_in["accessToken"])
    assert only_data(me) == {"me": registered["user"]}

    refreshed = gql(REFRESH, {"r": logged_in["refreshToken"]})["data"]["refreshToken"]
    assert refreshed["refreshToken"] != logged_in["refreshToken"]
    assert gql(ME, token=refreshed["accessToken"])["data"]["me"]["email"] == email.lower()

    assert gql(LOGOUT, token=refreshed["accessToken"]) == {"data": {"logout": True}}

    after = gql(ME, token=refreshed["accessToken"])
    assert after["data"] is None
    assert error_codes(after) == ["UNAUTHENTICATED"]
    # Logout revoked the whole family: its refresh token is dead too.
    assert error_codes(gql(REFRESH, {"r": refreshed["refreshToken"]})) == ["UNAUTHENTICATED"]
    # The other login (registration's family) is untouched.
    assert gql(ME, token=registered["accessToken"])["data"]["me"]["email"] == email.lower()


def test_reusing_a_rotated_refresh_token_is_unauthenticated_and_revokes_the_family(gql):
    first = register(gql)
    second = gql(REFRESH, {"r": first["refreshToken"]})["data"]["refreshToken"]

    reused = gql(REFRESH, {"r": first["refreshToken"]})
    assert reused["data"] is None
    assert error_codes(reused) == ["UNAUTHENTICATED"]
    assert "already used" in reused["errors"][0]["message"]

    newer = gql(REFRESH, {"r": second["refreshToken"]})
    assert error_codes(newer) == ["UNAUTHENTICATED"]
    assert error_codes(gql(ME, token=second["accessToken"])) == ["UNAUTHENTICATED"]


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [
        ("not-an-email", PASSWORD, "email"),
        (None, "short", "password"),
        ("", PASSWORD, "email"),
    ],
)
def test_bad_registration_input_is_bad_user_input_with_fields(gql, email, password, field):
    body = gql(REGISTER, {"e": unique_email() if email is None else email, "p": password})
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert field in error["extensions"]["fields"]
    assert body["data"] is None


def test_an_invalid_email_and_a_short_password_are_both_reported(gql):
    body = gql(REGISTER, {"e": "nope", "p": "short"})
    fields = body["errors"][0]["extensions"]["fields"]
    assert set(fields) == {"email", "password"}


def test_registering_a_taken_email_is_a_conflict(gql):
    email = unique_email()
    register(gql, email)
    body = gql(REGISTER, {"e": email.upper(), "p": "another password"})
    assert error_codes(body) == ["CONFLICT"]


def test_a_missing_argument_is_bad_user_input_before_auth_is_called(gql):
    response = gql.post('mutation { register(email: "a@example.com") { accessToken } }')
    assert response.status_code == 400  # graphql-response+json: nothing was executed
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]


def test_a_wrong_password_is_unauthenticated(gql):
    email = unique_email()
    register(gql, email)
    body = gql(LOGIN, {"e": email, "p": "wrong password"})
    assert error_codes(body) == ["UNAUTHENTICATED"]


@pytest.mark.parametrize("token", [None, "garbage", "a.b.c"])
def test_me_without_a_valid_token_is_unauthenticated(gql, token):
    body = gql(ME, token=token)
    assert body["data"] is None
    assert error_codes(body) == ["UNAUTHENTICATED"]


def test_me_with_an_expired_token_is_unauthenticated(gql, test_env):
    registered = register(gql)
    claims = jwt.decode(registered["accessToken"], options={"verify_signature": False})
    past = datetime.now(UTC) - timedelta(hours=1)
    claims.update(iat=past, nbf=past, exp=past + timedelta(minutes=15))
    kid = jwt.get_unverified_header(registered["accessToken"])["kid"]
    expired = jwt.encode(claims, test_env.private_key_pem, "RS256", headers={"kid": kid})
    body = gql(ME, token=expired)
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert "expired" in body["errors"][0]["message"]


def test_a_refresh_token_is_not_an_access_token(gql):
    registered = register(gql)
    assert error_codes(gql(ME, token=registered["refreshToken"])) == ["UNAUTHENTICATED"]


def test_the_gateways_verifier_rejects_a_logged_out_token(gateway_app, gql):
    from services.gateway.context import verify_token
    from services.gateway.errors import Unauthenticated

    registered = register(gql)
    verifier = gateway_app.gateway.verifier
    identity = asyncio.run(verify_token(verifier, registered["accessToken"]))
    assert identity.user_id == registered["user"]["id"]
    gql(LOGOUT, token=registered["accessToken"])
    with pytest.raises(Unauthenticated, match="revoked"):
        asyncio.run(verify_token(verifier, registered["accessToken"]))


def test_login_is_throttled_per_account_and_address_with_retry_after(test_env):
    with auth_service(LOGIN_FREE_FAILURES=3) as auth:
        gql = GraphQLClient(client_of(create_gateway_app(gateway_settings(auth.url))))
        email = unique_email()
        register(gql, email)
        for _ in range(3):
            assert error_codes(gql(LOGIN, {"e": email, "p": "wrong password"})) == [
                "UNAUTHENTICATED"
            ]
        body = gql(LOGIN, {"e": email, "p": PASSWORD})
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert 0 < error["extensions"]["retryAfter"] <= 60


def _aliased_logins(email: str, passwords: list[str]) -> str:
    fields = " ".join(
        f'a{i}: login(email: "{email}", password: "{password}") {{ accessToken }}'
        for i, password in enumerate(passwords)
    )
    return f"mutation {{ {fields} }}"


def test_aliased_wrong_passwords_stop_at_the_first_and_each_attempt_counts(test_env):
    with auth_service(LOGIN_FREE_FAILURES=3) as auth:
        gql = GraphQLClient(client_of(create_gateway_app(gateway_settings(auth.url))))
        email = unique_email()
        register(gql, email)
        guesses = _aliased_logins(email, [f"guess-{i}" for i in range(5)])
        for _ in range(3):
            # login is AuthPayload!: its failure nulls the whole mutation, and graphql-core
            # runs no further mutation field, so one request tries one wrong password.
            body = gql(guesses)
            assert body["data"] is None
            assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
                (["a0"], "UNAUTHENTICATED")
            ]
        (error,) = gql(guesses)["errors"]
        assert (error["path"], error["extensions"]["code"]) == (["a0"], "RATE_LIMITED")


def test_aliased_logins_under_the_field_limit_each_count_at_auth(test_env):
    with auth_service(LOGIN_LIMIT_PER_IP="3/minute") as auth:
        app = create_gateway_app(gateway_settings(auth.url))
        gql = GraphQLClient(client_of(app, address=f"192.0.2.{uuid.uuid4().int % 250 + 1}"))
        email = unique_email()
        register(gql, email)
        body = gql(_aliased_logins(email, [PASSWORD] * 5))
        assert body["data"] is None
        assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
            (["a3"], "RATE_LIMITED")
        ]


def test_auth_limits_addresses_by_the_client_address_the_gateway_forwards(test_env):
    with auth_service(LOGIN_LIMIT_PER_IP="2/minute") as auth:
        app = create_gateway_app(gateway_settings(auth.url))
        octet = uuid.uuid4().int % 250 + 1
        first = GraphQLClient(client_of(app, address=f"198.51.100.{octet}"))
        second = GraphQLClient(client_of(app, address=f"203.0.113.{octet}"))
        for _ in range(2):
            body = first(LOGIN, {"e": unique_email(), "p": "wrong password"})
            assert error_codes(body) == ["UNAUTHENTICATED"]
        assert error_codes(first(LOGIN, {"e": unique_email(), "p": "x"})) == ["RATE_LIMITED"]
        # Another address behind the same gateway is not punished for the first one.
        assert error_codes(second(LOGIN, {"e": unique_email(), "p": "x"})) == ["UNAUTHENTICATED"]


def test_auth_down_is_service_unavailable_with_http_200(test_env):
    port = free_port()
    app = create_gateway_app(gateway_settings(f"http://127.0.0.1:{port}"))
    gql = GraphQLClient(client_of(app))
    for query, variables, token in [
        (REGISTER, {"e": unique_email(), "p": PASSWORD}, None),
        (LOGIN, {"e": unique_email(), "p": PASSWORD}, None),
        (REFRESH, {"r": "whatever"}, None),
        (ME, None, "some-token"),
        (LOGOUT, None, "some-token"),
    ]:
        response = gql.post(query, variables, token=token)
        assert response.status_code == 200
        body = response.json()
        assert error_codes(body) == ["SERVICE_UNAVAILABLE"]
        assert body["errors"][0]["message"] == "The auth service is unavailable. Try again later."
        text = response.text
        assert str(port) not in text and "Traceback" not in text and "http://" not in text


def test_no_error_carries_a_stack_trace_or_an_internal_address(gql, auth_server):
    bodies = [
        gql.post("{ me { id ").text,
        gql.post(ME, token="x.y.z").text,
        gql.post(REGISTER, {"e": "bad", "p": "bad"}).text,
        gql.post(REFRESH, {"r": "x" * 5000}).text,
        gql.post("{ files { totalCount } }").text,
    ]
    for text in bodies:
        assert "Traceback" not in text
        assert "stacktrace" not in text
        assert auth_server.url not in text
        assert 'File "' not in text


LOGOUT_ALL = "mutation { logoutAll }"


def test_logout_all_ends_every_session_of_the_user_everywhere(gql):
    email = unique_email()
    first = register(gql, email)
    second = gql(LOGIN, {"e": email, "p": PASSWORD})["data"]["login"]
    stranger = register(gql)

    assert gql(LOGOUT_ALL, token=second["accessToken"]) == {"data": {"logoutAll": True}}

    ended_at = time.monotonic()
    for session in (first, second):
        while gql(ME, token=session["accessToken"]).get("data"):
            assert time.monotonic() - ended_at < 2.0, "access token still accepted after 2 s"
            time.sleep(0.05)
        assert error_codes(gql(ME, token=session["accessToken"])) == ["UNAUTHENTICATED"]
        assert error_codes(gql(REFRESH, {"r": session["refreshToken"]})) == ["UNAUTHENTICATED"]
    # Another user's session is untouched.
    assert gql(ME, token=stranger["accessToken"])["data"]["me"]["id"] == stranger["user"]["id"]


def test_logout_all_without_a_token_is_unauthenticated(gql):
    assert error_codes(gql(LOGOUT_ALL)) == ["UNAUTHENTICATED"]
