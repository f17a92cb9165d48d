"""The auth service's Celery jobs: their names, their queue, and how the consumer sends one.

Only worker.py builds the auth Celery app; the consumer (handlers.py) sends by name through
shared.celery.send_job. Account mail has a queue of its own on auth's own exchange, so another
service's worker never receives (and drops) it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from kombu import Exchange, Queue

from shared.celery import send_job
from shared.config import CommonSettings

SEND_ACCOUNT_EMAIL = "auth.send_account_email"


def mail_queue(settings: CommonSettings) -> Queue:
    """The queue of account mail in `settings`' namespace, on auth's direct exchange."""
    namespace = settings.NAMESPACE
    exchange = Exchange(f"{namespace}.auth", type="direct")
    return Queue(f"{namespace}.auth.mail", exchange, routing_key="mail")


def celery_overrides(settings: CommonSettings) -> dict[str, Any]:
    """The auth worker consumes only its own queue (on top of shared.celery's settings)."""
    queue = mail_queue(settings)
    return {
        "task_queues": (queue,),
        "task_default_queue": queue.name,
        "task_default_exchange": queue.exchange.name,
        "task_default_routing_key": queue.routing_key,
    }


@lru_cache(maxsize=1)
def _settings() -> CommonSettings:
    # Only the broker and namespace: the consumer has no signing key (nor needs one).
    return CommonSettings()


def send_account_email(
    event_id: str,
    purpose: str,
    *,
    user_id: str | None = None,
    email: str | None = None,
    settings: CommonSettings | None = None,
) -> None:
    """Ask the mail worker for the mail of an account event (sent once, by the event's id).

    The recipient is a user id, or an email that may have no account (a reset request).
    """
    settings = settings or _settings()
    send_job(
        settings,
        SEND_ACCOUNT_EMAIL,
        args=[event_id, purpose],
        kwargs={"user_id": user_id, "email": email},
        queue=mail_queue(settings),
    )
