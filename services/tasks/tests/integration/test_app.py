"""The tasks service starts, answers health and readiness, and publishes its OpenAPI document."""

from __future__ import annotations

from importlib.metadata import version

from services.tasks.app import create_app


def test_health_readiness_and_openapi(test_env):
    client = create_app().test_client()
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json
    assert ready.json["checks"] == ["broker", "database"]
    openapi = client.get("/openapi.json").json
    assert openapi["info"]["title"] == "Dockyard tasks"
    assert {
        "/v1/tasks",
        "/v1/tasks/{task_id}",
        "/v1/tasks/{task_id}/cancel",
        "/v1/tasks/{task_id}/logs",
        "/v1/schedules",
        "/v1/schedules/{schedule_id}",
        "/v1/schedules/{schedule_id}/pause",
        "/v1/schedules/{schedule_id}/resume",
        "/v1/schedules/{schedule_id}/next-runs",
        "/v1/schedules/{schedule_id}/runs",
        "/internal/v1/tasks/{task_id}/outputs/{path}",
        "/v1/notification-settings",
        "/v1/notifications",
        "/v1/webhooks",
        "/v1/webhooks/{webhook_id}",
        "/v1/plugins",
    } <= set(openapi["paths"])
    webhooks = openapi["paths"]["/v1/webhooks"]
    assert {"201", "400", "409"} <= set(webhooks["post"]["responses"])
    assert {"204", "404"} <= set(
        openapi["paths"]["/v1/webhooks/{webhook_id}"]["delete"]["responses"]
    )
    assert b"http_requests_total" in client.get("/metrics").data


def test_plugins_lists_executors_and_notifier_channels_as_the_openapi_says(test_env):
    client = create_app().test_client()
    response = client.get("/v1/plugins")
    assert response.status_code == 200
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    assert set(response.json) == set(schemas["PluginList"]["properties"])
    assert all(set(p) == set(schemas["Plugin"]["properties"]) for p in response.json["plugins"])
    listed = {(p["kind"], p["name"]): p for p in response.json["plugins"]}
    assert {("executor", "docker"), ("executor", "swarm"), ("notifier", "log")} <= set(listed)
    assert listed[("executor", "docker")]["version"] == version("dockyard")
    assert listed[("notifier", "jsonl")] == {
        "kind": "notifier",
        "name": "jsonl",
        "distribution": "dockyard-example-plugins",
        "version": version("dockyard-example-plugins"),
        "status": "ok",
        "error": None,
    }
    assert {kind for kind, _ in listed} == {"executor", "notifier"}


def test_unknown_routes_answer_in_the_shared_error_shape(test_env):
    response = create_app().test_client().get("/v1/nothing")
    assert response.status_code == 404
    assert response.json == {"status": 404, "code": "NOT_FOUND", "message": "Not found."}


def test_sql_errors_never_carry_statement_parameters(test_env):
    # Task env values may be secrets; a failed INSERT must not put them in a logged message.
    assert create_app().extensions["tasks"].database.hide_parameters is True
