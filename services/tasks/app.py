"""The tasks service's app factory: the only wiring point."""

from __future__ import annotations

from flask import Flask

from services.tasks.config import TasksSettings
from services.tasks.models import SCHEMA
from shared.auth import init_jwt, verifier_from_settings
from shared.db import make_engine
from shared.health import broker_check, database_check
from shared.web import create_service_app


def create_app(settings: TasksSettings | None = None) -> Flask:
    """Build the tasks service (health, readiness, metrics and docs for now)."""
    settings = settings or TasksSettings()
    engine = make_engine(settings.DATABASE_URL, schema=SCHEMA)
    app, _api = create_service_app(
        "tasks",
        settings,
        title="Dockyard tasks",
        readiness_checks={
            "database": database_check(engine),
            "broker": broker_check(settings.AMQP_URL),
        },
    )
    init_jwt(app, verifier_from_settings(settings))
    app.extensions["tasks.engine"] = engine
    return app
