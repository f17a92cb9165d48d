"""Reactions to the tasks service's own events: dispatch created tasks, notify finished ones."""

from __future__ import annotations

from sqlalchemy.orm import Session

from services.tasks import dispatch
from shared.messaging import Envelope, Subscription

_TERMINAL = {
    "TaskSucceeded": "SUCCEEDED",
    "TaskFailed": "FAILED",
    "TaskTimedOut": "TIMED_OUT",
    "TaskCancelled": "CANCELLED",
}


def on_task_created(envelope: Envelope, _session: Session) -> None:
    """Enqueue the start job of a new task.

    Driven by the outbox, so a task committed is a task dispatched; a redelivery sends a second
    job, which the start job's idempotence makes harmless.
    """
    dispatch.send_start(envelope.payload["task_id"])


def on_task_finished(envelope: Envelope, _session: Session) -> None:
    """Enqueue the lifecycle notification of a task that reached a terminal state."""
    payload = envelope.payload
    dispatch.send_notification(
        user_id=payload["owner_id"],
        task_id=payload["task_id"],
        task_label=payload.get("name") or payload["task_id"],
        status=_TERMINAL[envelope.type],
    )


SUBSCRIPTIONS = [
    Subscription("tasks.dispatch", ["tasks.TaskCreated"], on_task_created),
    Subscription("tasks.notify", [f"tasks.{name}" for name in _TERMINAL], on_task_finished),
]
