"""Files use cases: upload, list, read, download and delete files.

Naming rules live in naming.py, processing (the claim/lease state machine and the reaper) in
processing.py, and the queries in repository.py.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from services.files import search as file_search
from services.files.events import FileDeleted, FileUploaded
from services.files.leases import leased_file, live_lease, sweep_leases
from services.files.models import File
from services.files.naming import clean_original_filename, normalize_content_type, sanitize_filename
from services.files.repository import FilesUnitOfWork
from services.files.storage import ObjectReader, Readable, Storage
from shared.pagination import KeysetCursor, Page, RankCursor, page_of

log = logging.getLogger(__name__)


class FileNotFound(Exception):
    """No such file, or it belongs to someone else (deliberately indistinguishable)."""


class FileLeased(Exception):
    """The file is leased to a task as its input: it cannot be deleted until the task ends."""

    def __init__(self, task_id: uuid.UUID) -> None:
        super().__init__(
            f"The file is the input of task {task_id}; delete it once that task has ended."
        )
        self.task_id = task_id


class FileNotLeased(Exception):
    """The file is not leased to that task (now)."""


class UploadTooLarge(Exception):
    """The file is larger than one upload may be."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"Files are limited to {limit} bytes.")
        self.limit = limit


class QuotaExceeded(Exception):
    """Storing the file would take its owner over their storage quota."""

    def __init__(self, *, quota: int, used: int) -> None:
        super().__init__(
            f"Storage quota exceeded: {used} of {quota} bytes are in use; "
            "delete files to make room."
        )
        self.quota = quota
        self.used = used


@dataclass(frozen=True)
class IncomingFile:
    """The file part of an upload: its client-side name, declared type and content stream."""

    filename: str
    content_type: str | None
    stream: Readable


class UploadBody(Protocol):
    """An upload request's body, read once from the start (multipart.MultipartUpload)."""

    #: The request's Content-Length, when it has one.
    declared_length: int | None
    #: Bytes of a valid body that are not file content, at most.
    overhead_allowance: int

    def open_file(self) -> IncomingFile:
        """Read up to the file's content and return it as a stream."""

    def finish(self) -> None:
        """Read what follows the file and check the body is complete."""


@dataclass(frozen=True)
class UploadLimits:
    """How large one file, and one owner's files together, may be."""

    max_bytes: int
    quota_bytes: int


@dataclass(frozen=True)
class FileView:
    """What callers may see of a file (and where its content is stored)."""

    id: uuid.UUID
    owner_id: uuid.UUID
    filename: str
    original_filename: str
    content_type: str
    size: int
    sha256: str
    status: str
    mime_type: str | None
    encoding: str | None
    line_count: int | None
    word_count: int | None
    error: str | None
    extra: dict[str, Any]
    created_at: datetime
    processed_at: datetime | None
    storage_key: str
    produced_by_task_id: uuid.UUID | None = None
    output_path: str | None = None

    @property
    def media_type(self) -> str:
        """The detected type once processed, the declared one until then."""
        return self.mime_type or self.content_type


class LimitReached(Exception):
    """A LimitedReader's stream went past its limit."""


class LimitedReader:
    """Passes a stream through, failing as soon as it yields more than `limit` bytes."""

    def __init__(self, stream: Readable, limit: int) -> None:
        self._stream = stream
        self._left = limit

    def read(self, size: int = -1, /) -> bytes:
        data = self._stream.read(size)
        self._left -= len(data)
        if self._left < 0:
            raise LimitReached()
        return data


def _view(file: File) -> FileView:
    return FileView(
        id=file.id,
        owner_id=file.owner_id,
        filename=file.filename,
        # Also rows stored before names were cleaned on intake.
        original_filename=clean_original_filename(file.original_filename),
        content_type=file.content_type,
        size=file.size,
        sha256=file.sha256,
        status=file.status,
        mime_type=file.mime_type,
        encoding=file.encoding,
        line_count=file.line_count,
        word_count=file.word_count,
        error=file.error,
        extra=dict(file.extra or {}),
        created_at=file.created_at,
        processed_at=file.processed_at,
        storage_key=file.storage_key,
        produced_by_task_id=file.produced_by_task_id,
        output_path=file.output_path,
    )


def _discard(storage: Storage, key: str) -> None:
    try:
        storage.delete(key)
    except Exception:  # noqa: BLE001 - the caller's own error matters more; the key is logged
        log.exception("could not delete stored object %s; it is orphaned", key)


