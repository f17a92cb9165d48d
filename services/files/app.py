"""The files service's app factory: the only wiring point."""

from __future__ import annotations

from flask import Flask

from services.files.config import FilesSettings
from services.files.models import SCHEMA
from shared.auth import init_jwt, verifier_from_settings
from shared.db import make_engine
from shared.health import broker_check, database_check
from shared.web import create_service_app


def create_app(settings: FilesSettings | None = None) -> Flask:
    """Build the files service (health, readiness, metrics and docs for now)."""
    settings = settings or FilesSettings()
    engine = make_engine(settings.DATABASE_URL, schema=SCHEMA)
    app, _api = create_service_app(
        "files",
        settings,
        title="Dockyard files",
        readiness_checks={
            "database": database_check(engine),
            "broker": broker_check(settings.AMQP_URL),
        },
    )
    init_jwt(app, verifier_from_settings(settings))
    app.extensions["files.engine"] = engine
    return app
