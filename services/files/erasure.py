"""Removing everything the files service holds of a user, for auth's account-deletion saga."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.files.events import UserFilesDeleted
from services.files.models import SCHEMA, File, StorageAccount, users
from services.files.storage import Storage
from shared.db import add_events
from shared.user_replica import record_user_deleted


def erase_user_files(session: Session, *, storage: Storage, user_id: str, saga_id: str) -> int:
    """Delete the user's stored objects, then their file rows and usage; confirm to the saga.

    Objects go first, inside the caller's transaction: a crash before the commit leaves rows
    whose objects may be gone, and the redelivered request deletes them again (deleting a
    missing object is no error), so nothing is ever left behind. Returns how many files went.
    """
    owner_id = uuid.UUID(user_id)
    # Marked first (the account never comes back): a task output being stored for the user
    # either commits before the files are read below, or sees this and is refused.
    record_user_deleted(session, users, user_id=owner_id, deleted_at=datetime.now(UTC))
    keys = list(
        session.scalars(select(File.storage_key).where(File.owner_id == owner_id).with_for_update())
    )
    for key in keys:
        storage.delete(key)
    session.execute(delete(File).where(File.owner_id == owner_id))
    session.execute(delete(StorageAccount).where(StorageAccount.owner_id == owner_id))
    add_events(
        session,
        [UserFilesDeleted(user_id=user_id, saga_id=saga_id, files_deleted=len(keys))],
        source=SCHEMA,
        schema=SCHEMA,
    )
    return len(keys)