def upload_file(
    uow: FilesUnitOfWork,
    *,
    storage: Storage,
    owner_id: uuid.UUID,
    body: UploadBody,
    limits: UploadLimits,
) -> FileView:
    """Stream a file into storage, then record it and FileUploaded in one transaction.

    Raises UploadTooLarge or QuotaExceeded, up front when the declared length already says so,
    otherwise as soon as the stream passes the limit, and StorageUnavailable when the store
    cannot be reached. Whatever fails, no stored object and no row are left behind.
    """
    with uow:
        used = uow.accounts.used_bytes(owner_id)
    remaining = max(limits.quota_bytes - used, 0)
    if body.declared_length is not None:
        at_least = body.declared_length - body.overhead_allowance
        if at_least > limits.max_bytes:
            raise UploadTooLarge(limits.max_bytes)
        if at_least > remaining:
            raise QuotaExceeded(quota=limits.quota_bytes, used=used)
    incoming = body.open_file()
    try:
        stored = storage.put(LimitedReader(incoming.stream, min(limits.max_bytes, remaining)))
    except LimitReached:
        if limits.max_bytes <= remaining:
            raise UploadTooLarge(limits.max_bytes) from None
        raise QuotaExceeded(quota=limits.quota_bytes, used=used) from None
    try:
        body.finish()
        with uow:
            if not uow.accounts.charge(
                owner_id=owner_id, size=stored.size, quota=limits.quota_bytes
            ):
                raise QuotaExceeded(
                    quota=limits.quota_bytes, used=uow.accounts.used_bytes(owner_id)
                )
            file = File(
                id=uuid.uuid4(),
                owner_id=owner_id,
                filename=sanitize_filename(incoming.filename),
                original_filename=clean_original_filename(incoming.filename),
                content_type=normalize_content_type(incoming.content_type),
                size=stored.size,
                storage_key=stored.key,
                sha256=stored.sha256,
            )
            uow.files.add(file)
            uow.flush()
            uow.add_event(
                FileUploaded(
                    file_id=str(file.id),
                    owner_id=str(owner_id),
                    filename=file.filename,
                    size=file.size,
                    content_type=file.content_type,
                    sha256=file.sha256,
                )
            )
            uow.commit()
            return _view(file)
    except BaseException:
        _discard(storage, stored.key)
        raise


def get_file(uow: FilesUnitOfWork, *, owner_id: uuid.UUID, file_id: uuid.UUID) -> FileView:
    """One of the owner's files; raises FileNotFound."""
    with uow:
        file = uow.files.get_owned(owner_id=owner_id, file_id=file_id)
        if file is None:
            raise FileNotFound(str(file_id))
        return _view(file)


def list_files(
    uow: FilesUnitOfWork,
    *,
    owner_id: uuid.UUID,
    first: int,
    after: KeysetCursor | None = None,
    produced_by_task: uuid.UUID | None = None,
) -> Page[FileView]:
    """The owner's files newest first, `first` at a time after `after` (keyset pagination).

    `produced_by_task`: only the outputs of that task (the owner's files only, all the same).
    """
    with uow:
        rows = [
            _view(row)
            for row in uow.files.newest_first(
                owner_id=owner_id, first=first, after=after, produced_by_task=produced_by_task
            )
        ]
        total = uow.files.count_owned(owner_id, produced_by_task=produced_by_task)
    return page_of(rows, first=first, total_count=total, node=lambda view: view)


def search_files(
    uow: FilesUnitOfWork,
    *,
    owner_id: uuid.UUID,
    search: str,
    first: int,
    after: RankCursor | None = None,
) -> Page[FileView]:
    """The owner's files whose name or text matches `search`, best match first, paged."""
    with uow:
        rows = file_search.best_matches(
            uow.session, owner_id=owner_id, search=search, first=first, after=after
        )
        total = file_search.count_matches(uow.session, owner_id=owner_id, search=search)
        ranked = [(_view(file), rank) for file, rank in rows]
    return page_of(
        ranked,
        first=first,
        total_count=total,
        node=lambda pair: pair[0],
        cursor=lambda pair: RankCursor(pair[1], pair[0].id),
    )


def open_file_content(
    *, storage: Storage, file: FileView, start: int = 0, length: int | None = None
) -> ObjectReader:
    """The file's content, or `length` bytes of it from `start`; the caller closes it."""
    return storage.open(file.storage_key, start=start, length=length)


def leased_input_file(uow: FilesUnitOfWork, *, file_id: uuid.UUID, task_id: uuid.UUID) -> FileView:
    """The file leased to the task now (its input); raises FileNotFound or FileNotLeased."""
    with uow:
        file = leased_file(uow.session, file_id=file_id, task_id=task_id)
        if file is None:
            if uow.files.status(file_id) is None:
                raise FileNotFound(str(file_id))
            raise FileNotLeased(str(task_id))
        return _view(file)


def sweep_input_leases(uow: FilesUnitOfWork) -> int:
    """Drop expired input leases (logged) and long-released ones; how many had expired."""
    with uow:
        expired = sweep_leases(uow.session)
        uow.commit()
    return len(expired)


def delete_file(
    uow: FilesUnitOfWork, *, storage: Storage, owner_id: uuid.UUID, file_id: uuid.UUID
) -> None:
    """Delete the row (raising FileDeleted), then the stored content.

    Raises FileNotFound, or FileLeased while a task holds it as its input.
    """
    with uow:
        # Locked first: a lease being granted share-locks the row, so either it is seen here
        # or it finds the file gone.
        file = uow.files.get_for_update(file_id)
        if file is None or file.owner_id != owner_id:
            raise FileNotFound(str(file_id))
        task_id = live_lease(uow.session, file_id=file_id)
        if task_id is not None:
            raise FileLeased(task_id)
        deleted = uow.files.delete_owned(owner_id=owner_id, file_id=file_id)
        if deleted is None:
            raise FileNotFound(str(file_id))
        uow.accounts.refund(owner_id=owner_id, size=deleted.size)
        uow.add_event(
            FileDeleted(
                file_id=str(file_id),
                owner_id=str(owner_id),
                filename=deleted.filename,
                size=deleted.size,
            )
        )
        uow.commit()
    # After the commit: a crash in between leaves an unreferenced object, never a dangling row.
    _discard(storage, deleted.storage_key)
