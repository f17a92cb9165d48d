"""The files service's app factory: the only wiring point."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from flask import Flask
from kombu import Exchange, Queue
from sqlalchemy.engine import Engine

from services.files.api import blp
from services.files.config import FilesSettings
from services.files.models import SCHEMA, messaging_tables
from services.files.processors import available_processors
from services.files.service import ProcessingPolicy
from services.files.storage import Storage, storage_from_settings
from shared.auth import init_jwt, verifier_from_settings
from shared.celery import celery_init_app
from shared.db import UnitOfWork, make_engine, session_factory
from shared.health import broker_check, database_check
from shared.notifications import Notifier, notifier_from_settings
from shared.outbox.metrics import OutboxCollector
from shared.web import create_service_app

PROCESS_FILE_TASK = "files.process_file"
NOTIFY_TASK = "files.notify_file_status"
REQUEUE_TASK = "files.requeue_stalled_files"


@dataclass
class FilesContext:
    """What the views need, built once per app."""

    settings: FilesSettings
    engine: Engine
    uow: partial
    storage: Storage
    processing: ProcessingPolicy
    notifier: Notifier


def celery_overrides(settings: FilesSettings) -> dict[str, Any]:
    """Files' own task queues and the reaper's schedule, on top of shared.celery's settings.

    Own queues, so that another service's worker never receives (and drops) a files task, and
    notifications apart from processing, so a queue of large files does not hold them up.
    """
    namespace = settings.NAMESPACE
    exchange = Exchange(f"{namespace}.files", type="direct")
    processing = f"{namespace}.files.processing"
    notifications = f"{namespace}.files.notifications"
    return {
        "task_queues": (
            Queue(processing, exchange, routing_key="processing"),
            Queue(notifications, exchange, routing_key="notifications"),
        ),
        "task_default_queue": processing,
        "task_default_exchange": exchange.name,
        "task_default_routing_key": "processing",
        "task_routes": {NOTIFY_TASK: {"queue": notifications, "routing_key": "notifications"}},
        "beat_schedule": {
            "files.requeue-stalled": {
                "task": REQUEUE_TASK,
                "schedule": settings.REAPER_INTERVAL_SECONDS,
            }
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
        collectors=[OutboxCollector(engine, messaging_tables.outbox, source="files")],
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
        processing=ProcessingPolicy(
            lease_seconds=settings.PROCESSING_LEASE_SECONDS,
            max_attempts=settings.PROCESSING_MAX_ATTEMPTS,
            processors=available_processors(settings.PROCESSORS),
        ),
        notifier=notifier_from_settings(settings),
    )
    app.config["CELERY"] = celery_overrides(settings)
    celery_init_app(app, settings)
    api.register_blueprint(blp)
    return app
