"""The files service's Celery worker: thin tasks around processing.py, search.py and service.py.

Run by `celery -A services.files.worker:celery_app worker`; the only module that builds the
files Celery app. Processing starts from the FileUploaded event (services/files/handlers.py sends
`files.process_file` by name, see jobs.py), a text file's search indexing from FileProcessed, and
the beat process runs
`files.requeue_stalled_files`, the reaper, and `files.sweep_input_leases`, which drops the input
leases of tasks that vanished.
Every task is idempotent: they are acknowledged late and redelivered if a worker dies.
"""

from __future__ import annotations

import logging
import uuid
from functools import lru_cache

from celery import signals
from flask import current_app

from services.files import jobs, processing, search, service, task_outputs
from services.files.analysis import tune_allocator
from services.files.app import create_app
from services.files.config import FilesSettings
from services.files.storage import StorageUnavailable
from services.files.tasks_client import TaskOutputSource, TasksUnavailable
from shared.logging import configure_logging

log = logging.getLogger(__name__)

settings = FilesSettings()
configure_logging("files-worker", settings.LOG_LEVEL)
flask_app = create_app(settings)
celery_app = flask_app.extensions["celery"]

#: Retry policy for transient failures: exponential backoff with full jitter.
RETRY_POLICY = {
    "retry_backoff": settings.RETRY_BACKOFF_SECONDS,
    "retry_backoff_max": settings.RETRY_BACKOFF_MAX_SECONDS,
    "retry_jitter": True,
    "max_retries": settings.MAX_RETRIES,
}


@signals.setup_logging.connect
def _keep_our_logging(**_kwargs: object) -> None:
    """Keep the JSON log format of every other Dockyard process (Celery would install its own)."""


@signals.worker_process_init.connect
def _tune_pool_process(**_kwargs: object) -> None:
    tune_allocator()


def _ctx():
    return current_app.extensions["files"]


@celery_app.task(
    name=jobs.PROCESS_FILE,
    bind=True,
    autoretry_for=(processing.ProcessingUnavailable,),
    rate_limit=settings.PROCESSING_RATE_LIMIT or None,
    **RETRY_POLICY,
)
def process_file(self, file_id: str) -> str:
    """Process one uploaded file (processing.process_file); retried while storage or DB is down."""
    ctx = _ctx()
    try:
        outcome = processing.process_file(
            ctx.uow(), storage=ctx.storage, file_id=uuid.UUID(file_id), policy=ctx.processing
        )
    except processing.FileBusy as busy:
        if self.request.retries >= self.max_retries:
            log.info("file %s is still being processed elsewhere; leaving it", file_id)
            return "busy"
        # Another worker's claim is live; look again once it may have lapsed.
        raise self.retry(countdown=busy.retry_after + 0.5) from None
    log.info("file %s: %s", file_id, outcome.value, extra={"file_id": file_id})
    return outcome.value


@celery_app.task(
    name=jobs.INDEX_FILE_TEXT,
    autoretry_for=(search.IndexingUnavailable,),
    **RETRY_POLICY,
)
def index_file_text(file_id: str) -> str:
    """Build a text file's search document (search.index_file_text); retried during outages."""
    ctx = _ctx()
    outcome = search.index_file_text(
        ctx.uow(),
        storage=ctx.storage,
        file_id=uuid.UUID(file_id),
        max_bytes=ctx.settings.SEARCH_TEXT_MAX_BYTES,
    )
    log.info("file %s search document: %s", file_id, outcome.value, extra={"file_id": file_id})
    return outcome.value


@celery_app.task(
    name=jobs.STORE_TASK_OUTPUTS,
    autoretry_for=(TasksUnavailable, StorageUnavailable),
    **RETRY_POLICY,
)
def store_task_outputs(saga_id: str, task_id: str, owner_id: str, outputs: list) -> str:
    """Pull a finished task's outputs from tasks, store them, reply to the saga (idempotent)."""
    ctx = _ctx()
    return task_outputs.store_task_outputs(
        ctx.uow,
        storage=ctx.storage,
        source=_task_output_source(),
        saga_id=saga_id,
        task_id=task_id,
        owner_id=owner_id,
        outputs=outputs,
        quota_bytes=ctx.settings.USER_QUOTA_BYTES,
        max_bytes=ctx.settings.MAX_UPLOAD_BYTES,
    )


@lru_cache(maxsize=1)
def _task_output_source() -> TaskOutputSource:
    return TaskOutputSource(settings.TASKS_SERVICE_URL, settings.FILES_TO_TASKS_SECRET)


@celery_app.task(name=jobs.REQUEUE_STALLED_FILES)
def requeue_stalled_files() -> int:
    """The reaper: queue processing again for lapsed claims and long-waiting uploads."""
    ctx = _ctx()
    ids = processing.requeue_stalled_files(
        ctx.uow(),
        lease_seconds=ctx.settings.PROCESSING_LEASE_SECONDS,
        stale_upload_seconds=ctx.settings.STALE_UPLOAD_SECONDS,
    )
    for file_id in ids:
        jobs.send_processing(str(file_id), settings=ctx.settings)
    return len(ids)


@celery_app.task(name=jobs.SWEEP_INPUT_LEASES)
def sweep_input_leases() -> int:
    """The lease reaper: drop input leases whose task never ended here (each logged)."""
    return service.sweep_input_leases(_ctx().uow())
