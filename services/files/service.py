"""Files use cases: upload, list, read, download, delete and process files; notify their owners."""

from __future__ import annotations

import enum
import logging
import re
import time
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from services.files.analysis import ContentReport, ContentUnreadable, ProcessorFactory, scan_content
from services.files.events import (
    FileDeleted,
    FileProcessed,
    FileProcessingFailed,
    FileProcessingStarted,
    FileUploaded,
)
from services.files.models import File, FileStatus, StorageAccount
from services.files.storage import ObjectMissing, ObjectReader, Readable, Storage
from shared.db import UnitOfWork
from shared.notifications import Notification, Notifier
from shared.pagination import KeysetCursor, newest_first_page

log = logging.getLogger(__name__)

MAX_FILENAME_BYTES = 255
MAX_ORIGINAL_FILENAME_CHARS = 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"
FALLBACK_FILENAME = "file"


class FileNotFound(Exception):
    """No such file, or it belongs to someone else (deliberately indistinguishable)."""


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

    @property
    def media_type(self) -> str:
        """The detected type once processed, the declared one until then."""
        return self.mime_type or self.content_type


@dataclass(frozen=True)
class PageInfo:
    """Where a page ends and whether another follows."""

    has_next_page: bool
    end_cursor: KeysetCursor | None


@dataclass(frozen=True)
class FileEdge:
    """A file and the cursor that resumes the list after it."""

    cursor: KeysetCursor
    node: FileView


@dataclass(frozen=True)
class FilePage:
    """One page of an owner's files, newest first."""

    edges: list[FileEdge]
    total_count: int
    page_info: PageInfo


_WINDOWS_DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"{p}{n}" for p in ("COM", "LPT") for n in range(1, 10)}
)
_UNSAFE_CHARACTERS = frozenset('<>:"|?*')
_MEDIA_TYPE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
)


def _truncate_utf8(text: str, limit: int) -> str:
    return text.encode()[:limit].decode(errors="ignore")


def sanitize_filename(raw: str) -> str:
    """A name safe to show and to offer for download: no path, no control characters, bounded."""
    name = unicodedata.normalize("NFC", raw)
    # Browsers on Windows have sent whole client paths; only the last component is the name.
    name = re.split(r"[/\\]", name)[-1]
    kept = []
    for char in name:
        category = unicodedata.category(char)
        if category in {"Cc", "Zl", "Zp"} or char.isspace():
            kept.append(" ")
        elif category in {"Cf", "Cs"}:
            # Format characters include bidi overrides that make "txt.exe" read as "exe.txt".
            continue
        elif char in _UNSAFE_CHARACTERS:
            kept.append("_")
        else:
            kept.append(char)
    name = " ".join("".join(kept).split()).strip(" .")
    if name.split(".")[0].strip().upper() in _WINDOWS_DEVICE_NAMES:
        name = "_" + name
    if len(name.encode()) > MAX_FILENAME_BYTES:
        stem, dot, extension = name.rpartition(".")
        if dot and stem and 0 < len(extension.encode()) <= 16:
            stem = _truncate_utf8(stem, MAX_FILENAME_BYTES - len(extension.encode()) - 1)
            name = stem.rstrip(" .") + "." + extension
        else:
            name = _truncate_utf8(name, MAX_FILENAME_BYTES).rstrip(" .")
    return name or FALLBACK_FILENAME


def clean_original_filename(raw: str) -> str:
    """The client's name as sent, minus what PostgreSQL cannot store, at most 1024 characters."""
    text = raw.replace("\x00", "").encode("utf-8", errors="ignore").decode()
    return text[:MAX_ORIGINAL_FILENAME_CHARS]


def normalize_content_type(raw: str | None) -> str:
    """The declared `type/subtype` in lower case, without parameters; octet-stream otherwise."""
    media_type = (raw or "").split(";", 1)[0].strip().lower()
    return media_type if _MEDIA_TYPE.fullmatch(media_type) else DEFAULT_CONTENT_TYPE


class _LimitReached(Exception):
    pass


