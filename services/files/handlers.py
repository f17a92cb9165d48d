"""Reactions to the files service's own events: start processing, then notify the owner.

Both queue a Celery task from the consumer's inbox transaction. The task is sent (and confirmed
by the broker) before that transaction commits, so a crash in between sends it again on
redelivery rather than never: tasks are idempotent, a lost one is not.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from services.files import service
from shared.messaging import Envelope, Subscription


def _tasks():
    # The worker module builds the app and its Celery app; only the consumer process needs it.
    from services.files import worker

    return worker


def on_file_uploaded(envelope: Envelope, session: Session) -> None:
    """Queue processing of a newly uploaded file, unless it is gone or already done."""
    file_id = envelope.payload["file_id"]
    if service.file_awaits_processing(session, file_id=uuid.UUID(file_id)):
        _tasks().process_file.delay(file_id)


def on_processing_finished(envelope: Envelope, _session: Session) -> None:
    """Queue the owner's notification that their file is PROCESSED or FAILED."""
    payload = envelope.payload
    _tasks().notify_file_status.delay(
        payload["owner_id"], payload["file_id"], payload["filename"], payload["status"]
    )


SUBSCRIPTIONS = [
    Subscription("files.processing", ["files.FileUploaded"], on_file_uploaded),
    Subscription(
        "files.notifications",
        ["files.FileProcessed", "files.FileProcessingFailed"],
        on_processing_finished,
    ),
]
