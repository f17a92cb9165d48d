"""Sessions: ending them all (logout-all, end_sessions) and their absolute lifetime."""

from __future__ import annotations

import time
import uuid

import jwt
from sqlalchemy import text

from services.auth.sessions import end_sessions
from services.auth.tests.conftest import bearer, unique_email


def log_in(client, registered) -> dict:
    """Another session of the registered user."""
    response = client.post(
        "/v1/auth/login", json={"email": registered["email"], "password": registered["password"]}
    )
    assert response.status_code == 200, response.json
    return response.json


def family_of(token: str) -> str:
    """The session (token family) a token belongs to."""
    return jwt.decode(token, options={"verify_signature": False})["fam"]


def test_logout_all_revokes_every_session_of_the_user_and_only_theirs(client, registered):
    other = log_in(client, registered)
    stranger = client.post(
        "/v1/auth/register", json={"email": unique_email(), "password": "rusty anchor at dawn"}
    ).json
    response = client.post("/v1/auth/logout-all", headers=bearer(other["access_token"]))
    assert response.status_code == 204
    for session in (registered, other):
        assert (
            client.get("/v1/users/me", headers=bearer(session["access_token"])).status_code == 401
        )
        refreshed = client.post(
            "/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
        )
        assert refreshed.status_code == 401
    assert client.get("/v1/users/me", headers=bearer(stranger["access_token"])).status_code == 200


def test_logout_all_without_a_token_is_401(client):
    assert client.post("/v1/auth/logout-all").status_code == 401


def test_end_sessions_keeps_the_named_family_and_records_an_event_for_each(
    auth_app, client, registered
):
    ctx = auth_app.extensions["auth"]
    other, third = log_in(client, registered), log_in(client, registered)
    keep = family_of(other["access_token"])
    ended = end_sessions(
        ctx.uow(),
        ctx.revocations,
        user_id=registered["user"]["id"],
        keep_family=keep,
        reason="password_changed",
    )
    assert ended == 2
    assert client.get("/v1/users/me", headers=bearer(other["access_token"])).status_code == 200
    for session in (registered, third):
        assert (
            client.get("/v1/users/me", headers=bearer(session["access_token"])).status_code == 401
        )
    with ctx.engine.connect() as connection:
        reasons = connection.execute(
            text(
                "SELECT revoked_reason FROM token_families WHERE user_id = :user"
                " AND revoked_at IS NOT NULL"
            ),
            {"user": registered["user"]["id"]},
        ).scalars()
        assert sorted(reasons) == ["password_changed", "password_changed"]
    # Nothing left to end but the kept one.
    assert (
        end_sessions(
            ctx.uow(),
            ctx.revocations,
            user_id=registered["user"]["id"],
            keep_family=keep,
            reason="x",
        )
        == 0
    )


def test_end_sessions_joins_a_transaction_the_caller_already_opened(auth_app, client, registered):
    ctx = auth_app.extensions["auth"]
    uow = ctx.uow()
    with uow:
        assert end_sessions(uow, ctx.revocations, user_id=registered["user"]["id"], reason="x") == 1
        uow.rollback()  # the caller's transaction decides: here nothing is revoked in the database
    refreshed = client.post("/v1/auth/refresh", json={"refresh_token": registered["refresh_token"]})
    assert refreshed.status_code == 200


def test_end_sessions_of_an_unknown_user_ends_none(auth_app):
    ctx = auth_app.extensions["auth"]
    assert end_sessions(ctx.uow(), ctx.revocations, user_id=uuid.uuid4(), reason="x") == 0


def test_a_session_cannot_be_refreshed_past_its_absolute_lifetime(make_app):
    client = make_app(SESSION_MAX_SECONDS=3).test_client()
    tokens = client.post(
        "/v1/auth/register", json={"email": unique_email(), "password": "rusty anchor at dawn"}
    ).json
    started = time.monotonic()
    # Refreshing keeps it alive only until the lifetime counted from the login.
    while time.monotonic() - started < 1.5:
        tokens = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert tokens.status_code == 200
        tokens = tokens.json
        time.sleep(0.5)
    time.sleep(max(0.0, 3.2 - (time.monotonic() - started)))
    refused = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refused.status_code == 401
    assert "maximum lifetime" in refused.json["message"]