class _LimitedReader:
    """Passes a stream through, failing as soon as it yields more than `limit` bytes."""

    def __init__(self, stream: Readable, limit: int) -> None:
        self._stream = stream
        self._left = limit

    def read(self, size: int = -1, /) -> bytes:
        data = self._stream.read(size)
        self._left -= len(data)
        if self._left < 0:
            raise _LimitReached()
        return data


def _view(file: File) -> FileView:
    return FileView(
        id=file.id,
        owner_id=file.owner_id,
        filename=file.filename,
        original_filename=file.original_filename,
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
    )


def _used_bytes(uow: UnitOfWork, owner_id: uuid.UUID) -> int:
    used = uow.session.scalar(
        select(StorageAccount.used_bytes).where(StorageAccount.owner_id == owner_id)
    )
    return used or 0


def _charge(uow: UnitOfWork, owner_id: uuid.UUID, size: int, quota: int) -> bool:
    """Add `size` to the owner's usage unless that passes the quota; atomic under concurrency."""
    if size > quota:
        return False
    statement = insert(StorageAccount).values(owner_id=owner_id, used_bytes=size)
    statement = statement.on_conflict_do_update(
        index_elements=[StorageAccount.owner_id],
        set_={"used_bytes": StorageAccount.used_bytes + size, "updated_at": func.now()},
        where=StorageAccount.used_bytes + size <= quota,
    ).returning(StorageAccount.used_bytes)
    return uow.session.execute(statement).first() is not None


def _discard(storage: Storage, key: str) -> None:
    try:
        storage.delete(key)
    except Exception:  # noqa: BLE001 - the caller's own error matters more; the key is logged
        log.exception("could not delete stored object %s; it is orphaned", key)


