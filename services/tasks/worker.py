"""The tasks Celery worker: thin jobs that start task containers and deliver notifications.

Run: `celery -A services.tasks.worker:celery_app worker -c 8`. New tasks are started by the
launcher (`python -m services.tasks.launcher`) straight from their TaskCreated events; the start
job here starts what must wait: retries after a failed attempt, tasks the reconciler
re-dispatches, and those the launcher handed over (no free slot in time, engine away). It only
claims an attempt and starts its container (a second or so), so its message is acked long before
RabbitMQ's consumer_timeout; the monitor process (`python -m services.tasks.monitor`) owns the
wait.
"""

from __future__ import annotations

import logging
import math
import random
import uuid
from functools import lru_cache

from celery.signals import worker_ready

from services.tasks import dispatch, transitions
from services.tasks.app import create_app
from services.tasks.config import TasksSettings
from services.tasks.containers import ContainerEngine, DockerEngine, EngineUnavailable
from services.tasks.executors import engine_from_settings
from services.tasks.input_staging import InputStaging
from services.tasks.launcher import Listener, start_when_free
from services.tasks.notifications import webhooks
from services.tasks.notifications.delivery import (
    Channels,
    announce_webhook_disabled,
    deliver_notification,
)
from services.tasks.notify import notify_task_finished
from shared.celery import celery_init_app
from shared.mail import MailUnavailable, SmtpSettings
from shared.notifications import notifier_from_settings
from shared.reconnect import is_database_outage, reconnect_delay, summary

log = logging.getLogger(__name__)

flask_app = create_app()
celery_app = celery_init_app(flask_app)
settings: TasksSettings = flask_app.extensions["tasks"].settings
execution_settings = transitions.ExecutionSettings.from_settings(settings)
# Built at import, so an unknown NOTIFICATION_CHANNELS entry stops the worker at start-up.
notifier = notifier_from_settings(settings)

#: Retry policy of a notification whose channel fails: exponential backoff with full jitter.
NOTIFY_RETRY_POLICY = {
    "retry_backoff": settings.NOTIFY_RETRY_BACKOFF_SECONDS,
    # A whole number of seconds: with jitter, Celery draws the delay with random.randrange.
    "retry_backoff_max": math.ceil(settings.NOTIFY_RETRY_BACKOFF_MAX_SECONDS),
    "retry_jitter": True,
    "max_retries": settings.NOTIFY_MAX_RETRIES,
}


#: How a notification delivery is sent: the operator's log channels, SMTP, webhooks.
channels = Channels(
    notifier=notifier,
    smtp=SmtpSettings.from_settings(settings),
    webhook_policy=webhooks.WebhookPolicy.from_settings(settings),
)


@lru_cache(maxsize=1)
def _engine() -> ContainerEngine:
    # Built lazily in each pool process: a client made before the fork would share its socket.
    return engine_from_settings(settings)


@lru_cache(maxsize=1)
def _inputs() -> InputStaging:
    return InputStaging.from_settings(settings)


@lru_cache(maxsize=1)
def _slots() -> Listener:
    # Per pool process too: a listening connection cannot cross a fork.
    return Listener(flask_app.extensions["tasks"].database, transitions.SLOT_FREED_CHANNEL)


def _uow():
    return flask_app.extensions["tasks"].uow()


#: Retries of a start through a database outage (about a second apart: some five minutes);
#: after them the monitor's reconciler re-dispatches the task once the database is back.
OUTAGE_RETRIES = 300


