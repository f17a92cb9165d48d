"""Events the files service publishes."""

from __future__ import annotations

from dataclasses import dataclass

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
