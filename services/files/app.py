"""The files service's app factory: the only wiring point."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from flask import Flask
from sqlalchemy.engine import Engine

from services.files.api import blp
from services.files.config import FilesSettings
from services.files.intake import IntakeGuard
from services.files.internal_api import blp as internal_blp
from services.files.jobs import (
    INDEX_FILE_TEXT,
    REQUEUE_STALLED_FILES,
    SWEEP_INPUT_LEASES,
    files_queues,
)
from services.files.metrics import FileProcessingRateCollector
from services.files.models import SCHEMA, messaging_tables, users
from services.files.processing import ProcessingPolicy
from services.files.processors import available_processors
from services.files.repository import FilesUnitOfWork
from services.files.storage import Storage, storage_from_settings
from shared.auth import init_jwt, verifier_from_settings
from shared.celery import beat_entry, celery_init_app
from shared.db import make_engine, session_factory
from shared.health import broker_check, database_check
from shared.outbox.metrics import OutboxCollector
from shared.plugins_api import plugins_blueprint
from shared.service_identity import init_service_identity
from shared.user_replica import init_user_replica
from shared.web import create_service_app


@dataclass
class FilesContext:
    """What the views need, built once per app."""

    settings: FilesSettings
    engine: Engine
    uow: partial
    storage: Storage
    processing: ProcessingPolicy
    intake: IntakeGuard


def celery_overrides(settings: FilesSettings) -> dict[str, Any]:
    """Files' own task queues (see jobs.py) and the reapers' schedule, on top of shared.celery's."""
    queues = files_queues(settings)
    processing = queues.processing
    return {
        "task_queues": (processing, queues.search),
        "task_default_queue": processing.name,
        "task_default_exchange": processing.exchange.name,
        "task_default_routing_key": processing.routing_key,
        "task_routes": {
            INDEX_FILE_TEXT: {"queue": queues.search},
        },
        # A tick due while the broker is away is sent once it is back (beat_entry's retry
        # policy); the reapers work from the database's state, so a tick lost to a longer
        # outage is made up by the next one.
        "beat_schedule": {
            "files.requeue-stalled": beat_entry(
                REQUEUE_STALLED_FILES, settings.REAPER_INTERVAL_SECONDS
            ),
            # Drops the input leases of tasks that vanished (leases.py), on the same beat.
            "files.sweep-input-leases": beat_entry(
                SWEEP_INPUT_LEASES, settings.REAPER_INTERVAL_SECONDS
            ),
        },
    }


def create_app(settings: FilesSettings | None = None, *, storage: Storage | None = None) -> Flask:
    """Build the files service; `storage` replaces the configured backend (tests)."""
    settings = settings or FilesSettings()
    engine = make_engine(settings.DATABASE_URL, schema=SCHEMA)
    storage = storage or storage_from_settings(settings)
    app, api = create_service_app(
        "files",
        settings,
        title="Dockyard files",
        collectors=[
            OutboxCollector(engine, messaging_tables.outbox, source="files"),
            FileProcessingRateCollector(engine),
        ],
        readiness_checks={
            "database": database_check(engine),
            "broker": broker_check(settings.AMQP_URL),
            "storage": storage.check,
        },
    )
    init_service_identity(
        app, settings, service="files", peers={"tasks": settings.TASKS_TO_FILES_SECRET}
    )
    init_jwt(app, verifier_from_settings(settings))
    init_user_replica(app, engine, users)
    app.extensions["files"] = FilesContext(
        settings=settings,
        engine=engine,
        uow=partial(FilesUnitOfWork, session_factory(engine), schema=SCHEMA, source="files"),
        storage=storage,
        processing=ProcessingPolicy(
            lease_seconds=settings.PROCESSING_LEASE_SECONDS,
            max_attempts=settings.PROCESSING_MAX_ATTEMPTS,
            processors=available_processors(settings.PROCESSORS),
        ),
        intake=IntakeGuard(
            engine,
            max_backlog=settings.INTAKE_MAX_BACKLOG,
            retry_after=settings.INTAKE_RETRY_AFTER_SECONDS,
        ),
    )
    app.config["CELERY"] = celery_overrides(settings)
    celery_init_app(app, settings)
    api.register_blueprint(blp)
    api.register_blueprint(internal_blp)
    api.register_blueprint(plugins_blueprint(("processor", "storage")))
    return app
