"""Input leases: files lends an owner's PROCESSED file to one of their tasks, as its input.

Tasks' task_input_file saga asks (tasks.InputFileLeaseRequested); `lease_input_file` checks the
file and writes the lease and the reply (InputFileLeased or InputFileLeaseRefused) in the
consumer's transaction, idempotent on (file, task). A live lease keeps the file from deletion
(service.delete_file) and lets the task's start fetch its content (internal_api.py). It ends
when the task does (its terminal events, TaskDeleted, UserTasksDeleted), when the saga asks
(InputFileReleaseRequested), or when it expires (FILES_INPUT_LEASE_SECONDS; the reaper sweeps).
A released lease stays, released, for RELEASED_KEPT_SECONDS so that a lease request overtaken
by its release (they travel in different queues) is refused rather than granted anew.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from services.files.events import InputFileLeased, InputFileLeaseRefused
from services.files.models import SCHEMA, File, FileStatus, InputLease, users
from shared.db import add_events

log = logging.getLogger(__name__)

#: How long a released lease is remembered (its request may still be on its way).
RELEASED_KEPT_SECONDS = 3600
NOT_FOUND = "file not found"


def _uuid(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        return None


def _refusal(session: Session, *, file_id: uuid.UUID, task_id: uuid.UUID, owner_id: uuid.UUID):
    """Why the file cannot be leased to the task, or None (the file row is share-locked)."""
    file = session.scalar(select(File).where(File.id == file_id).with_for_update(read=True))
    # Someone else's file is refused as a missing one: its existence must not leak.
    if file is None or file.owner_id != owner_id:
        return NOT_FOUND, None
    deleted = session.scalar(select(users.c.deleted_at).where(users.c.id == owner_id))
    if deleted is not None:
        return "the file's owner is being deleted", file
    if file.status != FileStatus.PROCESSED.value:
        return f"file is {file.status}, not PROCESSED", file
    released = session.scalar(
        select(InputLease.released_at).where(
            InputLease.file_id == file_id, InputLease.task_id == task_id
        )
    )
    if released is not None:
        return "the lease was already released (the task ended or gave up)", file
    return None, file


def lease_input_file(
    session: Session,
    *,
    saga_id: str,
    task_id: str,
    owner_id: str,
    file_id: str,
    lease_seconds: float,
) -> bool:
    """Lease the file to the task and reply to the saga, in the caller's transaction.

    Refused (InputFileLeaseRefused with the reason) when the file is missing, someone else's,
    not PROCESSED or its owner is being deleted. Asking again renews a live lease. Returns
    whether the lease was granted.
    """
    file_key, task_key, owner_key = _uuid(file_id), _uuid(task_id), _uuid(owner_id)
    file = None
    if file_key is None or task_key is None or owner_key is None:
        reason = NOT_FOUND
    else:
        reason, file = _refusal(session, file_id=file_key, task_id=task_key, owner_id=owner_key)
    if reason is not None:
        log.info("input lease of file %s to task %s refused: %s", file_id, task_id, reason)
        reply = InputFileLeaseRefused(
            saga_id=saga_id, task_id=task_id, file_id=file_id, reason=reason
        )
        add_events(session, [reply], source=SCHEMA, schema=SCHEMA)
        return False
    expires = func.now() + timedelta(seconds=lease_seconds)
    session.execute(
        insert(InputLease)
        .values(file_id=file_key, task_id=task_key, owner_id=owner_key, expires_at=expires)
        .on_conflict_do_update(
            index_elements=[InputLease.file_id, InputLease.task_id],
            set_={"expires_at": expires},
            where=InputLease.released_at.is_(None),
        )
    )
    reply = InputFileLeased(
        saga_id=saga_id, task_id=task_id, file_id=file_id, filename=file.filename, size=file.size
    )
    add_events(session, [reply], source=SCHEMA, schema=SCHEMA)
    return True


def _released():
    return {
        "released_at": func.coalesce(InputLease.released_at, func.now()),
        "expires_at": func.least(
            InputLease.expires_at, func.now() + timedelta(seconds=RELEASED_KEPT_SECONDS)
        ),
    }


def release_task_leases(session: Session, *, task_id: str) -> int:
    """Release every lease of the task (it ended or was deleted); how many were live."""
    key = _uuid(task_id)
    if key is None:
        return 0
    return session.execute(
        update(InputLease)
        .where(InputLease.task_id == key, InputLease.released_at.is_(None))
        .values(**_released())
    ).rowcount


def release_owner_leases(session: Session, *, owner_id: str) -> int:
    """Release every lease of the owner's tasks (all deleted); how many were live."""
    key = _uuid(owner_id)
    if key is None:
        return 0
    return session.execute(
        update(InputLease)
        .where(InputLease.owner_id == key, InputLease.released_at.is_(None))
        .values(**_released())
    ).rowcount


def release_lease(session: Session, *, file_id: str, task_id: str) -> None:
    """Release the file's lease to the task, remembering the release if it was never granted."""
    file_key, task_key = _uuid(file_id), _uuid(task_id)
    if file_key is None or task_key is None:
        return
    remembered = func.now() + timedelta(seconds=RELEASED_KEPT_SECONDS)
    # From the file row: a file that is gone has no lease to keep or to refuse.
    session.execute(
        insert(InputLease)
        .from_select(
            ["file_id", "task_id", "owner_id", "expires_at", "released_at"],
            select(File.id, literal(task_key), File.owner_id, remembered, func.now()).where(
                File.id == file_key
            ),
        )
        .on_conflict_do_update(
            index_elements=[InputLease.file_id, InputLease.task_id], set_=_released()
        )
    )


def live_lease(session: Session, *, file_id: uuid.UUID) -> uuid.UUID | None:
    """The task the file is leased to now, if any."""
    return session.scalar(
        select(InputLease.task_id)
        .where(
            InputLease.file_id == file_id,
            InputLease.released_at.is_(None),
            InputLease.expires_at > func.now(),
        )
        .order_by(InputLease.created_at)
        .limit(1)
    )


def leased_file(session: Session, *, file_id: uuid.UUID, task_id: uuid.UUID) -> File | None:
    """The file, if it is leased to the task now."""
    return session.scalar(
        select(File)
        .join(InputLease, InputLease.file_id == File.id)
        .where(
            File.id == file_id,
            InputLease.task_id == task_id,
            InputLease.released_at.is_(None),
            InputLease.expires_at > func.now(),
        )
    )


def sweep_leases(session: Session) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Delete expired and long-released leases; return the (file, task) of those that expired.

    A lease that expires unreleased belonged to a task files never heard end (it vanished).
    """
    swept = session.execute(
        delete(InputLease)
        .where(InputLease.expires_at <= func.now())
        .returning(InputLease.file_id, InputLease.task_id, InputLease.released_at)
    ).all()
    expired = [(file_id, task_id) for file_id, task_id, released in swept if released is None]
    for file_id, task_id in expired:
        log.warning(
            "input lease of file %s to task %s expired: the task never ended here",
            file_id,
            task_id,
            extra={"file_id": str(file_id), "task_id": str(task_id)},
        )
    return expired
