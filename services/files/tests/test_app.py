"""The files service starts, answers health and readiness, and publishes its OpenAPI document."""

from __future__ import annotations

from services.files.app import create_app


def test_health_readiness_and_openapi(test_env):
    client = create_app().test_client()
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json
    assert ready.json["checks"] == ["broker", "database"]
    assert client.get("/openapi.json").json["info"]["title"] == "Dockyard files"
    assert b"http_requests_total" in client.get("/metrics").data


def test_unknown_routes_answer_in_the_shared_error_shape(test_env):
    response = create_app().test_client().get("/v1/nothing")
    assert response.status_code == 404
    assert response.json == {"status": 404, "code": "NOT_FOUND", "message": "Not found."}
