"""Sending the tasks service's Celery jobs by name, from processes that do not run the worker."""

from __future__ import annotations

from functools import lru_cache

from services.tasks.config import TasksSettings
from shared.celery import send_job

START_TASK = "tasks.start_task"
NOTIFY = "tasks.notify"


@lru_cache(maxsize=1)
def _settings() -> TasksSettings:
    return TasksSettings()


def send_start(task_id: str, *, countdown: float = 0.0) -> None:
    """Ask a worker to start (or adopt) the task's current attempt."""
    send_job(_settings(), START_TASK, args=[str(task_id)], countdown=countdown)


def send_notification(*, user_id: str, task_id: str, task_label: str, status: str) -> None:
    """Ask a worker to tell the user their task finished."""
    kwargs = {"user_id": user_id, "task_id": task_id, "task_label": task_label, "status": status}
    send_job(_settings(), NOTIFY, kwargs=kwargs)