def upload_file(
    uow: UnitOfWork,
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
        used = _used_bytes(uow, owner_id)
    remaining = max(limits.quota_bytes - used, 0)
    if body.declared_length is not None:
        at_least = body.declared_length - body.overhead_allowance
        if at_least > limits.max_bytes:
            raise UploadTooLarge(limits.max_bytes)
        if at_least > remaining:
            raise QuotaExceeded(quota=limits.quota_bytes, used=used)
    incoming = body.open_file()
    try:
        stored = storage.put(_LimitedReader(incoming.stream, min(limits.max_bytes, remaining)))
    except _LimitReached:
        if limits.max_bytes <= remaining:
            raise UploadTooLarge(limits.max_bytes) from None
        raise QuotaExceeded(quota=limits.quota_bytes, used=used) from None
    try:
        body.finish()
        with uow:
            if not _charge(uow, owner_id, stored.size, limits.quota_bytes):
                raise QuotaExceeded(quota=limits.quota_bytes, used=_used_bytes(uow, owner_id))
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
            uow.session.add(file)
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


def get_file(uow: UnitOfWork, *, owner_id: uuid.UUID, file_id: uuid.UUID) -> FileView:
    """One of the owner's files; raises FileNotFound."""
    with uow:
        file = uow.session.get(File, file_id)
        if file is None or file.owner_id != owner_id:
            raise FileNotFound(str(file_id))
        return _view(file)


def list_files(
    uow: UnitOfWork, *, owner_id: uuid.UUID, first: int, after: KeysetCursor | None = None
) -> FilePage:
    """The owner's files newest first, `first` at a time after `after` (keyset pagination)."""
    owned = select(File).where(File.owner_id == owner_id)
    query = newest_first_page(owned, File.created_at, File.id, first=first, after=after)
    with uow:
        rows = [_view(row) for row in uow.session.scalars(query)]
        total = uow.session.scalar(
            select(func.count()).select_from(File).where(File.owner_id == owner_id)
        )
    edges = [FileEdge(KeysetCursor.of(view), view) for view in rows[:first]]
    return FilePage(
        edges=edges,
        total_count=total or 0,
        page_info=PageInfo(
            has_next_page=len(rows) > first, end_cursor=edges[-1].cursor if edges else None
        ),
    )


def open_file_content(
    *, storage: Storage, file: FileView, start: int = 0, length: int | None = None
) -> ObjectReader:
    """The file's content, or `length` bytes of it from `start`; the caller closes it."""
    return storage.open(file.storage_key, start=start, length=length)


def delete_file(
    uow: UnitOfWork, *, storage: Storage, owner_id: uuid.UUID, file_id: uuid.UUID
) -> None:
    """Delete the row (raising FileDeleted), then the stored content; raises FileNotFound."""
    with uow:
        deleted = uow.session.execute(
            delete(File)
            .where(File.id == file_id, File.owner_id == owner_id)
            .returning(File.storage_key, File.size, File.filename)
        ).first()
        if deleted is None:
            raise FileNotFound(str(file_id))
        uow.session.execute(
            update(StorageAccount)
            .where(StorageAccount.owner_id == owner_id)
            .values(used_bytes=StorageAccount.used_bytes - deleted.size, updated_at=func.now())
        )
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


class FileBusy(Exception):
    """Another worker holds a live claim on the file; try again once it may have lapsed."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"another worker is processing the file; retry in {retry_after:.1f}s")
        self.retry_after = retry_after


class ProcessingUnavailable(Exception):
    """Storage or database cannot be reached now; processing is worth retrying later."""


class ProcessingOutcome(enum.StrEnum):
    """What one call of process_file() did."""

    PROCESSED = "processed"
    FAILED = "failed"
    #: The file was already PROCESSED or FAILED: nothing to do.
    ALREADY_DONE = "already_done"
    #: The file was deleted.
    GONE = "gone"
    #: The claim lapsed and another worker took the file over (or it was deleted meanwhile).
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class ProcessingPolicy:
    """How processing claims files and what it computes."""

    lease_seconds: float
    max_attempts: int
    processors: Mapping[str, ProcessorFactory] = field(default_factory=dict)


@dataclass(frozen=True)
class _Claim:
    file_id: uuid.UUID
    token: uuid.UUID
    filename: str
    content_type: str
    size: int
    sha256: str
    storage_key: str


class _ClaimLost(Exception):
    pass


class _StoredContentMissing(Exception):
    pass


def _transient_database_error(exc: DBAPIError) -> bool:
    return isinstance(exc, OperationalError | InterfaceError) or bool(exc.connection_invalidated)


def _now(uow: UnitOfWork) -> datetime:
    """The transaction's timestamp: every worker measures leases by the database's clock."""
    return uow.session.scalar(select(func.now()))


def _locked_file(uow: UnitOfWork, file_id: uuid.UUID) -> File | None:
    return uow.session.scalars(select(File).where(File.id == file_id).with_for_update()).first()


def _snapshot(file: File) -> dict[str, Any]:
    """The file as the processing events carry it (what the gateway's File type shows)."""
    results = None
    if file.status == FileStatus.PROCESSED:
        results = {
            "mime_type": file.mime_type,
            "encoding": file.encoding,
            "line_count": file.line_count,
            "word_count": file.word_count,
            "extra": dict(file.extra or {}),
        }
    return {
        "file_id": str(file.id),
        "owner_id": str(file.owner_id),
        "filename": file.filename,
        "content_type": file.content_type,
        "size": file.size,
        "sha256": file.sha256,
        "status": file.status,
        "created_at": file.created_at.isoformat(),
        "processed_at": file.processed_at.isoformat() if file.processed_at else None,
        "results": results,
        "error": file.error,
    }


def _record_failure(uow: UnitOfWork, file: File, error: str) -> None:
    """Mark a locked file FAILED with a readable error, raising FileProcessingFailed."""
    file.status = FileStatus.FAILED.value
    file.error = error
    file.processed_at = _now(uow)
    file.processing_token = None
    file.lease_expires_at = None
    uow.flush()
    uow.add_event(FileProcessingFailed(**_snapshot(file)))


def _claim(
    uow: UnitOfWork, *, file_id: uuid.UUID, policy: ProcessingPolicy
) -> _Claim | ProcessingOutcome:
    """Take the file for processing (UPLOADED or a lapsed claim -> PROCESSING) under a new token."""
    with uow:
        file = _locked_file(uow, file_id)
        if file is None:
            return ProcessingOutcome.GONE
        if file.status in (FileStatus.PROCESSED, FileStatus.FAILED):
            return ProcessingOutcome.ALREADY_DONE
        now = _now(uow)
        if (
            file.status == FileStatus.PROCESSING
            and file.processing_token is not None
            and file.lease_expires_at is not None
            and file.lease_expires_at > now
        ):
            raise FileBusy((file.lease_expires_at - now).total_seconds())
        if file.attempts >= policy.max_attempts:
            _record_failure(
                uow,
                file,
                f"Processing was started {file.attempts} times and never finished: the worker "
                "stopped each time, or storage or the database stayed unreachable.",
            )
            uow.commit()
            return ProcessingOutcome.FAILED
        started = file.status == FileStatus.UPLOADED
        file.status = FileStatus.PROCESSING.value
        file.processing_token = uuid.uuid4()
        file.lease_expires_at = now + timedelta(seconds=policy.lease_seconds)
        file.attempts += 1
        uow.flush()
        if started:
            uow.add_event(FileProcessingStarted(**_snapshot(file)))
        claim = _Claim(
            file_id=file.id,
            token=file.processing_token,
            filename=file.filename,
            content_type=file.content_type,
            size=file.size,
            sha256=file.sha256,
            storage_key=file.storage_key,
        )
        uow.commit()
        return claim


def _renew(uow: UnitOfWork, claim: _Claim, lease_seconds: float) -> None:
    """Extend the claim's lease; _ClaimLost when it was taken over or the file deleted."""
    with uow:
        renewed = uow.session.execute(
            update(File)
            .where(
                File.id == claim.file_id,
                File.processing_token == claim.token,
                File.status == FileStatus.PROCESSING.value,
            )
            .values(lease_expires_at=func.now() + timedelta(seconds=lease_seconds))
        ).rowcount
        uow.commit()
    if not renewed:
        raise _ClaimLost()


def _release(uow: UnitOfWork, claim: _Claim, lease_seconds: float) -> None:
    """Give the claim up so a retry may take the file at once (the reaper waits a lease)."""
    try:
        with uow:
            uow.session.execute(
                update(File)
                .where(File.id == claim.file_id, File.processing_token == claim.token)
                .values(
                    processing_token=None,
                    lease_expires_at=func.now() + timedelta(seconds=lease_seconds),
                    # An attempt that ended on its own (a transient outage) is not one of the
                    # "started but never finished" attempts max_attempts guards against.
                    attempts=File.attempts - 1,
                )
            )
            uow.commit()
    except DBAPIError:
        log.warning("could not release the claim on file %s; it lapses", claim.file_id)


def _scan(
    uow: UnitOfWork, *, storage: Storage, claim: _Claim, policy: ProcessingPolicy
) -> ContentReport:
    renew_every = policy.lease_seconds / 3
    next_renewal = time.monotonic() + renew_every

    def renew_when_due() -> None:
        nonlocal next_renewal
        if time.monotonic() >= next_renewal:
            _renew(uow, claim, policy.lease_seconds)
            next_renewal = time.monotonic() + renew_every

    try:
        reader = storage.open(claim.storage_key)
    except ObjectMissing as exc:
        raise _StoredContentMissing() from exc
    except Exception as exc:
        raise ContentUnreadable(f"{type(exc).__name__}: {exc}") from exc
    with reader:
        return scan_content(
            reader.read,
            filename=claim.filename,
            content_type=claim.content_type,
            size=claim.size,
            processors=policy.processors,
            on_progress=renew_when_due,
        )


def _finish(
    uow: UnitOfWork, claim: _Claim, *, report: ContentReport | None = None, error: str | None = None
) -> ProcessingOutcome:
    """Record the results (or the error) if the claim still holds, with the matching event."""
    with uow:
        file = _locked_file(uow, claim.file_id)
        if file is None or file.processing_token != claim.token:
            return ProcessingOutcome.SUPERSEDED
        if error is not None:
            _record_failure(uow, file, error)
            uow.commit()
            return ProcessingOutcome.FAILED
        assert report is not None
        file.status = FileStatus.PROCESSED.value
        file.mime_type = report.mime_type[:255]
        file.encoding = report.encoding[:64] if report.encoding else None
        file.line_count = report.line_count
        file.word_count = report.word_count
        file.extra = report.extra
        file.error = None
        file.processed_at = _now(uow)
        file.processing_token = None
        file.lease_expires_at = None
        uow.flush()
        uow.add_event(FileProcessed(**_snapshot(file)))
        uow.commit()
        return ProcessingOutcome.PROCESSED


def process_file(
    uow: UnitOfWork, *, storage: Storage, file_id: uuid.UUID, policy: ProcessingPolicy
) -> ProcessingOutcome:
    """Claim a file, read it once, and record PROCESSED or FAILED with the matching event.

    Idempotent: a file already PROCESSED or FAILED is left alone, and the same content always
    gives the same results. Raises FileBusy while another worker's claim is live, and
    ProcessingUnavailable when storage or the database cannot be reached (the claim is given
    up first when possible). Content that cannot be processed ends FAILED with a readable error.
    """
    try:
        claim = _claim(uow, file_id=file_id, policy=policy)
        if isinstance(claim, ProcessingOutcome):
            return claim
        try:
            report = _scan(uow, storage=storage, claim=claim, policy=policy)
        except _ClaimLost:
            return ProcessingOutcome.SUPERSEDED
        except _StoredContentMissing:
            return _finish(uow, claim, error="The stored content is missing.")
        except ContentUnreadable as exc:
            if isinstance(exc.__cause__, ObjectMissing):
                return _finish(uow, claim, error=f"The stored content is incomplete: {exc}.")
            _release(uow, claim, policy.lease_seconds)
            raise ProcessingUnavailable(f"storage unreachable: {exc}") from exc
        except DBAPIError:
            raise
        except Exception as exc:
            log.exception("processing file %s failed", file_id)
            return _finish(uow, claim, error=f"Processing failed: {type(exc).__name__}: {exc}")
        if report.size != claim.size or report.sha256 != claim.sha256:
            return _finish(
                uow,
                claim,
                error=(
                    "The stored content does not match the upload: "
                    f"{report.size} bytes with sha256 {report.sha256}, expected "
                    f"{claim.size} bytes with sha256 {claim.sha256}."
                ),
            )
        return _finish(uow, claim, report=report)
    except DBAPIError as exc:
        if not _transient_database_error(exc):
            raise
        raise ProcessingUnavailable(f"database unreachable: {exc.orig or exc}") from exc


def file_awaits_processing(session: Session, *, file_id: uuid.UUID) -> bool:
    """Whether the file exists and is not yet PROCESSED or FAILED."""
    status = session.scalar(select(File.status).where(File.id == file_id))
    return status in (FileStatus.UPLOADED, FileStatus.PROCESSING)


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


def requeue_stalled_files(
    uow: UnitOfWork, *, lease_seconds: float, stale_upload_seconds: float, limit: int = 500
) -> list[uuid.UUID]:
    """Find files to process again: lapsed claims, and uploads waiting far too long.

    Each one found is not returned again for another lease (or stale period), so a sweep that
    runs often does not queue the same file over and over. A lapsed claim is voided, so a
    worker that was only stalled can no longer record its results.
    """
    with uow:
        ids = list(
            uow.session.scalars(
                _REQUEUE,
                {"lease": lease_seconds, "stale": stale_upload_seconds, "limit": limit},
            )
        )
        uow.commit()
    if ids:
        log.info(
            "requeueing %d stalled file(s)", len(ids), extra={"file_ids": [str(i) for i in ids]}
        )
    return ids


def notify_file_status(
    notifier: Notifier, *, owner_id: str, file_id: str, filename: str, status: str
) -> None:
    """Tell a file's owner it reached PROCESSED or FAILED."""
    notifier.send(
        Notification(
            user_id=owner_id,
            subject_type="file",
            subject_id=file_id,
            subject_name=filename,
            status=status,
        )
    )
