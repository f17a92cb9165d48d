"""Reactions to events: tasks' own (notify the owners of finished tasks), and auth's user
events, which keep the `users` replica (shared.user_replica).

New tasks are not dispatched here: the launcher (launcher.py) consumes TaskCreated itself, so
a task's start is one broker hop after its commit.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from services.tasks import dispatch
from services.tasks.models import users
from shared.messaging import Envelope, Subscription
from shared.user_replica import USER_EVENTS, apply_user_event

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


def on_user_event(envelope: Envelope, session: Session) -> None:
    """Keep this service's replica of a user (registered, deleted) in step with auth."""
    apply_user_event(session, users, envelope)


SUBSCRIPTIONS = [
    Subscription("tasks.notify", [f"tasks.{name}" for name in _TERMINAL], on_task_finished),
    Subscription("tasks.users", list(USER_EVENTS), on_user_event),
]
