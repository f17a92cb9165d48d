"""Celery for work that must not be lost: late acks, requeued if a worker dies, app context.

Follows Flask's examples/celery: `celery_init_app(app)` builds the Celery app from the Flask
app, each task runs inside `app.app_context()`, and the Celery app is kept in
`app.extensions["celery"]`. A service's worker.py does

    app = create_app()
    celery_app = app.extensions["celery"]

and runs `celery -A services.<name>.worker worker`. Only a worker builds that app: every other
process (an event handler, the monitor) sends jobs by name through `send_job`, which needs the
broker, not the worker's Flask app or its imports. `app.config["CELERY"]` may override any
setting below (e.g. routing), but the delivery guarantees are what callers rely on. RabbitMQ
closes a channel whose message stays unacked longer than its `consumer_timeout` (30 minutes by
default), so a task that may run longer needs that raised on the broker.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from celery import Celery, Task
from celery.worker.consumer import Consumer
from flask import Flask
from kombu import Queue

from shared.config import CommonSettings
from shared.reconnect import RECONNECT_INITIAL_DELAY, RECONNECT_MAX_DELAY, Reconnects

log = logging.getLogger(__name__)

#: Longest delay a retry or countdown may ask for. A worker keeps a message with a countdown
#: unacked until it is due, and RabbitMQ's consumer_timeout (30 minutes by default) then closes
#: the worker's channel, which Celery 5 answers by shutting the whole worker down.
MAX_COUNTDOWN_SECONDS = 900


def parse_countdown(raw: str) -> float:
    """Seconds of a retry delay: above zero and at most MAX_COUNTDOWN_SECONDS."""
    value = float(raw)
    if not 0 < value <= MAX_COUNTDOWN_SECONDS:
        raise ValueError(
            f"must be above 0 and at most {MAX_COUNTDOWN_SECONDS} seconds (a longer countdown "
            "outlives RabbitMQ's consumer_timeout)"
        )
    return value


#: How kombu retries a broker connection (a worker's consumer, a publish's retry policy): at
#: once, then after 0.1 s, 0.4 s, 0.7 s and every second, so work resumes within about a second
#: of the broker's return (shared.reconnect's answer). Kombu's own default for a worker waits 2 s
#: more on each attempt, up to 30 s.
RECONNECT_INTERVALS = {
    "interval_start": RECONNECT_INITIAL_DELAY,
    "interval_step": 0.3,
    "interval_max": RECONNECT_MAX_DELAY,
}
#: The publish retry policy of a beat entry: retried about once a second for some two minutes,
#: so a tick that falls due while the broker is away is sent once it is back, not dropped.
BEAT_PUBLISH_RETRY_POLICY = {"max_retries": 120, **RECONNECT_INTERVALS}


class ReconnectingConsumer(Consumer):
    """Celery's worker consumer, reconnecting to a returned broker within about a second.

    Celery calls kombu's `ensure_connection` with kombu's default intervals, which no setting
    changes; this passes RECONNECT_INTERVALS and logs the attempts as every Dockyard process
    does (a WARNING line each, an INFO line once reconnected).
    """

    def ensure_connected(self, conn):
        """Connect (retrying as RECONNECT_INTERVALS says) and return the connection."""
        reconnects = Reconnects("celery worker: broker", log)
        ensure = conn.ensure_connection

        def ensure_quickly(errback, max_retries=None, **kwargs):
            def failed(exc: BaseException, interval: float) -> None:
                reconnects.failed(exc, delay=interval)

            ensure(failed, max_retries, **RECONNECT_INTERVALS, **kwargs)
            reconnects.succeeded()
            return conn

        conn.ensure_connection = ensure_quickly
        try:
            return super().ensure_connected(conn)
        finally:
            conn.ensure_connection = ensure


def beat_entry(
    task: str, schedule: float, *, args: tuple[Any, ...] = (), **options: Any
) -> dict[str, Any]:
    """A beat_schedule entry whose publish retries through a short broker outage.

    Beat marks an entry run before it publishes it, so a publish that fails loses that tick;
    with this policy beat waits for the broker instead (and sends the tick late, once).
    """
    return {
        "task": task,
        "schedule": schedule,
        "args": args,
        "options": {"retry": True, "retry_policy": BEAT_PUBLISH_RETRY_POLICY, **options},
    }


def celery_config(settings: CommonSettings) -> dict[str, Any]:
    """Celery settings for tasks that must survive worker crashes (they must be idempotent)."""
    namespace = settings.NAMESPACE
    return {
        "broker_url": settings.AMQP_URL,
        # Sending a task waits for the broker's confirm, so a task the caller saw as sent exists.
        # The intervals also pace a sender's connect (kombu reads them from here for that).
        "broker_transport_options": {"confirm_publish": True, **RECONNECT_INTERVALS},
        "broker_connection_retry_on_startup": True,
        # A worker retries the broker for as long as it is away (about once a second): the
        # default, 100 attempts, would shut it down after a two-minute outage.
        "broker_connection_max_retries": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # A connection loss returns the unacked tasks to the queue; without this the worker
        # would keep running them too, so they would run twice at once.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Reconnect within about a second of the broker's return (see ReconnectingConsumer).
        "worker_consumer": f"{__name__}:ReconnectingConsumer",
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "task_default_queue": f"{namespace}.celery",
        "task_default_exchange": f"{namespace}.celery",
        "task_default_routing_key": f"{namespace}.celery",
        # Task events feed Celery Flower, whose /metrics is the dashboard's job durations and
        # failures (a prefork worker's children cannot serve a prometheus_client registry).
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "event_exchange": f"{namespace}.celeryev",
        "event_queue_prefix": f"{namespace}.celeryev",
        "control_exchange": f"{namespace}.celery.control",
        "timezone": "UTC",
        "enable_utc": True,
    }


def celery_init_app(app: Flask, settings: CommonSettings | None = None) -> Celery:
    """Create the Celery app of a Flask app: tasks run in its app context, settings as above."""
    settings = settings or app.extensions.get("dockyard_settings") or CommonSettings()

    class FlaskTask(Task):
        """A task that runs inside the Flask app's context."""

        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object({**celery_config(settings), **app.config.get("CELERY", {})})
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


@lru_cache(maxsize=8)
def _sender(amqp_url: str, namespace: str) -> Celery:
    # A bare Celery app per broker and namespace: a sender must not build a worker's Flask app.
    settings = CommonSettings(AMQP_URL=amqp_url, NAMESPACE=namespace)
    app = Celery(f"dockyard-sender-{namespace}")
    app.config_from_object(celery_config(settings))
    return app


def send_job(
    settings: CommonSettings,
    name: str,
    *,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    countdown: float | None = None,
    queue: Queue | None = None,
) -> None:
    """Send the Celery job `name` to the workers of `settings`' broker and namespace.

    `queue` sends it to a service's own queue (declared on the way, as its worker declares it)
    instead of the namespace's default one.
    """
    sender = _sender(settings.AMQP_URL, settings.NAMESPACE)
    sender.send_task(name, args=args, kwargs=kwargs, countdown=countdown or None, queue=queue)
