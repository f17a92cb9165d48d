"""Reactions to the tasks service's own events: notify the owners of finished tasks.

New tasks are not dispatched here: the launcher (launcher.py) consumes TaskCreated itself, so
a task's start is one broker hop after its commit.
"""

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
    Subscription("tasks.notify", [f"tasks.{name}" for name in _TERMINAL], on_task_finished),
]
