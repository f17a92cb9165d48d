"""Sending the tasks service's Celery jobs by name, from processes that do not run the worker."""

from __future__ import annotations

from functools import lru_cache

from services.tasks.config import TasksSettings
from shared.celery import send_job

START_TASK = "tasks.start_task"
NOTIFY = "tasks.notify"
DELIVER_NOTIFICATION = "tasks.deliver_notification"
ANNOUNCE_WEBHOOK_DISABLED = "tasks.announce_webhook_disabled"


@lru_cache(maxsize=1)
def _settings() -> TasksSettings:
    return TasksSettings()


def send_start(task_id: str, *, countdown: float = 0.0) -> None:
    """Ask a worker to start (or adopt) the task's current attempt."""
    send_job(_settings(), START_TASK, args=[str(task_id)], countdown=countdown)


def send_delivery(delivery_id: str) -> None:
    """Ask a worker to send one notification delivery (idempotent: it is sent once)."""
    send_job(_settings(), DELIVER_NOTIFICATION, args=[str(delivery_id)])


def send_webhook_disabled_notice(*, webhook_id: str, owner_id: str, failures: int) -> None:
    """Ask a worker to mail the owner that their webhook was disabled."""
    kwargs = {"webhook_id": webhook_id, "owner_id": owner_id, "failures": failures}
    send_job(_settings(), ANNOUNCE_WEBHOOK_DISABLED, kwargs=kwargs)
