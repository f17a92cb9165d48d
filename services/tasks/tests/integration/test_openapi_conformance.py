"""The tasks service answers as its OpenAPI document says (schemathesis against the live app)."""

from __future__ import annotations

from services.tasks.models import TaskStatus
from services.tasks.tests.factories import PATHS, create_task, move_task
from shared.conformance import check_document
from shared.testing import gateway_headers, peer_headers


def test_tasks_answers_as_documented(tasks_app, register, subtests):
    user = register()
    client = tasks_app.test_client()

    def existing():
        # A finished task: following its logs (text/plain, streamed until the task ends) ends
        # at once instead of waiting for a container that no test starts.
        task = create_task(client, user)
        move_task(tasks_app, task["id"], *PATHS[TaskStatus.SUCCEEDED])
        return {"task_id": task["id"]}

    def credentials(operation):
        # The internal endpoint serves the files service only; every other one the gateway only.
        if operation.path.startswith("/internal/"):
            return peer_headers("files", "tasks")
        return {**gateway_headers("tasks", "198.51.100.7"), **user.headers}

    check_document(tasks_app, credentials, subtests, existing)
