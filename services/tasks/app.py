"""The tasks service's app factory: the only wiring point."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import partial

from flask import Flask
from sqlalchemy.engine import Engine as DatabaseEngine

from services.tasks.api import blp, limiter
from services.tasks.config import TasksSettings
from services.tasks.metrics import ContainerStartRateCollector, TaskStatusCollector
from services.tasks.models import SCHEMA, messaging_tables, users
from services.tasks.notification_api import blp as notifications_blp
from services.tasks.output_api import blp as output_blp
from services.tasks.sagas import tasks_sagas
from services.tasks.schedule_api import blp as schedules_blp
from services.tasks.service import TaskPolicy
from services.tasks.workflow_api import blp as workflows_blp
from shared.auth import init_jwt, verifier_from_settings
from shared.config import ConfigError
from shared.db import UnitOfWork, make_engine, session_factory
from shared.health import broker_check, database_check
from shared.outbox.metrics import OutboxCollector
from shared.plugins_api import plugins_blueprint
from shared.sagas.metrics import SagaCollector
from shared.service_identity import init_service_identity
from shared.user_replica import init_user_replica
from shared.web import create_service_app


@dataclass
class TasksContext:
    """What the views need, built once per app."""

    settings: TasksSettings
    database: DatabaseEngine
    uow: partial
    policy: TaskPolicy
    #: One permit per `logs?follow=true` stream this process may serve at once.
    follow_permits: threading.BoundedSemaphore


def create_app(settings: TasksSettings | None = None) -> Flask:
    """Build the tasks service."""
    settings = settings or TasksSettings()
    try:
        policy = TaskPolicy.from_settings(settings)
    except ValueError as exc:
        raise ConfigError(f"invalid TASKS_* limits: {exc}") from None
    # hide_parameters: a failed statement's message would otherwise carry env values (secrets).
    database = make_engine(settings.DATABASE_URL, schema=SCHEMA, hide_parameters=True)
    app, api = create_service_app(
        "tasks",
        settings,
        title="Dockyard tasks",
        collectors=[
            OutboxCollector(database, messaging_tables.outbox, source="tasks"),
            SagaCollector(database, tasks_sagas()),
            TaskStatusCollector(database),
            ContainerStartRateCollector(database),
        ],
        readiness_checks={
            "database": database_check(database),
            "broker": broker_check(settings.AMQP_URL),
        },
    )
    init_service_identity(
        app, settings, service="tasks", peers={"files": settings.FILES_TO_TASKS_SECRET}
    )
    init_jwt(app, verifier_from_settings(settings))
    init_user_replica(app, database, users)
    app.config.update(
        RATELIMIT_STORAGE_URI=settings.REDIS_URL,
        RATELIMIT_KEY_PREFIX=f"{settings.NAMESPACE}:tasks-ratelimit",
        RATELIMIT_STRATEGY="moving-window",
        RATELIMIT_HEADERS_ENABLED=True,
        # Redis away: tasks are still created (the per-user cap on unfinished tasks, kept in
        # the database, still holds) rather than every createTask failing.
        RATELIMIT_SWALLOW_ERRORS=True,
    )

    @app.after_request
    def _retry_after_only_when_limited(response):
        # flask-limiter sends Retry-After on every limited route; it means something only on
        # 429 (and on the 503 of a full set of log streams, which sets its own).
        if response.status_code not in (429, 503) and "Retry-After" in response.headers:
            del response.headers["Retry-After"]
        return response

    limiter.init_app(app)
    # The limit decorates the create view, whose wrapper checks it; the app-wide hook would only
    # cost every other request time.
    app.before_request_funcs[None].remove(limiter._check_request_limit)
    app.extensions["tasks"] = TasksContext(
        settings=settings,
        database=database,
        uow=partial(UnitOfWork, session_factory(database), schema=SCHEMA, source="tasks"),
        policy=policy,
        follow_permits=threading.BoundedSemaphore(settings.LOG_FOLLOW_MAX_STREAMS),
    )
    api.register_blueprint(blp)
    api.register_blueprint(schedules_blp)
    api.register_blueprint(output_blp)
    api.register_blueprint(notifications_blp)
    api.register_blueprint(workflows_blp)
    api.register_blueprint(plugins_blueprint(("executor", "notifier")))
    return app
