"""The files service's repositories, and the unit of work that carries them as `uow.files`.

cosmicpython's pattern: use cases and processing ask `uow.files.get_owned(...)` or
`uow.accounts.charge(...)` and never build SQL themselves; every query they repeat lives here once.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from services.files.models import File, FileStatus, StorageAccount
from shared.db import UnitOfWork
from shared.pagination import KeysetCursor, newest_first_page

_REQUEUE = text(
    "WITH due AS ("
    " SELECT id FROM files"
    " WHERE (status = 'PROCESSING' AND lease_expires_at < now())"
    " OR (status = 'UPLOADED' AND coalesce(lease_expires_at,"
    " created_at + make_interval(secs => :stale)) < now())"
    " ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
    " UPDATE files AS f SET processing_token = NULL,"
    " lease_expires_at = now() + make_interval(secs =>"
    " CASE WHEN f.status = 'PROCESSING' THEN :lease ELSE :stale END)"
    " FROM due WHERE f.id = due.id RETURNING f.id"
)


class FileRepository:
    """Files by id, by owner, and under a processing claim, in one session's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, file: File) -> None:
        """Insert a new file (written at the next flush or commit)."""
        self.session.add(file)

    def get(self, file_id: uuid.UUID) -> File | None:
        """The file, or None when it does not exist."""
        return self.session.get(File, file_id)

    def get_owned(self, *, owner_id: uuid.UUID, file_id: uuid.UUID) -> File | None:
        """The file if it exists and belongs to `owner_id`; None otherwise, whichever it is."""
        file = self.session.get(File, file_id)
        return file if file is not None and file.owner_id == owner_id else None

    def get_for_update(self, file_id: uuid.UUID) -> File | None:
        """The file, row-locked until the transaction ends (processing's state changes)."""
        return self.session.scalars(
            select(File).where(File.id == file_id).with_for_update()
        ).first()

    def status(self, file_id: uuid.UUID) -> str | None:
        """The file's status, or None when it does not exist."""
        return self.session.scalar(select(File.status).where(File.id == file_id))

    def newest_first(
        self,
        *,
        owner_id: uuid.UUID,
        first: int,
        after: KeysetCursor | None,
        produced_by_task: uuid.UUID | None = None,
    ) -> list[File]:
        """Up to `first` + 1 of the owner's files after the cursor (the extra one: a next page)."""
        owned = select(File).where(File.owner_id == owner_id)
        if produced_by_task is not None:
            owned = owned.where(File.produced_by_task_id == produced_by_task)
        query = newest_first_page(owned, File.created_at, File.id, first=first, after=after)
        return list(self.session.scalars(query))

    def count_owned(self, owner_id: uuid.UUID, *, produced_by_task: uuid.UUID | None = None) -> int:
        """How many files the owner has (of those `produced_by_task`, when given)."""
        query = select(func.count()).select_from(File).where(File.owner_id == owner_id)
        if produced_by_task is not None:
            query = query.where(File.produced_by_task_id == produced_by_task)
        count = self.session.scalar(query)
        return count or 0

    def delete_owned(self, *, owner_id: uuid.UUID, file_id: uuid.UUID) -> Row[Any] | None:
        """Delete the owner's file; its (storage_key, size, filename), or None if there was none."""
        return self.session.execute(
            delete(File)
            .where(File.id == file_id, File.owner_id == owner_id)
            .returning(File.storage_key, File.size, File.filename)
        ).first()

    def database_now(self) -> datetime:
        """The transaction's timestamp: every worker measures leases by the database's clock."""
        return self.session.scalar(select(func.now()))

    def renew_claim(self, *, file_id: uuid.UUID, token: uuid.UUID, lease_seconds: float) -> bool:
        """Extend a PROCESSING file's lease if `token` still holds it; whether it did."""
        renewed = self.session.execute(
            update(File)
            .where(
                File.id == file_id,
                File.processing_token == token,
                File.status == FileStatus.PROCESSING.value,
            )
            .values(lease_expires_at=func.now() + timedelta(seconds=lease_seconds))
        ).rowcount
        return bool(renewed)

    def release_claim(self, *, file_id: uuid.UUID, token: uuid.UUID, lease_seconds: float) -> None:
        """Void `token`'s claim and take back its attempt; the reaper looks again after a lease."""
        self.session.execute(
            update(File)
            .where(File.id == file_id, File.processing_token == token)
            .values(
                processing_token=None,
                lease_expires_at=func.now() + timedelta(seconds=lease_seconds),
                attempts=File.attempts - 1,
            )
        )

    def requeue_stalled(
        self, *, lease_seconds: float, stale_upload_seconds: float, limit: int
    ) -> list[uuid.UUID]:
        """Lapsed claims and long-waiting uploads; each is voided and pushed back a lease.

        Pushed back a lease (or the stale period for an upload), so the next sweep does not
        return it again.
        """
        found = self.session.scalars(
            _REQUEUE, {"lease": lease_seconds, "stale": stale_upload_seconds, "limit": limit}
        )
        return list(found)


class StorageAccountRepository:
    """Bytes each owner has stored, charged and refunded atomically against their quota."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def used_bytes(self, owner_id: uuid.UUID) -> int:
        """Bytes the owner's files take now."""
        used = self.session.scalar(
            select(StorageAccount.used_bytes).where(StorageAccount.owner_id == owner_id)
        )
        return used or 0

    def charge(self, *, owner_id: uuid.UUID, size: int, quota: int) -> bool:
        """Add `size` to the owner's usage unless that passes the quota; atomic."""
        if size > quota:
            return False
        statement = insert(StorageAccount).values(owner_id=owner_id, used_bytes=size)
        statement = statement.on_conflict_do_update(
            index_elements=[StorageAccount.owner_id],
            set_={"used_bytes": StorageAccount.used_bytes + size, "updated_at": func.now()},
            where=StorageAccount.used_bytes + size <= quota,
        ).returning(StorageAccount.used_bytes)
        return self.session.execute(statement).first() is not None

    def refund(self, *, owner_id: uuid.UUID, size: int) -> None:
        """Take `size` off the owner's usage (a deleted file)."""
        self.session.execute(
            update(StorageAccount)
            .where(StorageAccount.owner_id == owner_id)
            .values(used_bytes=StorageAccount.used_bytes - size, updated_at=func.now())
        )


class FilesUnitOfWork(UnitOfWork):
    """A UnitOfWork whose transaction comes with the files service's repositories."""

    files: FileRepository
    accounts: StorageAccountRepository

    def __enter__(self) -> FilesUnitOfWork:
        super().__enter__()
        self.files = FileRepository(self.session)
        self.accounts = StorageAccountRepository(self.session)
        return self
