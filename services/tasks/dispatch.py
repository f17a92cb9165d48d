"""Sending the engine's Celery jobs by name, from processes that do not run the worker."""

from __future__ import annotations

from functools import lru_cache

from celery import Celery

from services.tasks.config import TasksSettings
from shared.celery import celery_config

START_TASK = "tasks.start_task"
NOTIFY = "tasks.notify"


@lru_cache(maxsize=1)
def _client() -> Celery:
    # A bare Celery app: senders (event consumers, the monitor) need the broker, not the worker's
    # Flask app.
    app = Celery("dockyard-tasks-sender")
    app.config_from_object(celery_config(TasksSettings()))
    return app


def send_start(task_id: str, *, countdown: float = 0.0) -> None:
    """Ask a worker to start (or adopt) the task's current attempt."""
    _client().send_task(START_TASK, args=[str(task_id)], countdown=countdown or None)


def send_notification(*, user_id: str, task_id: str, task_label: str, status: str) -> None:
    """Ask a worker to tell the user their task finished."""
    kwargs = {"user_id": user_id, "task_id": task_id, "task_label": task_label, "status": status}
    _client().send_task(NOTIFY, kwargs=kwargs)
