"""The auth REST API against the real database and Redis, good and bad input alike."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from services.auth.tests.conftest import bearer, unique_email
from shared.testing import gateway_headers


def test_register_trims_and_lowercases_the_email_and_returns_tokens(client):
    email = unique_email("Mixed")
    response = client.post(
        "/v1/auth/register",
        json={"email": f"  {email.upper()} ", "password": "rusty anchor at dawn"},
    )
    assert response.status_code == 201
    body = response.json
    assert body["user"]["email"] == email.lower()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["access_token"] and body["refresh_token"]


def test_register_rejects_a_duplicate_email_with_409(client, registered):
    response = client.post(
        "/v1/auth/register",
        json={"email": registered["email"].upper(), "password": "another password"},
    )
    assert response.status_code == 409
    assert response.json["code"] == "CONFLICT"
    assert "email" in response.json["fields"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email", "password": "rusty anchor at dawn"}, "email"),
        ({"email": unique_email(), "password": "short"}, "password"),
        ({"password": "rusty anchor at dawn"}, "email"),
        ({"email": unique_email()}, "password"),
        ({"email": 12345, "password": "rusty anchor at dawn"}, "email"),
        ({"email": unique_email(), "password": ["not", "a", "string"]}, "password"),
        (
            {"email": "'; DROP TABLE users; --@example.com", "password": "rusty anchor at dawn"},
            "email",
        ),
        ({"email": "a" * 250 + "@example.com", "password": "rusty anchor at dawn"}, "email"),
    ],
)
def test_register_rejects_bad_input_with_field_errors(client, payload, field):
    response = client.post("/v1/auth/register", json=payload)
    assert response.status_code == 400
    assert response.json["code"] == "BAD_USER_INPUT"
    assert field in response.json["fields"]
    assert "Traceback" not in response.get_data(as_text=True)


def test_register_refuses_a_password_equal_to_the_email(client):
    email = unique_email()
    response = client.post("/v1/auth/register", json={"email": email, "password": email.upper()})
    assert response.status_code == 400
    assert response.json["fields"]["password"] == "Password must not be the email address."


def test_malformed_json_is_a_clear_400(client):
    response = client.post(
        "/v1/auth/register", data='{"email": "x@example.com", ', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json["code"] == "BAD_USER_INPUT"
    assert "JSON" in response.json["message"]


def test_a_json_array_body_is_a_clear_400(client):
    response = client.post("/v1/auth/login", json=["email", "password"])
    assert response.status_code == 400
    assert response.json["code"] == "BAD_USER_INPUT"


def test_oversized_body_is_refused_with_413(client):
    response = client.post(
        "/v1/auth/register",
        json={"email": unique_email(), "password": "x" * (128 * 1024)},
    )
    assert response.status_code == 413
    assert response.json["code"] == "PAYLOAD_TOO_LARGE"


def test_unicode_and_sql_looking_passwords_round_trip(client):
    email = unique_email()
    for password in ("pässwörd-ünïcødé-🚢", "' OR 1=1; --"):
        email = unique_email()
        assert (
            client.post(
                "/v1/auth/register", json={"email": email, "password": password}
            ).status_code
            == 201
        )
        login = client.post("/v1/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.json


def test_unicode_email_never_causes_a_server_error(client):
    response = client.post(
        "/v1/auth/register",
        json={"email": "ünïcødé@exämple.com", "password": "rusty anchor at dawn"},
    )
    assert response.status_code == 201, response.json
    assert response.json["user"]["email"] == "ünïcødé@exämple.com"


def test_login_returns_a_new_token_pair(client, registered):
    response = client.post(
        "/v1/auth/login",
        json={"email": registered["email"], "password": registered["password"]},
    )
    assert response.status_code == 200
    assert response.json["user"]["id"] == registered["user"]["id"]
    assert response.json["refresh_token"] != registered["refresh_token"]


def test_wrong_password_and_unknown_email_get_the_same_answer(client, registered):
    wrong_password = client.post(
        "/v1/auth/login", json={"email": registered["email"], "password": "wrong password"}
    )
    unknown_email = client.post(
        "/v1/auth/login", json={"email": unique_email(), "password": "wrong password"}
    )
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json == unknown_email.json


def test_wrong_password_and_unknown_email_take_about_the_same_time(client, registered):
    def fastest_seconds(email: str) -> float:
        samples = []
        for _ in range(7):
            started = time.perf_counter()
            client.post("/v1/auth/login", json={"email": email, "password": "wrong password"})
            samples.append(time.perf_counter() - started)
        # The minimum is what the code costs; load on a shared machine only adds to it.
        return min(samples)

    known = fastest_seconds(registered["email"])
    unknown = fastest_seconds(unique_email())
    # Both pay one argon2id verification; without the dummy hash `unknown` would be ~100x faster.
    assert unknown > known * 0.3
    assert known > unknown * 0.3


def test_me_returns_the_user_of_the_token(client, registered):
    response = client.get("/v1/users/me", headers=bearer(registered["access_token"]))
    assert response.status_code == 200
    assert response.json == registered["user"]


def test_me_survives_a_database_restart_that_killed_its_connections(make_app, registered, test_env):
    import psycopg2

    app = make_app()
    client = app.test_client()
    headers = bearer(registered["access_token"])
    assert client.get("/v1/users/me", headers=headers).status_code == 200
    admin = psycopg2.connect(test_env.admin_url.rsplit("/", 1)[0] + f"/{test_env.database}")
    try:
        admin.autocommit = True
        cursor = admin.cursor()
        # The user reader's connections (it keeps its own), as a restart would kill them.
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'EXECUTE auth_user_by_id%%'"
        )
        assert cursor.fetchone()[0] >= 1
    finally:
        admin.close()
    response = client.get("/v1/users/me", headers=headers)
    assert response.status_code == 200
    assert response.json == registered["user"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}, bearer("not.a.jwt")],
)
def test_me_without_a_valid_token_is_401(client, headers):
    response = client.get("/v1/users/me", headers=headers)
    assert response.status_code == 401
    assert response.json["code"] == "UNAUTHENTICATED"


def test_a_tampered_token_is_401(client, registered):
    header, payload, signature = registered["access_token"].split(".")
    claims = jwt.utils.base64url_decode(payload + "==")
    forged = claims.replace(registered["user"]["id"].encode(), str(uuid.uuid4()).encode())
    tampered = ".".join([header, jwt.utils.base64url_encode(forged).decode(), signature])
    response = client.get("/v1/users/me", headers=bearer(tampered))
    assert response.status_code == 401
    assert response.json["code"] == "UNAUTHENTICATED"


def test_a_token_signed_by_another_key_is_401(client, registered):
    from shared.testing import generate_private_key_pem

    claims = jwt.decode(registered["access_token"], options={"verify_signature": False})
    kid = jwt.get_unverified_header(registered["access_token"])["kid"]
    forged = jwt.encode(claims, generate_private_key_pem(), "RS256", headers={"kid": kid})
    assert client.get("/v1/users/me", headers=bearer(forged)).status_code == 401


def test_an_expired_token_is_401(client, registered, test_env):
    claims = jwt.decode(registered["access_token"], options={"verify_signature": False})
    past = datetime.now(UTC) - timedelta(hours=1)
    claims.update(iat=past, nbf=past, exp=past + timedelta(minutes=15))
    kid = jwt.get_unverified_header(registered["access_token"])["kid"]
    expired = jwt.encode(claims, test_env.private_key_pem, "RS256", headers={"kid": kid})
    response = client.get("/v1/users/me", headers=bearer(expired))
    assert response.status_code == 401
    assert response.json["message"] == "Token has expired."


def test_a_refresh_token_is_not_accepted_as_an_access_token(client, registered):
    response = client.get("/v1/users/me", headers=bearer(registered["refresh_token"]))
    assert response.status_code == 401


def test_refresh_rotates_and_a_used_refresh_token_revokes_its_family(client, registered):
    first = client.post("/v1/auth/refresh", json={"refresh_token": registered["refresh_token"]})
    assert first.status_code == 200
    rotated = first.json
    assert client.get("/v1/users/me", headers=bearer(rotated["access_token"])).status_code == 200

    reused = client.post("/v1/auth/refresh", json={"refresh_token": registered["refresh_token"]})
    assert reused.status_code == 401
    assert reused.json["code"] == "UNAUTHENTICATED"
    # The whole family is gone: the newer refresh token and every access token of it.
    newer = client.post("/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert newer.status_code == 401
    assert client.get("/v1/users/me", headers=bearer(rotated["access_token"])).status_code == 401
    assert client.get("/v1/users/me", headers=bearer(registered["access_token"])).status_code == 401


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
def test_refresh_with_a_bad_token_is_rejected(client, token):
    response = client.post("/v1/auth/refresh", json={"refresh_token": token})
    assert response.status_code in (400, 401)
    assert response.json["code"] in ("BAD_USER_INPUT", "UNAUTHENTICATED")


def test_refresh_refuses_an_access_token(client, registered):
    response = client.post("/v1/auth/refresh", json={"refresh_token": registered["access_token"]})
    assert response.status_code == 401


def test_logout_revokes_the_access_token_and_its_refresh_family(client, registered):
    other_login = client.post(
        "/v1/auth/login",
        json={"email": registered["email"], "password": registered["password"]},
    ).json
    response = client.post("/v1/auth/logout", headers=bearer(registered["access_token"]))
    assert response.status_code == 204
    assert client.get("/v1/users/me", headers=bearer(registered["access_token"])).status_code == 401
    refreshed = client.post("/v1/auth/refresh", json={"refresh_token": registered["refresh_token"]})
    assert refreshed.status_code == 401
    # Another login of the same user is a different family and stays valid.
    assert (
        client.get("/v1/users/me", headers=bearer(other_login["access_token"])).status_code == 200
    )


def test_logout_without_a_token_is_401(client):
    assert client.post("/v1/auth/logout").status_code == 401


def test_jwks_publishes_the_signing_key_by_id(client, registered):
    keys = client.get("/v1/.well-known/jwks.json").json["keys"]
    kid = jwt.get_unverified_header(registered["access_token"])["kid"]
    assert [key["kid"] for key in keys] == [kid]
    assert keys[0]["kty"] == "RSA" and keys[0]["alg"] == "RS256" and "d" not in keys[0]


def wrong_login(client, email: str, address: str):
    """One login with a wrong password from `address`."""
    return client.post(
        "/v1/auth/login",
        json={"email": email, "password": "wrong password"},
        headers=gateway_headers("auth", address),
    )


def test_failed_logins_slow_that_address_on_that_account_with_growing_waits(make_app):
    client = make_app(LOGIN_FREE_FAILURES=3, LOGIN_BACKOFF_SECONDS=1.0).test_client()
    email, attacker = unique_email(), f"198.51.100.{uuid.uuid4().int % 250}"
    client.post("/v1/auth/register", json={"email": email, "password": "rusty anchor at dawn"})
    assert [wrong_login(client, email, attacker).status_code for _ in range(3)] == [401] * 3
    throttled = wrong_login(client, email, attacker)
    assert throttled.status_code == 429
    assert throttled.json["code"] == "RATE_LIMITED"
    assert throttled.headers["Retry-After"] == "1"
    # Even the right password waits, from that address.
    right = client.post(
        "/v1/auth/login",
        json={"email": email, "password": "rusty anchor at dawn"},
        headers=gateway_headers("auth", attacker),
    )
    assert right.status_code == 429
    time.sleep(1.1)
    assert wrong_login(client, email, attacker).status_code == 401
    # The next wait doubles.
    assert wrong_login(client, email, attacker).headers["Retry-After"] == "2"


def test_an_attacker_elsewhere_cannot_lock_the_owner_out(make_app):
    client = make_app(LOGIN_FREE_FAILURES=3).test_client()
    email = unique_email()
    client.post("/v1/auth/register", json={"email": email, "password": "rusty anchor at dawn"})
    attacker, owner = f"203.0.113.{uuid.uuid4().int % 250}", "192.0.2.77"
    for _ in range(6):
        wrong_login(client, email, attacker)
    assert wrong_login(client, email, attacker).status_code == 429
    login = client.post(
        "/v1/auth/login",
        json={"email": email, "password": "rusty anchor at dawn"},
        headers=gateway_headers("auth", owner),
    )
    assert login.status_code == 200, login.json


def test_a_successful_login_forgets_that_addresses_failures(make_app):
    client = make_app(LOGIN_FREE_FAILURES=2).test_client()
    email, address = unique_email(), f"192.0.2.{uuid.uuid4().int % 250}"
    client.post("/v1/auth/register", json={"email": email, "password": "rusty anchor at dawn"})
    assert wrong_login(client, email, address).status_code == 401
    right = {"email": email, "password": "rusty anchor at dawn"}
    headers = gateway_headers("auth", address)
    assert client.post("/v1/auth/login", json=right, headers=headers).status_code == 200
    assert [wrong_login(client, email, address).status_code for _ in range(2)] == [401, 401]
    assert wrong_login(client, email, address).status_code == 429


@pytest.mark.parametrize(
    "path, setting, password, answered",
    [
        ("/v1/auth/login", "LOGIN_LIMIT_PER_IP", "wrong password", 401),
        ("/v1/auth/register", "REGISTER_LIMIT_PER_IP", "rusty anchor at dawn", 201),
    ],
)
def test_login_and_registration_are_rate_limited_per_client_ip(
    make_app, path, setting, password, answered
):
    client = make_app(**{setting: "2/minute"}).test_client()
    address = f"192.0.2.{uuid.uuid4().int % 250}"
    statuses = [
        client.post(
            path,
            json={"email": unique_email(), "password": password},
            headers=gateway_headers("auth", address),
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [answered, answered, 429]


def test_unknown_route_and_method_answer_in_the_error_shape(client):
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404 and missing.json["code"] == "NOT_FOUND"
    wrong_method = client.get("/v1/auth/login")
    assert wrong_method.status_code == 405 and wrong_method.json["status"] == 405


def test_request_id_is_echoed_and_generated(client):
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
        == "abc-123"
    )
    assert len(client.get("/healthz").headers["X-Request-ID"]) == 36


def test_health_readiness_metrics_and_docs(client):
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json["status"] == "ready"
    assert b"http_requests_total" in client.get("/metrics").data
    spec = client.get("/openapi.json").json
    assert "/v1/auth/login" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_plugins_is_an_empty_list_auth_loading_no_plugin_kind(client):
    spec = client.get("/openapi.json").json
    assert "200" in spec["paths"]["/v1/plugins"]["get"]["responses"]
    response = client.get("/v1/plugins")
    assert response.status_code == 200
    assert set(response.json) == set(spec["components"]["schemas"]["PluginList"]["properties"])
    assert response.json == {"plugins": []}
