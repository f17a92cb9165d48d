"""Processing a file: claim it under a lease, read it once, record PROCESSED or FAILED; the reaper.

A state machine on the file's row: UPLOADED -> PROCESSING (a claim: a token and a lease the
worker renews while it reads) -> PROCESSED | FAILED. A worker that dies leaves a lapsed lease,
which another worker, or the reaper's sweep, takes over; the token keeps a stalled worker from
recording results after that. Every transition raises its event in the same transaction.
"""

from __future__ import annotations

import enum
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from services.files.analysis import ContentReport, ContentUnreadable, ProcessorFactory, scan_content
from services.files.events import FileProcessed, FileProcessingFailed, FileProcessingStarted
from services.files.models import File, FileStatus
from services.files.repository import FileRepository, FilesUnitOfWork
from services.files.storage import ObjectMissing, Storage

log = logging.getLogger(__name__)


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


def _record_failure(uow: FilesUnitOfWork, file: File, error: str) -> None:
    """Mark a locked file FAILED with a readable error, raising FileProcessingFailed."""
    file.status = FileStatus.FAILED.value
    file.error = error
    file.processed_at = uow.files.database_now()
    file.processing_token = None
    file.lease_expires_at = None
    uow.flush()
    uow.add_event(FileProcessingFailed(**_snapshot(file)))


def _claim(
    uow: FilesUnitOfWork, *, file_id: uuid.UUID, policy: ProcessingPolicy
) -> _Claim | ProcessingOutcome:
    """Take the file for processing (UPLOADED or a lapsed claim -> PROCESSING) under a new token."""
    with uow:
        file = uow.files.get_for_update(file_id)
        if file is None:
            return ProcessingOutcome.GONE
        if file.status in (FileStatus.PROCESSED, FileStatus.FAILED):
            return ProcessingOutcome.ALREADY_DONE
        now = uow.files.database_now()
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


def _renew(uow: FilesUnitOfWork, claim: _Claim, lease_seconds: float) -> None:
    """Extend the claim's lease; _ClaimLost when it was taken over or the file deleted."""
    with uow:
        renewed = uow.files.renew_claim(
            file_id=claim.file_id, token=claim.token, lease_seconds=lease_seconds
        )
        uow.commit()
    if not renewed:
        raise _ClaimLost()


def _release(uow: FilesUnitOfWork, claim: _Claim, lease_seconds: float) -> None:
    """Give the claim up so a retry may take the file at once (the reaper waits a lease)."""
    try:
        with uow:
            # An attempt that ended on its own (a transient outage) is not one of the "started
            # but never finished" attempts max_attempts guards against: release takes it back.
            uow.files.release_claim(
                file_id=claim.file_id, token=claim.token, lease_seconds=lease_seconds
            )
            uow.commit()
    except DBAPIError:
        log.warning("could not release the claim on file %s; it lapses", claim.file_id)


def _scan(
    uow: FilesUnitOfWork, *, storage: Storage, claim: _Claim, policy: ProcessingPolicy
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
    uow: FilesUnitOfWork,
    claim: _Claim,
    *,
    report: ContentReport | None = None,
    error: str | None = None,
) -> ProcessingOutcome:
    """Record the results (or the error) if the claim still holds, with the matching event."""
    with uow:
        file = uow.files.get_for_update(claim.file_id)
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
        file.processed_at = uow.files.database_now()
        file.processing_token = None
        file.lease_expires_at = None
        uow.flush()
        # A text file's search document is built after this commit, off processing's hot path:
        # the consumer answers FileProcessed with files.index_file_text (search.py).
        uow.add_event(FileProcessed(**_snapshot(file)))
        uow.commit()
        return ProcessingOutcome.PROCESSED


def process_file(
    uow: FilesUnitOfWork, *, storage: Storage, file_id: uuid.UUID, policy: ProcessingPolicy
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
    status = FileRepository(session).status(file_id)
    return status in (FileStatus.UPLOADED, FileStatus.PROCESSING)


def requeue_stalled_files(
    uow: FilesUnitOfWork, *, lease_seconds: float, stale_upload_seconds: float, limit: int = 500
) -> list[uuid.UUID]:
    """Find files to process again: lapsed claims, and uploads waiting far too long.

    Each one found is not returned again for another lease (or stale period), so a sweep that
    runs often does not queue the same file over and over. A lapsed claim is voided, so a
    worker that was only stalled can no longer record its results.
    """
    with uow:
        ids = uow.files.requeue_stalled(
            lease_seconds=lease_seconds, stale_upload_seconds=stale_upload_seconds, limit=limit
        )
        uow.commit()
    if ids:
        log.info(
            "requeueing %d stalled file(s)", len(ids), extra={"file_ids": [str(i) for i in ids]}
        )
    return ids
