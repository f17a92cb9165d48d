"""Reading, cancelling and deleting one task: owner only, malformed ids, every status."""

from __future__ import annotations

import uuid

import pytest
import requests

from services.tasks.lifecycle import IllegalTransition
from services.tasks.models import TaskStatus
from services.tasks.tests.factories import (
    append_output,
    create_task,
    move_task,
    outbox_events,
    stored_chunks,
    task_in,
)

FINISHED = [
    TaskStatus.SUCCEEDED,
    TaskStatus.FAILED,
    TaskStatus.TIMED_OUT,
    TaskStatus.CANCELLED,
    TaskStatus.SKIPPED,
]
ENDPOINTS = [
    ("GET", "/v1/tasks/{id}"),
    ("DELETE", "/v1/tasks/{id}"),
    ("POST", "/v1/tasks/{id}/cancel"),
    ("GET", "/v1/tasks/{id}/logs"),
]


def _event_types(app, task_id: str) -> list[str]:
    return [event["type"] for event in outbox_events(app, task_id)]


def test_the_owner_reads_a_task(client, alice):
    task = create_task(client, alice)
    response = client.get(f"/v1/tasks/{task['id']}", headers=alice.headers)
    assert response.status_code == 200
    assert response.json == task


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_another_users_task_is_not_found_and_left_alone(
    tasks_app, client, alice, bob, method, path
):
    task = task_in(tasks_app, client, alice, TaskStatus.SUCCEEDED)
    response = client.open(path.format(id=task["id"]), method=method, headers=bob.headers)
    assert response.status_code == 404
    assert response.json == {"status": 404, "code": "NOT_FOUND", "message": "Task not found."}
    assert client.get(f"/v1/tasks/{task['id']}", headers=alice.headers).json == task


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_an_unknown_task_is_not_found(client, alice, method, path):
    response = client.open(path.format(id=uuid.uuid4()), method=method, headers=alice.headers)
    assert response.status_code == 404


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g"])
def test_a_malformed_task_id_is_bad_input(client, alice, method, path, bad_id):
    response = client.open(path.format(id=bad_id), method=method, headers=alice.headers)
    assert response.status_code == 400
    assert response.json["code"] == "BAD_USER_INPUT"
    assert "task_id" in response.json["fields"]


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/tasks"), ("POST", "/v1/tasks"), *ENDPOINTS]
)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}])
def test_every_endpoint_needs_a_valid_token(client, method, path, headers):
    response = client.open(
        path.format(id=uuid.uuid4()), method=method, headers=headers, json={"image": "busybox"}
    )
    assert response.status_code == 401
    assert response.json["code"] == "UNAUTHENTICATED"


def test_a_logged_out_token_is_refused(auth_server, client, register):
    user = register()
    assert client.get("/v1/tasks", headers=user.headers).status_code == 200
    logout = requests.post(f"{auth_server.url}/v1/auth/logout", headers=user.headers, timeout=10)
    assert logout.status_code == 204
    assert client.get("/v1/tasks", headers=user.headers).status_code == 401


@pytest.mark.parametrize("status", [TaskStatus.PENDING, TaskStatus.QUEUED])
def test_cancelling_a_task_that_has_not_started_cancels_it_at_once(
    tasks_app, client, alice, status
):
    task = task_in(tasks_app, client, alice, status)
    response = client.post(f"/v1/tasks/{task['id']}/cancel", headers=alice.headers)
    assert response.status_code == 200
    cancelled = response.json
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["finished_at"] and cancelled["cancel_requested_at"]
    assert _event_types(tasks_app, task["id"])[-1] == "TaskCancelled"
    assert client.get(f"/v1/tasks/{task['id']}", headers=alice.headers).json == cancelled


def test_cancelling_a_running_task_asks_the_engine_to_stop_it_once(tasks_app, client, alice):
    task = task_in(tasks_app, client, alice, TaskStatus.RUNNING)
    first = client.post(f"/v1/tasks/{task['id']}/cancel", headers=alice.headers).json
    assert first["status"] == "RUNNING"
    assert first["cancel_requested_at"] and first["finished_at"] is None
    second = client.post(f"/v1/tasks/{task['id']}/cancel", headers=alice.headers).json
    assert second == first
    assert _event_types(tasks_app, task["id"]).count("TaskCancelRequested") == 1
    move_task(tasks_app, task["id"], TaskStatus.CANCELLED)
    final = client.get(f"/v1/tasks/{task['id']}", headers=alice.headers).json
    assert final["status"] == "CANCELLED"
    assert _event_types(tasks_app, task["id"])[-1] == "TaskCancelled"


@pytest.mark.parametrize("status", FINISHED)
def test_cancelling_a_finished_task_returns_it_unchanged(tasks_app, client, alice, status):
    task = task_in(tasks_app, client, alice, status)
    events_before = _event_types(tasks_app, task["id"])
    response = client.post(f"/v1/tasks/{task['id']}/cancel", headers=alice.headers)
    assert response.status_code == 200
    assert response.json == task
    assert _event_types(tasks_app, task["id"]) == events_before


def test_a_cancelled_queued_task_can_no_longer_start(tasks_app, client, alice):
    task = task_in(tasks_app, client, alice, TaskStatus.QUEUED)
    client.post(f"/v1/tasks/{task['id']}/cancel", headers=alice.headers)
    with pytest.raises(IllegalTransition):
        move_task(tasks_app, task["id"], TaskStatus.RUNNING)
    assert client.get(f"/v1/tasks/{task['id']}", headers=alice.headers).json["status"] == (
        "CANCELLED"
    )


@pytest.mark.parametrize("status", FINISHED)
def test_a_finished_task_is_deleted_with_its_logs(tasks_app, client, alice, status):
    task = task_in(tasks_app, client, alice, status)
    append_output(tasks_app, task["id"], "stdout", b"bye\n", max_bytes=1024)
    response = client.delete(f"/v1/tasks/{task['id']}", headers=alice.headers)
    assert response.status_code == 204
    assert response.data == b""
    assert client.get(f"/v1/tasks/{task['id']}", headers=alice.headers).status_code == 404
    assert client.delete(f"/v1/tasks/{task['id']}", headers=alice.headers).status_code == 404
    assert stored_chunks(tasks_app, task["id"]) == []
    assert _event_types(tasks_app, task["id"])[-1] == "TaskDeleted"


@pytest.mark.parametrize("status", [TaskStatus.PENDING, TaskStatus.QUEUED, TaskStatus.RUNNING])
def test_an_unfinished_task_cannot_be_deleted(tasks_app, client, alice, status):
    task = task_in(tasks_app, client, alice, status)
    response = client.delete(f"/v1/tasks/{task['id']}", headers=alice.headers)
    assert response.status_code == 409
    assert response.json["code"] == "CONFLICT"
    assert status.value in response.json["message"]
    assert client.get(f"/v1/tasks/{task['id']}", headers=alice.headers).json == task


def test_the_engine_side_fields_show_through_the_api(tasks_app, client, alice):
    task = task_in(tasks_app, client, alice, TaskStatus.FAILED)
    assert task["attempts"] == 1
    assert (task["exit_code"], task["error_code"], task["error"]) == (
        3,
        "NON_ZERO_EXIT",
        "Exited with 3.",
    )
    assert task["queued_at"] <= task["started_at"] <= task["finished_at"]
    assert _event_types(tasks_app, task["id"]) == [
        "TaskCreated",
        "TaskQueued",
        "TaskStarted",
        "TaskFailed",
    ]
