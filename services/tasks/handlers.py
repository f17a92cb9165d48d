"""Reactions to events: notify the owners of finished tasks, run or skip the tasks that waited on
them, erase a deleted account's tasks, and keep the `users` replica from auth's user events
(shared.user_replica).

New tasks are not dispatched here: the launcher (launcher.py) consumes TaskCreated itself, so
a task's start is one broker hop after its commit.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from services.tasks import dependencies, dispatch, erasure, workflows
from services.tasks.models import SCHEMA, users
from services.tasks.sagas import tasks_sagas
from shared.db import add_events
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


def on_dependency_ended(envelope: Envelope, session: Session) -> None:
    """Run or skip the tasks that waited on the task that ended, finish its workflow; once."""
    task_id = uuid.UUID(envelope.payload["task_id"])
    events = [
        *dependencies.release_dependants(session, task_id=task_id),
        *workflows.finish_if_done(session, task_id=task_id),
    ]
    if events:
        add_events(session, events, source=SCHEMA, schema=SCHEMA)


def on_user_event(envelope: Envelope, session: Session) -> None:
    """Keep this service's replica of a user (registered, deleted) in step with auth."""
    apply_user_event(session, users, envelope)


def on_account_deletion_requested(envelope: Envelope, session: Session) -> None:
    """Cancel, then delete every task of the user, and confirm to auth's saga."""
    erasure.erase_user_tasks(
        session, user_id=envelope.payload["user_id"], saga_id=envelope.payload["saga_id"]
    )


SUBSCRIPTIONS = [
    Subscription("tasks.notify", [f"tasks.{name}" for name in _TERMINAL], on_task_finished),
    Subscription("tasks.users", list(USER_EVENTS), on_user_event),
    # Decides in the inbox's transaction, under the dependants' row locks: exactly once.
    Subscription(
        "tasks.dependencies",
        [f"tasks.{name}" for name in dependencies.TERMINAL_EVENTS],
        on_dependency_ended,
    ),
    # Retried every few seconds while the monitor stops the user's containers (TasksStillRunning).
    Subscription(
        "tasks.account-deletion",
        ["auth.AccountDeletionRequested"],
        on_account_deletion_requested,
        max_attempts=30,
        retry_delay=1.0,
        max_retry_delay=10.0,
    ),
    # The replies that advance tasks' sagas: files' answers about input-file leases and outputs.
    tasks_sagas().subscription("tasks.sagas"),
]
