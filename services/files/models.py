"""Files's tables, all in the `files` schema."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import NAMING_CONVENTION
from shared.outbox.tables import add_messaging_tables
from shared.user_replica import add_user_replica_table

SCHEMA = "files"
#: The text search configuration of file search: no stemming, no stop words, any language.
SEARCH_CONFIG = "simple"
#: The filename's words (punctuation and underscores split them: "q3_report.txt" -> q3 report txt).
NAME_VECTOR_SQL = (
    f"setweight(to_tsvector('{SEARCH_CONFIG}', "
    "regexp_replace(filename, '[^[:alnum:]]+', ' ', 'g')), 'A')"
)


class Base(DeclarativeBase):
    """Declarative base bound to the files schema."""

    metadata = MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)


messaging_tables = add_messaging_tables(Base.metadata)
#: The users auth registered, as far as this service has heard (see shared.user_replica).
users = add_user_replica_table(Base.metadata)


class FileStatus(enum.StrEnum):
    """Where a file is in its life: UPLOADED -> PROCESSING -> PROCESSED | FAILED."""

    UPLOADED = "UPLOADED"
    PROCESSING = "PROCESSING"
    PROCESSED = "PROCESSED"
    FAILED = "FAILED"


class File(Base):
    """An uploaded file: who owns it, where its content is stored, and what processing found."""

    __tablename__ = "files"
    __table_args__ = (
        CheckConstraint(
            "status IN ({})".format(", ".join(f"'{s.value}'" for s in FileStatus)), name="status"
        ),
        CheckConstraint("size >= 0", name="size_not_negative"),
        # Serves the owner's newest-first keyset pages and their count.
        Index("ix_files_owner_id_created_at_id", "owner_id", "created_at", "id"),
        # File search (services/files/search.py) matches the name or the content's document.
        Index("ix_files_name_vector", "name_vector", postgresql_using="gin"),
        # A task's output is stored once whatever the retries (services/files/task_outputs.py);
        # the same index serves Task.outputFiles (files by the task that produced them).
        UniqueConstraint("produced_by_task_id", "output_path", name="uq_files_task_output"),
        # The reaper's sweep looks only at files still waiting for or in processing.
        Index(
            "ix_files_unfinished",
            "lease_expires_at",
            postgresql_where=text("status IN ('UPLOADED', 'PROCESSING')"),
        ),
        # The processing rate on /metrics (metrics.py) sums the last minute's files every scrape.
        Index(
            "ix_files_processed_at",
            "processed_at",
            postgresql_where=text("processed_at IS NOT NULL"),
        ),
    )
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID]
    #: Safe to show and to offer as a download name (see naming.sanitize_filename).
    filename: Mapped[str] = mapped_column(String(255))
    #: The name as the client sent it, for display only.
    original_filename: Mapped[str] = mapped_column(String(1024))
    #: The type the client declared; processing detects `mime_type`.
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    #: Computed while the upload streamed in; processing verifies it.
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(
        String(20), default=FileStatus.UPLOADED.value, server_default=FileStatus.UPLOADED.value
    )
    mime_type: Mapped[str | None] = mapped_column(String(255))
    encoding: Mapped[str | None] = mapped_column(String(64))
    line_count: Mapped[int | None] = mapped_column(BigInteger)
    word_count: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    #: Results of pluggable processors, by processor name.
    extra: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: How many times processing was started (claimed); capped by FILES_PROCESSING_MAX_ATTEMPTS.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The current claim: only the worker holding it may renew it or record the results.
    processing_token: Mapped[uuid.UUID | None]
    #: PROCESSING: when the claim lapses unless renewed. UPLOADED: when the reaper looks again.
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The task whose /output this file was (task_outputs saga); null for an upload.
    produced_by_task_id: Mapped[uuid.UUID | None]
    #: Its path under the task's /output (subdirectories included), with produced_by_task_id.
    output_path: Mapped[str | None] = mapped_column(String(1024))
    #: The filename's words, weighted A; kept by PostgreSQL.
    name_vector: Mapped[Any] = mapped_column(
        TSVECTOR, Computed(NAME_VECTOR_SQL, persisted=True), deferred=True
    )


class FileSearchDocument(Base):
    """The words of a processed text file's first FILES_SEARCH_TEXT_MAX_BYTES, for file search.

    A table of its own, not a column of `files`: every processing step updates a file's row, and
    each such update would insert the content's words into a GIN index again. Written after
    processing by the `files.index_file_text` job; binary files have none.
    """

    __tablename__ = "file_search_documents"
    __table_args__ = (
        Index("ix_file_search_documents_content_vector", "content_vector", postgresql_using="gin"),
    )

    file_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )
    #: Weighted B (a name's words, weighted A, rank higher); empty when the words never fit.
    content_vector: Mapped[Any] = mapped_column(TSVECTOR)
    indexed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class StorageAccount(Base):
    """Bytes an owner has stored, kept in step with their files to enforce the quota."""

    __tablename__ = "storage_accounts"
    __table_args__ = (CheckConstraint("used_bytes >= 0", name="used_bytes_not_negative"),)

    owner_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    used_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class InputLease(Base):
    """A file leased to a task as its input (tasks' task_input_file saga): it cannot be deleted.

    Live while `released_at` is null and `expires_at` is ahead. A released row stays until the
    reaper sweeps it, so a lease request that arrives after its release is refused, not granted.
    """

    __tablename__ = "input_leases"
    __table_args__ = (
        Index("ix_input_leases_task_id", "task_id"),
        Index("ix_input_leases_owner_id", "owner_id"),
        Index("ix_input_leases_expires_at", "expires_at"),
    )

    file_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )
    task_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    owner_id: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
