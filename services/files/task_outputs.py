"""Storing a finished task's outputs as files of its owner (files' part of the task_outputs saga).

tasks.TaskOutputsReady reaches the consumer (handlers.py), which hands the pull to a Celery job
(worker.py): the job calls `store_task_outputs`, which pulls each output from the tasks service
(tasks_client.py), stores it like an upload of the owner and replies files.TaskOutputsStored,
or files.TaskOutputsRefused when the owner is deleted (or being deleted) or has no room left.

Idempotent, so a redelivered job, a re-asking saga or a worker killed mid-pull never duplicates
nor loses an output: a file row is unique by (produced_by_task_id, output_path); an output
already stored is skipped; one stored twice by racing jobs keeps the first row and discards the
second object. Each file is committed with its FileUploaded, so it is processed like any upload.
"""

from __future__ import annotations

import logging
import mimetypes
import posixpath
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from services.files.events import FileUploaded, TaskOutputsRefused, TaskOutputsStored
from services.files.models import File, users
from services.files.naming import clean_original_filename, sanitize_filename
from services.files.repository import FilesUnitOfWork
from services.files.service import LimitedReader, LimitReached
from services.files.storage import Storage
from services.files.tasks_client import OutputMissing, TaskOutputSource

log = logging.getLogger(__name__)


class _Refused(Exception):
    """The outputs will not be stored; the reason goes back to the saga."""


def _owner_deleted(uow: FilesUnitOfWork, owner_id: uuid.UUID) -> bool:
    """Whether the replica says the owner is deleted; locks their row until the commit.

    The account-deletion erasure marks the replica first (erasure.py), so a store either
    commits before the erasure deletes the owner's files, or sees the owner deleted.
    """
    uow.session.execute(insert(users).values(id=owner_id).on_conflict_do_nothing())
    deleted_at = uow.session.execute(
        select(users.c.deleted_at).where(users.c.id == owner_id).with_for_update(read=True)
    ).scalar_one()
    return deleted_at is not None


def _stored_id(uow: FilesUnitOfWork, task_id: uuid.UUID, path: str) -> uuid.UUID | None:
    return uow.session.scalar(
        select(File.id).where(File.produced_by_task_id == task_id, File.output_path == path)
    )


def _content_type(path: str) -> str:
    guessed, _ = mimetypes.guess_type(posixpath.basename(path), strict=False)
    return guessed or "application/octet-stream"


def _store_one(
    uow_factory: Callable[[], FilesUnitOfWork],
    *,
    storage: Storage,
    source: TaskOutputSource,
    task_id: uuid.UUID,
    owner_id: uuid.UUID,
    path: str,
    quota_bytes: int,
    max_bytes: int,
) -> uuid.UUID:
    """Store one output (unless it is already); its file id. Raises _Refused."""
    with uow_factory() as uow:
        existing = _stored_id(uow, task_id, path)
        if existing is not None:
            return existing
        if _owner_deleted(uow, owner_id):
            raise _Refused("the task's owner is deleted")
    try:
        with source.open(str(task_id), path) as stream:
            stored = storage.put(LimitedReader(stream, max_bytes))
    except OutputMissing:
        raise _Refused(f"output {path!r} is gone from the task") from None
    except LimitReached:
        raise _Refused(f"output {path!r} is larger than FILES_MAX_UPLOAD_BYTES") from None
    try:
        with uow_factory() as uow:
            if _owner_deleted(uow, owner_id):
                raise _Refused("the task's owner is deleted")
            file_id = uuid.uuid4()
            name = posixpath.basename(path)
            inserted = uow.session.execute(
                insert(File)
                .values(
                    id=file_id,
                    owner_id=owner_id,
                    filename=sanitize_filename(name),
                    original_filename=clean_original_filename(path),
                    content_type=_content_type(path),
                    size=stored.size,
                    storage_key=stored.key,
                    sha256=stored.sha256,
                    produced_by_task_id=task_id,
                    output_path=path,
                )
                .on_conflict_do_nothing(constraint="uq_files_task_output")
                .returning(File.id, File.filename)
            ).first()
            if inserted is None:
                # A racing job stored it first: keep its row, drop this copy.
                storage.delete(stored.key)
                return _stored_id(uow, task_id, path)
            if not uow.accounts.charge(owner_id=owner_id, size=stored.size, quota=quota_bytes):
                raise _Refused(f"storing {path!r} would exceed the owner's storage quota")
            uow.add_event(
                FileUploaded(
                    file_id=str(file_id),
                    owner_id=str(owner_id),
                    filename=inserted.filename,
                    size=stored.size,
                    content_type=_content_type(path),
                    sha256=stored.sha256,
                )
            )
            uow.commit()
            return file_id
    except BaseException:
        try:
            storage.delete(stored.key)
        except Exception:  # noqa: BLE001 - the original error matters more; the key is logged
            log.exception("could not delete stored object %s; it is orphaned", stored.key)
        raise


def store_task_outputs(
    uow_factory: Callable[[], FilesUnitOfWork],
    *,
    storage: Storage,
    source: TaskOutputSource,
    saga_id: str,
    task_id: str,
    owner_id: str,
    outputs: Sequence[Mapping[str, Any]],
    quota_bytes: int,
    max_bytes: int,
) -> str:
    """Store every output of the task as a file of its owner, then reply to the saga.

    Returns "stored" or "refused". Raises tasks_client.TasksUnavailable or
    storage.StorageUnavailable for the job to retry (what was stored stays stored).
    """
    task_key, owner_key = uuid.UUID(task_id), uuid.UUID(owner_id)
    files: list[dict[str, str]] = []
    try:
        for output in outputs:
            file_id = _store_one(
                uow_factory,
                storage=storage,
                source=source,
                task_id=task_key,
                owner_id=owner_key,
                path=str(output["path"]),
                quota_bytes=quota_bytes,
                max_bytes=max_bytes,
            )
            files.append({"path": str(output["path"]), "file_id": str(file_id)})
    except _Refused as refused:
        log.info("task %s: outputs refused: %s", task_id, refused, extra={"saga_id": saga_id})
        with uow_factory() as uow:
            uow.add_event(TaskOutputsRefused(saga_id=saga_id, task_id=task_id, reason=str(refused)))
            uow.commit()
        return "refused"
    with uow_factory() as uow:
        uow.add_event(TaskOutputsStored(saga_id=saga_id, task_id=task_id, files=files))
        uow.commit()
    log.info("task %s: %d outputs stored", task_id, len(files), extra={"saga_id": saga_id})
    return "stored"
