"""Creating a task: defaults and limits, every validation rule, secrets kept out of answers."""

from __future__ import annotations

import pytest

from services.tasks.tests.factories import create_task, outbox_events, task_payload

SECRET = "hunter2-do-not-leak"


def _refused(client, user, payload):
    response = client.post("/v1/tasks", json=payload, headers=user.headers)
    assert response.status_code == 400, response.json
    assert response.json["code"] == "BAD_USER_INPUT"
    assert "Traceback" not in response.get_data(as_text=True)
    return response.json


def test_a_minimal_task_is_created_pending_with_the_server_defaults(client, alice):
    response = client.post(
        "/v1/tasks", json={"image": "busybox", "command": ["true"]}, headers=alice.headers
    )
    assert response.status_code == 201
    task = response.json
    assert task["status"] == "PENDING"
    assert task["name"] is None
    assert (task["image"], task["command"], task["env"]) == ("busybox", ["true"], [])
    assert task["timeout_seconds"] == 900
    assert task["cpu_limit"] == 1.0
    assert task["memory_limit_mb"] == 512
    assert task["max_retries"] == 0
    assert task["network"] is False
    assert task["attempts"] == 0
    assert task["created_at"] and task["started_at"] is None and task["finished_at"] is None
    assert task["exit_code"] is None and task["error"] is None and task["usage"] is None


def test_a_full_spec_is_kept_as_given_and_env_values_are_never_shown(make_app, alice):
    # The registry does not resolve here (no DNS in tests): the operator's exception admits it.
    client = make_app(REGISTRY_PRIVATE_ALLOWLIST=["registry.example.com:5000"]).test_client()
    task = create_task(
        client,
        alice,
        name="build",
        image="registry.example.com:5000/ci/tool:2.1",
        command=["sh", "-c", "echo $GREETING", ""],
        env=[{"name": "GREETING", "value": "hi"}, {"name": "API_TOKEN", "value": SECRET}],
        timeout_seconds=120,
        cpu_limit=0.5,
        memory_limit_mb=64,
        max_retries=2,
        network=False,
        depends_on=[],
        input_file_id=None,
    )
    assert task["name"] == "build"
    assert task["command"] == ["sh", "-c", "echo $GREETING", ""]
    assert task["env"] == [{"name": "GREETING"}, {"name": "API_TOKEN"}]
    assert (task["timeout_seconds"], task["cpu_limit"]) == (120, 0.5)
    assert (task["memory_limit_mb"], task["max_retries"]) == (64, 2)
    detail = client.get(f"/v1/tasks/{task['id']}", headers=alice.headers)
    assert SECRET not in detail.get_data(as_text=True)


def test_creation_records_task_created_without_env_values(tasks_app, client, alice):
    task = create_task(client, alice, env=[{"name": "API_TOKEN", "value": SECRET}])
    (event,) = outbox_events(tasks_app, task["id"])
    assert event["type"] == "TaskCreated"
    assert event["payload"]["task_id"] == task["id"]
    assert event["payload"]["owner_id"] == alice.id
    assert event["payload"]["image"] == "busybox:1.36"
    assert SECRET not in repr(event)


def test_the_owner_is_the_token_subject_not_the_body(client, alice, bob):
    response = client.post("/v1/tasks", json=task_payload(owner_id=bob.id), headers=alice.headers)
    assert response.status_code == 400
    assert response.json["fields"] == {"owner_id": "Unknown field."}