@celery_app.task(name=dispatch.START_TASK, bind=True)
def start_task(self, task_id: str, outages: int = 0) -> str:
    """Start (or adopt) the task's current attempt, waiting a while for a free slot.

    `outages`: how many of this job's retries were for a database outage (the rest, for the
    engine, count against ENGINE_RETRIES).
    """
    try:
        outcome = start_when_free(
            _uow,
            task_id=uuid.UUID(task_id),
            engine=_engine(),
            settings=execution_settings,
            slots=_slots(),
            inputs=_inputs(),
        )
    except EngineUnavailable as exc:
        _engine.cache_clear()
        engine_failures = self.request.retries - outages
        if engine_failures >= settings.ENGINE_RETRIES:
            log.warning("task %s: giving up on the engine: %s", task_id, exc)
            transitions.fail_start(
                _uow(),
                task_id=uuid.UUID(task_id),
                code=exc.code,
                message=str(exc),
                output_dir=execution_settings.output_dir,
            )
            return "failed"
        delay = execution_settings.backoff(engine_failures + 1)
        log.warning("task %s: engine unavailable, retrying in %.1fs: %s", task_id, delay, exc)
        raise self.retry(
            args=[task_id],
            kwargs={"outages": outages},
            countdown=delay,
            max_retries=settings.ENGINE_RETRIES + outages,
        ) from None
    except Exception as exc:
        if not is_database_outage(exc) or outages >= OUTAGE_RETRIES:
            raise
        # Retried promptly: the start adopts its claimed attempt and container, so a start the
        # outage interrupted is not run twice.
        _slots().close()
        delay = reconnect_delay(outages + 1)
        log.warning(
            "task %s: database unavailable (%s, attempt %d); retrying in %.1f s",
            task_id,
            summary(exc),
            outages + 1,
            delay,
            extra={"task_id": task_id},
        )
        raise self.retry(
            args=[task_id], kwargs={"outages": outages + 1}, countdown=delay, max_retries=None
        ) from None
    if outages:
        log.info("task %s: database back after %d retries", task_id, outages)
    if outcome == "busy":
        # Still no slot: hand the task to a fresh message so this one is acked now.
        dispatch.send_start(task_id)
    return outcome


@celery_app.task(name=dispatch.NOTIFY, autoretry_for=(Exception,), **NOTIFY_RETRY_POLICY)
def notify(user_id: str, task_label: str, status: str, task_id: str | None = None) -> None:
    """Tell a user their task reached a terminal state (retried while the channel fails).

    Nothing sends this job any more (notification deliveries replaced it); it stays registered
    so that jobs queued before an upgrade are still delivered, and can go in the next release.
    """
    notify_task_finished(
        notifier,
        user_id=user_id,
        # Jobs queued before the id was sent carry only the label (a nameless task's is its id).
        task_id=task_id or task_label,
        task_label=task_label,
        status=status,
    )


@celery_app.task(name=dispatch.DELIVER_NOTIFICATION, bind=True, max_retries=None)
def deliver_notification_job(self, delivery_id: str) -> str:
    """Send one notification delivery once; retried with backoff and full jitter while it fails."""
    outcome = deliver_notification(
        _uow(),
        delivery_id=uuid.UUID(delivery_id),
        channels=channels,
        max_attempts=settings.NOTIFY_MAX_RETRIES + 1,
    )
    if outcome.retry:
        # Full jitter: a uniform delay up to the exponential bound, so retries spread out.
        bound = min(
            settings.NOTIFY_RETRY_BACKOFF_MAX_SECONDS,
            settings.NOTIFY_RETRY_BACKOFF_SECONDS * 2**self.request.retries,
        )
        raise self.retry(countdown=random.uniform(0, bound))
    return outcome.result


@celery_app.task(
    name=dispatch.ANNOUNCE_WEBHOOK_DISABLED,
    autoretry_for=(MailUnavailable,),
    **NOTIFY_RETRY_POLICY,
)
def announce_webhook_disabled_job(webhook_id: str, owner_id: str, failures: int) -> str:
    """Mail a user that their webhook was disabled after failing too often."""
    return announce_webhook_disabled(
        _uow(), webhook_id=webhook_id, owner_id=owner_id, failures=failures, smtp=channels.smtp
    )


@worker_ready.connect
def _warn_without_engine(**_kwargs) -> None:
    """Say clearly at start when no Docker engine answers: tasks will fail, not hang."""
    try:
        DockerEngine.from_settings(settings).close()
    except EngineUnavailable as exc:
        log.warning(
            "No Docker engine reachable (DOCKER_HOST=%r): tasks will fail with "
            "ENGINE_UNREACHABLE after %d retries. %s",
            settings.DOCKER_HOST or "default",
            settings.ENGINE_RETRIES,
            exc,
        )
