"""Reactions to events: notify users (a notification and its deliveries per event that
notifies, LOG sent at once when the operator's notifier is inline, then one delivery job for
each other), run or skip the tasks that waited on a finished one,
erase a deleted account's tasks, and keep the `users` replica from auth's user events
(shared.user_replica).

New tasks are not dispatched here: the launcher (launcher.py) consumes TaskCreated itself, so
a task's start is one broker hop after its commit.
"""

from __future__ import annotations

import uuid
from functools import lru_cache

from sqlalchemy.orm import Session

from services.tasks import dependencies, dispatch, erasure, workflows
from services.tasks.config import TasksSettings
from services.tasks.models import SCHEMA, users
from services.tasks.notifications.history import delete_user_notifications, record_notification
from services.tasks.notifications.kinds import ROUTING_KEYS
from services.tasks.notifications.rules import delete_user_rules
from services.tasks.sagas import tasks_sagas
from shared.config import ConfigError
from shared.db import add_events
from shared.messaging import Envelope, Subscription
from shared.notifications import Notifier, is_inline, notifier_from_settings
from shared.user_replica import USER_EVENTS, apply_user_event


@lru_cache(maxsize=1)
def inline_notifier() -> Notifier | None:
    """The operator's notifier when LOG deliveries may be sent in the consumer (else None)."""
    try:
        notifier = notifier_from_settings(TasksSettings())
    except ConfigError:
        # The worker refuses to start on it and says why; its delivery jobs send them all.
        return None
    return notifier if is_inline(notifier) else None


def on_notifying_event(envelope: Envelope, session: Session) -> None:
    """Record the user's notification of a finished task, a processed file or a misfire."""
    # LOG inline: most users keep the default rule, and a delivery job per finished task (a
    # relay hop, a consumer hop and a Celery round trip) cost more than the task's own start.
    record_notification(session, envelope, inline=inline_notifier())


def on_notification_created(envelope: Envelope, _session: Session) -> None:
    """Send one delivery job per channel of a new notification (each is sent once)."""
    for delivery_id in envelope.payload["delivery_ids"]:
        dispatch.send_delivery(delivery_id)


def on_webhook_disabled(envelope: Envelope, _session: Session) -> None:
    """Have the owner of a disabled webhook mailed."""
    payload = envelope.payload
    dispatch.send_webhook_disabled_notice(
        webhook_id=payload["webhook_id"], owner_id=payload["owner_id"], failures=payload["failures"]
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
    if envelope.type == "UserDeleted":
        # A notifying event handled after the account-deletion step (a file processed late)
        # may have notified the user since; none is made once the replica says deleted.
        owner_id = uuid.UUID(envelope.payload["user_id"])
        delete_user_notifications(session, owner_id=owner_id)
        delete_user_rules(session, owner_id=owner_id)


def on_account_deletion_requested(envelope: Envelope, session: Session) -> None:
    """Cancel, then delete every task of the user, and confirm to auth's saga."""
    erasure.erase_user_tasks(
        session, user_id=envelope.payload["user_id"], saga_id=envelope.payload["saga_id"]
    )


SUBSCRIPTIONS = [
    Subscription("tasks.notifications", list(ROUTING_KEYS), on_notifying_event),
    Subscription(
        "tasks.notification-deliveries", ["tasks.NotificationCreated"], on_notification_created
    ),
    Subscription("tasks.webhook-disabled", ["tasks.WebhookDisabled"], on_webhook_disabled),
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
