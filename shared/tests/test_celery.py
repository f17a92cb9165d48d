"""Celery is set up so a task survives a worker's death and runs in the Flask app context."""

from __future__ import annotations

import pytest
from flask import Flask, current_app

from shared.celery import MAX_COUNTDOWN_SECONDS, celery_init_app, parse_countdown
from shared.config import CommonSettings


def make_app(**config) -> Flask:
    app = Flask("celery-probe")
    app.config.update(config)
    return app


def test_tasks_are_acknowledged_late_and_requeued_if_the_worker_dies():
    settings = CommonSettings(
        {"AMQP_URL": "amqp://u:p@broker:5672/vh", "DOCKYARD_NAMESPACE": "ns1"}
    )
    celery_app = celery_init_app(make_app(), settings)
    conf = celery_app.conf
    assert conf.broker_url == "amqp://u:p@broker:5672/vh"
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json"
    assert conf.result_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.broker_transport_options["confirm_publish"] is True
    assert conf.task_default_queue == "ns1.celery"
    assert conf.event_exchange.startswith("ns1.")
    assert conf.event_queue_prefix.startswith("ns1.")
    assert conf.control_exchange.startswith("ns1.")


def test_tasks_run_inside_the_flask_app_context():
    app = make_app(GREETING="hello from the app")
    celery_app = celery_init_app(app, CommonSettings({}))

    @celery_app.task
    def greet() -> str:
        return current_app.config["GREETING"]

    assert app.extensions["celery"] is celery_app
    # Calling a task runs it here, through the task class (no broker, no eager mode).
    assert greet() == "hello from the app"


def test_app_config_may_override_a_setting():
    app = make_app(CELERY={"task_default_queue": "special"})
    celery_app = celery_init_app(app, CommonSettings({}))
    assert celery_app.conf.task_default_queue == "special"
    assert celery_app.conf.task_acks_late is True


@pytest.mark.parametrize("raw", ["0", "-1", "1800", "nan", "soon"])
def test_a_retry_delay_that_could_outlive_the_brokers_consumer_timeout_is_refused(raw):
    with pytest.raises(ValueError):
        parse_countdown(raw)


def test_a_retry_delay_within_bounds_is_seconds():
    assert parse_countdown("0.5") == 0.5
    assert parse_countdown(str(MAX_COUNTDOWN_SECONDS)) == MAX_COUNTDOWN_SECONDS
