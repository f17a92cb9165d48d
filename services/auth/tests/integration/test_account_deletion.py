"""Asking to delete an account over auth's REST API: the lock-out and the saga it starts.

What the other services do and how the saga ends is tested end to end in
tests/test_account_deletion.py; here only auth runs (no consumer), so the saga stays RUNNING.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from services.auth.tests.conftest import bearer


def _saga(app, user_id: str):
    with app.extensions["auth"].engine.connect() as conn:
        return conn.execute(
            text("SELECT id, state, step, deadline FROM auth.sagas WHERE subject = :u"),
            {"u": user_id},
        ).all()


def test_deleting_locks_the_user_out_at_once_and_starts_one_saga(client, auth_app, registered):
    token = registered["access_token"]
    response = client.post(
        "/v1/users/me/deletion", json={"password": registered["password"]}, headers=bearer(token)
    )
    assert response.status_code == 202, response.json
    ((saga_id, state, step, deadline),) = _saga(auth_app, registered["user"]["id"])
    assert str(saga_id) == response.json["saga_id"]
    assert (state, step) == ("RUNNING", "purge_participants") and deadline is not None

    assert client.get("/v1/users/me", headers=bearer(token)).status_code == 401
    login = client.post(
        "/v1/auth/login", json={"email": registered["email"], "password": registered["password"]}
    )
    assert login.status_code == 401
    refreshed = client.post("/v1/auth/refresh", json={"refresh_token": registered["refresh_token"]})
    assert refreshed.status_code == 401

    with auth_app.extensions["auth"].engine.connect() as conn:
        requested = conn.scalar(
            text(
                "SELECT count(*) FROM auth.outbox WHERE event_type = 'AccountDeletionRequested'"
                " AND payload->>'saga_id' = :s"
            ),
            {"s": response.json["saga_id"]},
        )
    # No relay runs here, so the request is still in the outbox.
    assert requested == 1


@pytest.mark.parametrize(
    "body", [{}, {"password": None}, {"password": ""}, {"password": "not the password"}]
)
def test_a_password_account_needs_its_password(client, auth_app, registered, body):
    response = client.post(
        "/v1/users/me/deletion", json=body, headers=bearer(registered["access_token"])
    )
    assert response.status_code == 400
    assert set(response.json["fields"]) == {"password"}
    assert _saga(auth_app, registered["user"]["id"]) == []
    assert client.get("/v1/users/me", headers=bearer(registered["access_token"])).status_code == 200


def test_deleting_needs_a_token(client):
    assert client.post("/v1/users/me/deletion", json={}).status_code == 401


def test_the_metrics_count_the_sagas_by_state(client, auth_app, registered):
    def running() -> float:
        metrics = client.get("/metrics").get_data(as_text=True)
        (line,) = [
            m for m in metrics.splitlines() if m.startswith('dockyard_sagas{state="RUNNING"}')
        ]
        return float(line.split()[-1])

    before = running()
    response = client.post(
        "/v1/users/me/deletion",
        json={"password": registered["password"]},
        headers=bearer(registered["access_token"]),
    )
    assert response.status_code == 202
    assert running() == before + 1
