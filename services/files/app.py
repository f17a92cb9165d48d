"""The files service's app factory: the only wiring point."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from flask import Flask
from sqlalchemy.engine import Engine

from services.files.api import blp
from services.files.config import FilesSettings
from services.files.models import SCHEMA
from services.files.storage import Storage, storage_from_settings
from shared.auth import init_jwt, verifier_from_settings
from shared.db import UnitOfWork, make_engine, session_factory
from shared.health import broker_check, database_check
from shared.web import create_service_app


@dataclass
class FilesContext:
    """What the views need, built once per app."""

    settings: FilesSettings
    engine: Engine
    uow: partial
    storage: Storage


def create_app(settings: FilesSettings | None = None, *, storage: Storage | None = None) -> Flask:
    """Build the files service; `storage` replaces the configured backend (tests)."""
    settings = settings or FilesSettings()
    engine = make_engine(settings.DATABASE_URL, schema=SCHEMA)
    storage = storage or storage_from_settings(settings)
    app, api = create_service_app(
        "files",
        settings,
        title="Dockyard files",
        readiness_checks={
            "database": database_check(engine),
            "broker": broker_check(settings.AMQP_URL),
            "storage": storage.check,
        },
    )
    init_jwt(app, verifier_from_settings(settings))
    app.extensions["files"] = FilesContext(
        settings=settings,
        engine=engine,
        uow=partial(UnitOfWork, session_factory(engine), schema=SCHEMA, source="files"),
        storage=storage,
    )
    api.register_blueprint(blp)
    return app
