"""The files service's Celery jobs: their names, their queues, and how any process sends one.

Only worker.py builds a Celery app (from the Flask app). Everything else, the event handlers in
the consumer and the reaper in beat, sends by name through shared.celery.send_job, so it needs
the broker, not the worker's app or its imports. The queues are files' own, so another service's
worker never receives (and drops) a files job, and search indexing has one apart from
processing, so a queue of large files does not hold it up. (Owners hear about their files from
the tasks service's notifications, fed by FileProcessed / FileProcessingFailed.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from kombu import Exchange, Queue

from services.files.config import FilesSettings
from shared.celery import send_job

PROCESS_FILE = "files.process_file"
INDEX_FILE_TEXT = "files.index_file_text"
REQUEUE_STALLED_FILES = "files.requeue_stalled_files"
SWEEP_INPUT_LEASES = "files.sweep_input_leases"
STORE_TASK_OUTPUTS = "files.store_task_outputs"


@dataclass(frozen=True)
class FilesQueues:
    """Where files jobs go: processing and search indexing."""

    processing: Queue
    search: Queue


def files_queues(settings: FilesSettings) -> FilesQueues:
    """The queues of `settings`' namespace, bound to files' own direct exchange."""
    namespace = settings.NAMESPACE
    exchange = Exchange(f"{namespace}.files", type="direct")
    return FilesQueues(
        processing=Queue(f"{namespace}.files.processing", exchange, routing_key="processing"),
        search=Queue(f"{namespace}.files.search", exchange, routing_key="search"),
    )


@lru_cache(maxsize=1)
def _settings() -> FilesSettings:
    # Read once per process: the consumer and beat have the same environment as the worker.
    return FilesSettings()


def send_processing(file_id: str, *, settings: FilesSettings | None = None) -> None:
    """Ask a worker to process the file (idempotent: a file already done is left alone)."""
    settings = settings or _settings()
    send_job(settings, PROCESS_FILE, args=[file_id], queue=files_queues(settings).processing)


def send_text_indexing(file_id: str, *, settings: FilesSettings | None = None) -> None:
    """Ask a worker to build a processed text file's search document (idempotent)."""
    settings = settings or _settings()
    send_job(settings, INDEX_FILE_TEXT, args=[file_id], queue=files_queues(settings).search)


def send_store_task_outputs(payload: dict, *, settings: FilesSettings | None = None) -> None:
    """Ask a worker to pull and store a finished task's outputs (a TaskOutputsReady's payload)."""
    settings = settings or _settings()
    send_job(
        settings,
        STORE_TASK_OUTPUTS,
        kwargs={key: payload[key] for key in ("saga_id", "task_id", "owner_id", "outputs")},
        queue=files_queues(settings).processing,
    )
