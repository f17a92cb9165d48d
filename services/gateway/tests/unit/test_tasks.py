"""Task operations over a fake tasks client: argument mapping, field mapping, what is fetched."""

from __future__ import annotations

import pytest

from services.gateway.errors import GatewayError
from services.gateway.tests.conftest import TASK, TASK_ID, answering, gql

AUTH = {"Authorization": "Bearer t"}
TASK_FIELDS = """
    id name image command status exitCode error errorCode attempts createdAt startedAt
    finishedAt dependsOn { id } inputFile { id } usage { cpuPercent memoryBytes sampledAt }
    timeoutSeconds cpuLimit memoryLimitMb maxRetries network
"""


def _calls(fake_tasks) -> list[str]:
    return [name for name, _caller, _kwargs in fake_tasks.calls]


def test_create_task_sends_the_input_with_rest_field_names(client, fake_tasks):
    query = """mutation ($input: CreateTaskInput!) { createTask(input: $input) { id status } }"""
    task_input = {
        "name": "hello",
        "image": "busybox:1.36",
        "command": ["echo", "hi"],
        "env": [{"name": "GREETING", "value": "hi"}],
        "timeoutSeconds": 5,
        "cpuLimit": 0.5,
        "memoryLimitMb": 64,
        "maxRetries": 1,
        "dependsOn": None,
    }
    response = gql(client, query, {"input": task_input}, headers=AUTH)
    assert response.json() == {"data": {"createTask": {"id": TASK_ID, "status": "PENDING"}}}
    ((name, caller, kwargs),) = fake_tasks.calls
    assert (name, caller.token) == ("create_task", "t")
    assert kwargs["spec"] == {
        "name": "hello",
        "image": "busybox:1.36",
        "command": ["echo", "hi"],
        "env": [{"name": "GREETING", "value": "hi"}],
        "timeout_seconds": 5,
        "cpu_limit": 0.5,
        "memory_limit_mb": 64,
        "max_retries": 1,
        "depends_on": None,
        "trigger_rule": "ALL_SUCCEEDED",
    }


def test_a_task_maps_every_rest_field_and_answers_the_later_features_empty(client, fake_tasks):
    usage = {"cpu_percent": 12.5, "memory_bytes": 5 * 2**30, "sampled_at": "2026-11-22T05:01:00Z"}
    fake_tasks.get_task = answering(
        {
            **TASK,
            "status": "FAILED",
            "exit_code": 3,
            "error_code": "NON_ZERO_EXIT",
            "error": "Exited with 3.",
            "attempts": 1,
            "usage": usage,
        }
    )
    response = gql(client, f'{{ task(id: "{TASK_ID}") {{ {TASK_FIELDS} }} }}', headers=AUTH)
    assert response.json()["data"]["task"] == {
        "id": TASK_ID,
        "name": "hello",
        "image": "busybox:1.36",
        "command": ["sh", "-c", "echo hello"],
        "status": "FAILED",
        "exitCode": 3,
        "error": "Exited with 3.",
        "errorCode": "NON_ZERO_EXIT",
        "attempts": 1,
        "createdAt": "2026-11-22T05:00:00+00:00",
        "startedAt": None,
        "finishedAt": None,
        "dependsOn": [],
        "inputFile": None,
        "usage": {
            "cpuPercent": 12.5,
            "memoryBytes": 5 * 2**30,
            "sampledAt": "2026-11-22T05:01:00+00:00",
        },
        "timeoutSeconds": 3600,
        "cpuLimit": 1.0,
        "memoryLimitMb": 256,
        "maxRetries": 0,
        "network": False,
    }


def test_logs_are_fetched_only_when_selected(client, fake_tasks):
    gql(client, f'{{ task(id: "{TASK_ID}") {{ id status }} }}', headers=AUTH)
    assert _calls(fake_tasks) == ["get_task"]

    response = gql(client, f'{{ task(id: "{TASK_ID}") {{ logs(tail: 3) }} }}', headers=AUTH)
    assert response.json() == {"data": {"task": {"logs": "hi\n"}}}
    assert _calls(fake_tasks) == ["get_task", "get_task", "read_logs"]
    assert fake_tasks.calls[-1][2] == {"task_id": TASK_ID, "tail": 3}


def test_tasks_passes_its_arguments_and_returns_the_connection(client, fake_tasks):
    query = """{ tasks(first: 5, after: "c0", status: RUNNING) {
        edges { cursor node { id } } pageInfo { hasNextPage endCursor } totalCount } }"""
    response = gql(client, query, headers=AUTH)
    assert response.json()["data"]["tasks"] == {
        "edges": [{"cursor": "c1", "node": {"id": TASK_ID}}],
        "pageInfo": {"hasNextPage": False, "endCursor": "c1"},
        "totalCount": 1,
    }
    assert fake_tasks.calls[0][2] == {"first": 5, "after": "c0", "status": "RUNNING"}


def test_tasks_without_first_asks_for_the_contracts_default_page(client, fake_tasks):
    gql(client, "{ tasks { totalCount } }", headers=AUTH)
    assert fake_tasks.calls[0][2] == {"first": 20, "after": None, "status": None}


@pytest.mark.parametrize(
    "query",
    [
        f'{{ task(id: "{TASK_ID}") {{ id }} }}',
        "{ tasks { totalCount } }",
        'mutation { createTask(input: {image: "busybox", command: ["true"]}) { id } }',
        f'mutation {{ cancelTask(id: "{TASK_ID}") {{ id }} }}',
    ],
)
def test_every_task_operation_needs_a_token(client, fake_tasks, query):
    response = gql(client, query)
    assert response.status_code == 200
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["UNAUTHENTICATED"]
    assert fake_tasks.calls == []


def test_a_failed_cancel_carries_the_services_code(client, fake_tasks):
    fake_tasks.error = GatewayError("Task not found.", code="NOT_FOUND")
    response = gql(client, f'mutation {{ cancelTask(id: "{TASK_ID}") {{ id }} }}', headers=AUTH)
    (error,) = response.json()["errors"]
    assert (error["message"], error["extensions"], error["path"]) == (
        "Task not found.",
        {"code": "NOT_FOUND"},
        ["cancelTask"],
    )
    assert response.json()["data"] is None
