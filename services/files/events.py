"""Events the files service publishes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.events import Event


@dataclass(frozen=True)
class FileUploaded(Event):
    """A user stored a file; its processing is still to come."""

    aggregate_type = "file"
    aggregate_field = "file_id"

    file_id: str
    owner_id: str
    filename: str
    size: int
    content_type: str
    sha256: str


@dataclass(frozen=True)
class FileDeleted(Event):
    """A user deleted a file; its row and stored content are gone."""

    aggregate_type = "file"
    aggregate_field = "file_id"

    file_id: str
    owner_id: str
    filename: str
    size: int


@dataclass(frozen=True)
class FileStatusChanged(Event):
    """Base of the processing events: the file as the gateway's `File` type shows it.

    `results` (mime_type, encoding, line_count, word_count, extra) is set once processed and
    `error` once failed; times are ISO 8601 strings.
    """

    aggregate_type = "file"
    aggregate_field = "file_id"

    file_id: str
    owner_id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    status: str
    created_at: str
    processed_at: str | None
    results: dict[str, Any] | None
    error: str | None


@dataclass(frozen=True)
class FileProcessingStarted(FileStatusChanged):
    """A worker started processing an uploaded file (UPLOADED -> PROCESSING)."""


@dataclass(frozen=True)
class FileProcessed(FileStatusChanged):
    """Processing finished and its results are stored (-> PROCESSED)."""


@dataclass(frozen=True)
class FileProcessingFailed(FileStatusChanged):
    """Processing cannot succeed; `error` says why (-> FAILED)."""


@dataclass(frozen=True)
class UserFilesDeleted(Event):
    """Every file of a user is gone, rows and stored objects (a reply to auth's deletion saga)."""

    aggregate_type = "user"
    aggregate_field = "user_id"

    user_id: str
    saga_id: str
    files_deleted: int


@dataclass(frozen=True)
class InputFileLeased(Event):
    """Files leased the owner's PROCESSED file to a task (a reply to tasks' input-file saga)."""

    aggregate_type = "file"
    aggregate_field = "file_id"

    saga_id: str
    task_id: str
    file_id: str
    filename: str
    size: int


@dataclass(frozen=True)
class InputFileLeaseRefused(Event):
    """Files would not lease the file to the task: `reason` says why (the saga fails the task)."""

    aggregate_type = "file"
    aggregate_field = "file_id"

    saga_id: str
    task_id: str
    file_id: str
    reason: str


@dataclass(frozen=True)
class TaskOutputsStored(Event):
    """Every output of a finished task is a file of its owner (a reply to tasks' outputs saga).

    `files` lists each as {path, file_id}; each was also announced by a FileUploaded.
    """

    aggregate_type = "task"
    aggregate_field = "task_id"

    saga_id: str
    task_id: str
    files: list[dict[str, Any]]


@dataclass(frozen=True)
class TaskOutputsRefused(Event):
    """Files will not store a task's outputs, and says why (its owner is deleted, no room)."""

    aggregate_type = "task"
    aggregate_field = "task_id"

    saga_id: str
    task_id: str
    reason: str
