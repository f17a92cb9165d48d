"""Builders of task payloads and of tasks in any status, driven the way the engine will."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text

from services.tasks import logs
from services.tasks.lifecycle import container_name, transition
from services.tasks.models import LogStream, Task, TaskLogChunk, TaskStatus

#: The moves that bring a new (PENDING) task to each status, as the engine will make them.
PATHS = {
    TaskStatus.PENDING: [],
    TaskStatus.QUEUED: [TaskStatus.QUEUED],
    TaskStatus.RUNNING: [TaskStatus.QUEUED, TaskStatus.RUNNING],
    TaskStatus.SUCCEEDED: [TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED],
    TaskStatus.FAILED: [TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.FAILED],
    TaskStatus.TIMED_OUT: [TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.TIMED_OUT],
    TaskStatus.CANCELLED: [TaskStatus.CANCELLED],
    TaskStatus.SKIPPED: [TaskStatus.SKIPPED],
}


def task_payload(**overrides: Any) -> dict[str, Any]:
    """A valid create-task body; `overrides` replace or add fields (None values are kept)."""
    body: dict[str, Any] = {
        "name": "hello",
        "image": "busybox:1.36",
        "command": ["sh", "-c", "echo hello"],
    }
    body.update(overrides)
    return body


def create_task(client, user, **overrides: Any) -> dict[str, Any]:
    """Create a task through the API; returns its JSON."""
    response = client.post("/v1/tasks", json=task_payload(**overrides), headers=user.headers)
    assert response.status_code == 201, response.json
    return response.json


def move_task(app, task_id: str, *statuses: TaskStatus) -> None:
    """Walk a task through `statuses` with the lifecycle's transition(), events included."""
    for status in statuses:
        uow = app.extensions["tasks"].uow()
        with uow:
            task = uow.session.get(Task, uuid.UUID(task_id), with_for_update=True)
            details: dict[str, Any] = {}
            if status is TaskStatus.RUNNING:
                task.attempts += 1
                details["container"] = container_name(task.id, task.attempts)
            elif status is TaskStatus.SUCCEEDED:
                details["exit_code"] = 0
            elif status is TaskStatus.FAILED:
                details.update(exit_code=3, error_code="NON_ZERO_EXIT", error="Exited with 3.")
            uow.add_event(transition(task, status, now=datetime.now(UTC), **details))
            uow.commit()


def task_in(app, client, user, status: TaskStatus, **overrides: Any) -> dict[str, Any]:
    """A task of `user` brought to `status`; returns its JSON as the API shows it now."""
    created = create_task(client, user, **overrides)
    move_task(app, created["id"], *PATHS[status])
    response = client.get(f"/v1/tasks/{created['id']}", headers=user.headers)
    assert response.json["status"] == status
    return response.json


def task_row(owner_id: uuid.UUID, **columns: Any) -> Task:
    """A minimal Task row of `owner_id` (busybox `true`, default limits), to add straight to
    the table; `columns` override or add to it."""
    return Task(
        **{
            "id": uuid.uuid4(),
            "owner_id": owner_id,
            "image": "busybox",
            "command": ["true"],
            "env": [],
            "timeout_seconds": 60,
            "cpu_limit": 1.0,
            "memory_limit_mb": 64,
            "max_retries": 0,
            **columns,
        }
    )


def insert_tasks_at_once(app, user, count: int) -> list[str]:
    """Insert tasks in one transaction, so they share created_at (pagination must break ties)."""
    uow = app.extensions["tasks"].uow()
    with uow:
        tasks = [task_row(uuid.UUID(user.id), name=f"batch-{index}") for index in range(count)]
        uow.session.add_all(tasks)
        uow.commit()
    return [str(task.id) for task in tasks]


def append_output(app, task_id: str, stream: LogStream, data: bytes, max_bytes: int) -> None:
    """Store output as the engine will."""
    logs.append_output(
        app.extensions["tasks"].uow(),
        task_id=uuid.UUID(task_id),
        batches={LogStream(stream): data},
        max_bytes=max_bytes,
    )


def outbox_events(app, task_id: str) -> list[dict[str, Any]]:
    """The outbox rows of one task, in sequence order: [{"type": ..., "payload": ...}]."""
    uow = app.extensions["tasks"].uow()
    with uow:
        rows = uow.session.execute(
            text(
                "SELECT event_type, payload FROM outbox"
                " WHERE aggregate_type = 'task' AND aggregate_id = :id ORDER BY sequence"
            ),
            {"id": task_id},
        ).all()
    return [{"type": row.event_type, "payload": row.payload} for row in rows]


def stored_chunks(app, task_id: str) -> list[tuple[str, bytes]]:
    """The log chunks stored for a task, oldest first."""
    uow = app.extensions["tasks"].uow()
    with uow:
        rows = uow.session.execute(
            select(TaskLogChunk.stream, TaskLogChunk.data)
            .where(TaskLogChunk.task_id == uuid.UUID(task_id))
            .order_by(TaskLogChunk.id)
        ).all()
    return [(row.stream, bytes(row.data)) for row in rows]
