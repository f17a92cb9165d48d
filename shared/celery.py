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

from functools import lru_cache
from typing import Any

from celery import Celery, Task
from flask import Flask
from kombu import Queue

from shared.config import CommonSettings

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


def celery_config(settings: CommonSettings) -> dict[str, Any]:
    """Celery settings for tasks that must survive worker crashes (they must be idempotent)."""
    namespace = settings.NAMESPACE
    return {
        "broker_url": settings.AMQP_URL,
        # Sending a task waits for the broker's confirm, so a task the caller saw as sent exists.
        "broker_transport_options": {"confirm_publish": True},
        "broker_connection_retry_on_startup": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # A connection loss returns the unacked tasks to the queue; without this the worker
        # would keep running them too, so they would run twice at once.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
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