@pytest.mark.parametrize(
    ("overrides", "field", "says"),
    [
        ({"image": None}, "image", "null"),
        ({"image": ""}, "image", "empty"),
        ({"image": 42}, "image", "string"),
        ({"image": "Busybox"}, "image", "lowercase"),
        ({"image": "busybox:-1"}, "image", "tag"),
        ({"image": "busybox@sha256:abc"}, "image", "digest"),
        ({"image": "bad_host.example/app"}, "image", "registry"),
        ({"image": "a" * 513}, "image", "512"),
        ({"command": []}, "command", "Length"),
        ({"command": "echo hi"}, "command", "list"),
        ({"command": ["echo", 1]}, "command.1", "string"),
        ({"command": [None]}, "command.0", "null"),
        ({"command": ["", "x"]}, "command", "program"),
        ({"command": ["echo", "a\x00b"]}, "command.1", "NUL"),
        ({"command": ["x"] * 257}, "command", "Length"),
        ({"command": ["echo", "x" * 40_000]}, "command", "total"),
        ({"env": [{"name": "1ABC", "value": "v"}]}, "env.0.name", "letter"),
        ({"env": [{"name": "A-B", "value": "v"}]}, "env.0.name", "letter"),
        ({"env": [{"name": "", "value": "v"}]}, "env.0.name", "Length"),
        ({"env": [{"name": "DOCKYARD_INPUT_FILE", "value": "v"}]}, "env.0.name", "reserved"),
        ({"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}, "env", "unique"),
        ({"env": [{"name": "A"}]}, "env.0.value", "Missing"),
        ({"env": [{"name": "A", "value": 5}]}, "env.0.value", "string"),
        ({"env": [{"name": "A", "value": "x\x00y"}]}, "env.0.value", "NUL"),
        ({"env": [{"name": "A", "value": "x" * 17_000}]}, "env.0.value", "Length"),
        ({"env": [{"name": f"V{i}", "value": ""} for i in range(101)]}, "env", "Length"),
        ({"env": {"A": "b"}}, "env", "list"),
        ({"timeout_seconds": 0}, "timeout_seconds", "greater"),
        ({"timeout_seconds": "60"}, "timeout_seconds", "integer"),
        ({"timeout_seconds": 1.5}, "timeout_seconds", "integer"),
        ({"timeout_seconds": True}, "timeout_seconds", "integer"),
        ({"timeout_seconds": 3601}, "timeout_seconds", "at most 3600"),
        ({"cpu_limit": 0}, "cpu_limit", "greater"),
        ({"cpu_limit": "1"}, "cpu_limit", "number"),
        ({"cpu_limit": 4.5}, "cpu_limit", "at most 4 cores"),
        ({"memory_limit_mb": 5}, "memory_limit_mb", "greater"),
        ({"memory_limit_mb": 4097}, "memory_limit_mb", "at most 4096"),
        ({"max_retries": -1}, "max_retries", "greater"),
        ({"max_retries": 6}, "max_retries", "at most 5"),
        ({"network": "true"}, "network", "boolean"),
        ({"network": True}, "network", "not allowed"),
        ({"name": ""}, "name", "Length"),
        ({"name": "n" * 201}, "name", "Length"),
        (
            {"depends_on": ["6f1c0d9e-1111-4444-8888-000000000000"]},
            "depends_on",
            "No task 6f1c0d9e-1111-4444-8888-000000000000 of yours",
        ),
        ({"trigger_rule": "ANY"}, "trigger_rule", "Must be one of"),
        ({"retry_on_exit_codes": [0]}, "retry_on_exit_codes.0", "greater than or equal to 1"),
        ({"retry_on_exit_codes": []}, "retry_on_exit_codes", "Length"),
        ({"input_file_id": "not-a-file-id"}, "input_file_id", "not a valid uuid"),
        ({"dependsOn": []}, "dependsOn", "Unknown"),
    ],
)
def test_bad_input_is_refused_with_a_field_error(client, alice, overrides, field, says):
    body = _refused(client, alice, task_payload(**overrides))
    assert field in body["fields"], body
    assert says.lower() in body["fields"][field].lower(), body


@pytest.mark.parametrize("missing", ["image", "command"])
def test_image_and_command_are_required(client, alice, missing):
    payload = task_payload()
    del payload[missing]
    fields = _refused(client, alice, payload)["fields"]
    assert fields == {missing: "Missing data for required field."}


def test_nan_is_not_a_cpu_limit(client, alice):
    response = client.post(
        "/v1/tasks",
        data='{"image": "busybox", "command": ["true"], "cpu_limit": NaN}',
        content_type="application/json",
        headers=alice.headers,
    )
    assert response.status_code == 400
    assert "cpu_limit" in response.json["fields"]


def test_every_limit_over_its_maximum_is_reported_at_once(client, alice):
    body = _refused(
        client,
        alice,
        task_payload(timeout_seconds=10**9, cpu_limit=64, memory_limit_mb=10**6, max_retries=99),
    )
    assert set(body["fields"]) == {"timeout_seconds", "cpu_limit", "memory_limit_mb", "max_retries"}


def test_error_answers_never_quote_env_values(client, alice):
    env = [{"name": "A", "value": SECRET + "\x00"}, {"name": "A", "value": SECRET}]
    response = client.post("/v1/tasks", json=task_payload(env=env), headers=alice.headers)
    assert response.status_code == 400
    assert SECRET not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("data", "says"), [('{"image": "busybox", ', "JSON"), ('["busybox"]', "Invalid")]
)
def test_a_body_that_is_not_a_json_object_is_a_clear_400(client, alice, data, says):
    response = client.post(
        "/v1/tasks", data=data, content_type="application/json", headers=alice.headers
    )
    assert response.status_code == 400
    assert response.json["code"] == "BAD_USER_INPUT"
    assert says in response.json["message"]


def test_network_is_granted_only_where_the_operator_allows_it(make_app, alice):
    client = make_app(ALLOW_NETWORK=True).test_client()
    task = create_task(client, alice, network=True)
    assert task["network"] is True


def test_the_image_allow_list_refuses_other_images_on_the_image_field(make_app, alice):
    client = make_app(
        IMAGE_ALLOWLIST=["busybox", "registry.example.com/ci/*"],
        REGISTRY_PRIVATE_ALLOWLIST=["registry.example.com"],
    ).test_client()
    assert create_task(client, alice, image="busybox:1.36")["image"] == "busybox:1.36"
    assert create_task(client, alice, image="registry.example.com/ci/x")["status"] == "PENDING"
    body = _refused(client, alice, task_payload(image="alpine:3"))
    assert body["fields"] == {"image": "This image is not on the operator's allow-list."}


def test_limits_and_defaults_come_from_the_settings(make_app, alice):
    client = make_app(
        MAX_TIMEOUT_SECONDS=100, DEFAULT_TIMEOUT_SECONDS=50, DEFAULT_MEMORY_MB=32, DEFAULT_CPU=0.25
    ).test_client()
    task = create_task(client, alice)
    assert (task["timeout_seconds"], task["memory_limit_mb"], task["cpu_limit"]) == (50, 32, 0.25)
    assert create_task(client, alice, timeout_seconds=100)["timeout_seconds"] == 100
    body = _refused(client, alice, task_payload(timeout_seconds=101))
    assert body["fields"] == {"timeout_seconds": "Must be at most 100 seconds."}
