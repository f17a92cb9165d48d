"""Reactions to events: start processing, index a text file for search, erase a deleted
account's files, lease files to tasks as their input and release them (leases.py),
and keep the `users` replica from auth's user events (shared.user_replica).

Processing and indexing send a Celery job by name (jobs.py) from the consumer's
inbox transaction. The job is sent (and confirmed by the broker) before that transaction
commits, so a crash in between sends it again on redelivery rather than never: jobs are
idempotent, a lost one is not.
"""

from __future__ import annotations

import uuid
from functools import lru_cache

from sqlalchemy.orm import Session

from services.files import erasure, jobs, leases, processing
from services.files.models import users
from services.files.storage import Storage
from shared.messaging import Envelope, Subscription
from shared.user_replica import USER_EVENTS, apply_user_event


def on_file_uploaded(envelope: Envelope, session: Session) -> None:
    """Queue processing of a newly uploaded file, unless it is gone or already done."""
    file_id = envelope.payload["file_id"]
    if processing.file_awaits_processing(session, file_id=uuid.UUID(file_id)):
        jobs.send_processing(file_id)


def on_file_processed(envelope: Envelope, _session: Session) -> None:
    """Queue the search indexing of a file processing found to be text."""
    results = envelope.payload.get("results") or {}
    if results.get("encoding") is not None:
        jobs.send_text_indexing(envelope.payload["file_id"])


def on_task_outputs_ready(envelope: Envelope, _session: Session) -> None:
    """Hand a finished task's outputs to a worker, which stores them and replies to the saga."""
    jobs.send_store_task_outputs(envelope.payload)


def on_user_event(envelope: Envelope, session: Session) -> None:
    """Keep this service's replica of a user (registered, deleted) in step with auth."""
    apply_user_event(session, users, envelope)


@lru_cache(maxsize=1)
def _storage() -> Storage:
    from services.files.config import FilesSettings
    from services.files.storage import storage_from_settings

    return storage_from_settings(FilesSettings())


def on_account_deletion_requested(envelope: Envelope, session: Session) -> None:
    """Delete every file and stored object of the user, then confirm to auth's saga."""
    erasure.erase_user_files(
        session,
        storage=_storage(),
        user_id=envelope.payload["user_id"],
        saga_id=envelope.payload["saga_id"],
    )


@lru_cache(maxsize=1)
def _lease_seconds() -> float:
    from services.files.config import FilesSettings

    return FilesSettings().INPUT_LEASE_SECONDS


def on_input_file_lease_requested(envelope: Envelope, session: Session) -> None:
    """Lease the file to the task, or refuse; reply to tasks' input-file saga either way."""
    payload = envelope.payload
    leases.lease_input_file(
        session,
        saga_id=payload["saga_id"],
        task_id=payload["task_id"],
        owner_id=payload["owner_id"],
        file_id=payload["file_id"],
        lease_seconds=_lease_seconds(),
    )


#: Task events after which no task of theirs reads its input file any more.
TASK_ENDED = [
    f"tasks.{name}"
    for name in (
        "TaskSucceeded",
        "TaskFailed",
        "TaskTimedOut",
        "TaskCancelled",
        "TaskSkipped",
        "TaskDeleted",
    )
]


def on_input_no_longer_needed(envelope: Envelope, session: Session) -> None:
    """Release the leases a task (or every task of a deleted account) held."""
    payload = envelope.payload
    if envelope.routing_key == "tasks.UserTasksDeleted":
        leases.release_owner_leases(session, owner_id=payload["user_id"])
    elif envelope.routing_key == "tasks.InputFileReleaseRequested":
        leases.release_lease(session, file_id=payload["file_id"], task_id=payload["task_id"])
    else:
        leases.release_task_leases(session, task_id=payload["task_id"])


SUBSCRIPTIONS = [
    Subscription("files.processing", ["files.FileUploaded"], on_file_uploaded),
    Subscription("files.search", ["files.FileProcessed"], on_file_processed),
    Subscription("files.users", list(USER_EVENTS), on_user_event),
    Subscription("files.task-outputs", ["tasks.TaskOutputsReady"], on_task_outputs_ready),
    Subscription(
        "files.account-deletion", ["auth.AccountDeletionRequested"], on_account_deletion_requested
    ),
    Subscription(
        "files.input-leases", ["tasks.InputFileLeaseRequested"], on_input_file_lease_requested
    ),
    Subscription(
        "files.input-lease-releases",
        [*TASK_ENDED, "tasks.UserTasksDeleted", "tasks.InputFileReleaseRequested"],
        on_input_no_longer_needed,
    ),
]
