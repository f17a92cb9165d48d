"""Tasks's tables, all in the `tasks` schema."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import NAMING_CONVENTION
from shared.outbox.tables import add_messaging_tables
from shared.sagas.tables import add_saga_table
from shared.user_replica import add_user_replica_table

SCHEMA = "tasks"


class Base(DeclarativeBase):
    """Declarative base bound to the tasks schema."""

    metadata = MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)


messaging_tables = add_messaging_tables(Base.metadata)
#: The users auth registered, as far as this service has heard (see shared.user_replica).
users = add_user_replica_table(Base.metadata, with_email=True)
#: The sagas tasks orchestrates (see sagas.py).
saga_table = add_saga_table(Base.metadata)


class TaskStatus(enum.StrEnum):
    """Where a task is in its life; lifecycle.py says which moves are legal."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"


class LogStream(enum.StrEnum):
    """A container output stream; they are stored apart."""

    STDOUT = "stdout"
    STDERR = "stderr"


class TriggerRule(enum.StrEnum):
    """When a task with dependencies runs (dependencies.py)."""

    #: Once every dependency SUCCEEDED; SKIPPED as soon as one ends otherwise.
    ALL_SUCCEEDED = "ALL_SUCCEEDED"
    #: Once every dependency ended, whatever the outcome.
    ALL_DONE = "ALL_DONE"


def _in(values: type[enum.StrEnum]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class Task(Base):
    """A container run a user asked for: its spec, its state, and what the engine needs."""

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(TaskStatus)})", name="status"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        CheckConstraint(f"trigger_rule IN ({_in(TriggerRule)})", name="trigger_rule"),
        # Keyset pagination, newest first, with and without the status filter.
        Index("ix_tasks_owner_created", "owner_id", "created_at", "id"),
        Index("ix_tasks_owner_status_created", "owner_id", "status", "created_at", "id"),
        Index("ix_tasks_workflow_id", "workflow_id"),
        # The engine's dispatcher and reconciler look for unfinished tasks only.
        Index(
            "ix_tasks_unfinished_status",
            "status",
            postgresql_where="status IN ('PENDING', 'QUEUED', 'RUNNING')",
        ),
        # The start rate on /metrics (metrics.py) counts the last minute's starts at every scrape.
        Index("ix_tasks_started_at", "started_at", postgresql_where="started_at IS NOT NULL"),
    )

    # created_at and updated_at come back from the INSERT/UPDATE itself (RETURNING).
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID]
    name: Mapped[str | None] = mapped_column(String(200))

    # The spec, as validated and completed with the server's defaults at creation.
    image: Mapped[str] = mapped_column(String(512))
    command: Mapped[list[str]] = mapped_column(JSONB)
    #: [{"name": ..., "value": ...}]; values may be secrets: never logged, never returned.
    env: Mapped[list[dict[str, str]]] = mapped_column(JSONB, default=list)
    timeout_seconds: Mapped[int]
    cpu_limit: Mapped[float] = mapped_column(Float)
    memory_limit_mb: Mapped[int]
    max_retries: Mapped[int]
    network: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    #: Which executor runs the task (executors.py): "docker", "swarm" or a plugin's name.
    executor: Mapped[str] = mapped_column(String(32), default="docker", server_default="docker")
    #: The file to mount read-only at /input (the task_input_file saga leases it, input_files.py).
    input_file_id: Mapped[uuid.UUID | None]
    #: The leased file's name and size, set once files granted the lease: a task with an input
    #: file and no input_filename yet is never started (transitions.claim_attempt).
    input_filename: Mapped[str | None] = mapped_column(String(255))
    input_size: Mapped[int | None] = mapped_column(BigInteger)

    #: Dependencies (dependencies.py): the rule, and whether the task still waits on them; a
    #: task awaiting its dependencies is never started (transitions.claim_attempt).
    trigger_rule: Mapped[str] = mapped_column(
        String(16), default=TriggerRule.ALL_SUCCEEDED, server_default=TriggerRule.ALL_SUCCEEDED
    )
    awaiting_dependencies: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="false"
    )
    #: The exit codes a failed attempt is retried on; None: every non-zero code.
    retry_on_exit_codes: Mapped[list[int] | None] = mapped_column(JSONB)
    #: The workflow this task is a step of (workflows.py), and the step's name.
    workflow_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE")
    )
    workflow_step: Mapped[str | None] = mapped_column(String(100))
    #: The step's place in the request's list (the order Workflow.steps shows them in).
    workflow_position: Mapped[int | None]

    # Outcome.
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.PENDING)
    exit_code: Mapped[int | None]
    #: Machine-readable failure reason set by the engine (e.g. IMAGE_NOT_FOUND, OOM_KILLED).
    error_code: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(Text)
    #: Container runs started so far (the engine counts one per try, retries included).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Start of the latest attempt's container (the timeout counts from here).
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The schedule that started this task (schedules.py); null once that schedule is deleted.
    schedule_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("schedules.id", ondelete="SET NULL")
    )

    # The engine's handle on the current attempt: the name is deterministic per attempt
    # (lifecycle.container_name), so a retry never collides with a leftover container.
    container_name: Mapped[str | None] = mapped_column(String(128))
    container_id: Mapped[str | None] = mapped_column(String(64))
    #: When the process watching the container last proved alive; stale = orphaned.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # Latest resource sample of the running container.
    cpu_percent: Mapped[float | None] = mapped_column(Float)
    memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    usage_sampled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # Per-stream log accounting; the bytes themselves are in task_log_chunks.
    stdout_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    stderr_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    stdout_dropped_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    stderr_dropped_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    #: What became of the task's /output when it was not all stored: files dropped over the
    #: limits (or links, fifos...), or why the outputs saga failed (output_saga.py).
    outputs_note: Mapped[str | None] = mapped_column(Text)

    def __repr__(self) -> str:
        # Never the env: its values may be secrets.
        return f"Task(id={self.id}, status={self.status}, image={self.image!r})"

    def log_counters(self, stream: LogStream) -> tuple[int, int]:
        """(bytes kept, bytes dropped) of one stream."""
        return getattr(self, f"{stream}_bytes"), getattr(self, f"{stream}_dropped_bytes")

    def set_log_counters(self, stream: LogStream, *, kept: int, dropped: int) -> None:
        """Record one stream's kept and dropped byte counts."""
        setattr(self, f"{stream}_bytes", kept)
        setattr(self, f"{stream}_dropped_bytes", dropped)


class Workflow(Base):
    """A DAG of one owner's tasks (its steps) created in one request; its status is theirs."""

    __tablename__ = "workflows"
    __table_args__ = (Index("ix_workflows_owner_created", "owner_id", "created_at", "id"),)
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID]
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: When its last step ended (WorkflowFinished was raised then, once).
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TaskDependency(Base):
    """An edge: `task_id` waits on `depends_on_id` (both the same owner's)."""

    __tablename__ = "task_dependencies"
    __table_args__ = (Index("ix_task_dependencies_depends_on_id", "depends_on_id"),)

    task_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    depends_on_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    #: The dependency's place in the list the owner gave.
    position: Mapped[int]


class TaskLogChunk(Base):
    """A batch of one stream's output, in arrival order (ids grow with arrival)."""

    __tablename__ = "task_log_chunks"
    __table_args__ = (
        CheckConstraint(f"stream IN ({_in(LogStream)})", name="stream"),
        Index("ix_task_log_chunks_task_stream_id", "task_id", "stream", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    stream: Mapped[str] = mapped_column(String(6))
    #: Raw bytes: container output need not be UTF-8 and may hold NULs, which text cannot.
    data: Mapped[bytes] = mapped_column(LargeBinary)
    #: Where `data` starts in the whole stream (bytes dropped over the cap included): a reader
    #: that finds a chunk starting past where the previous one ended knows output was dropped.
    start_offset: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MisfirePolicy(enum.StrEnum):
    """What a schedule does with fire times missed while no scheduler ran (firing.py)."""

    SKIP = "SKIP"
    RUN_ONCE = "RUN_ONCE"
    RUN_ALL = "RUN_ALL"


class OverlapPolicy(enum.StrEnum):
    """What a schedule does when a fire time comes while its previous run is still going."""

    ALLOW = "ALLOW"
    SKIP = "SKIP"
    CANCEL_PREVIOUS = "CANCEL_PREVIOUS"


class FireOutcome(enum.StrEnum):
    """What became of one fire time of a schedule."""

    STARTED = "STARTED"
    #: Not run: the previous run was still going (OverlapPolicy.SKIP).
    SKIPPED = "SKIPPED"
    #: Not run: the task was refused (the operator's task policy, or too many unfinished tasks).
    REFUSED = "REFUSED"


class Schedule(Base):
    """A task a user wants started again and again: on a cron expression or a fixed interval."""

    __tablename__ = "schedules"
    __table_args__ = (
        CheckConstraint("(cron IS NULL) <> (interval_seconds IS NULL)", name="cron_or_interval"),
        CheckConstraint(f"misfire_policy IN ({_in(MisfirePolicy)})", name="misfire_policy"),
        CheckConstraint(f"overlap_policy IN ({_in(OverlapPolicy)})", name="overlap_policy"),
        Index("ix_schedules_owner_created", "owner_id", "created_at", "id"),
        # The schedulers' question: which schedule is due next.
        Index("ix_schedules_due", "next_fire_at", postgresql_where="NOT paused"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID]
    name: Mapped[str | None] = mapped_column(String(200))
    cron: Mapped[str | None] = mapped_column(String(200))
    interval_seconds: Mapped[int | None]
    timezone: Mapped[str] = mapped_column(String(64))
    #: The createTask body each run is created from, as validated; env values may be secrets.
    task_spec: Mapped[dict | None] = mapped_column(JSONB)
    #: A scheduled workflow's createWorkflow spec instead of a task's (workflows.py).
    workflow_spec: Mapped[dict | None] = mapped_column(JSONB)
    misfire_policy: Mapped[str] = mapped_column(String(16))
    overlap_policy: Mapped[str] = mapped_column(String(16))
    paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    #: The next fire time not handled yet; null when the expression never fires again.
    next_fire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The latest fire time handled (run, skipped or missed).
    last_fire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Set by the service (not the database): an interval counts its fire times from here.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class ScheduleFire(Base):
    """One fire time of a schedule, handled: its primary key is what makes a fire happen once."""

    __tablename__ = "schedule_fires"
    __table_args__ = (
        CheckConstraint(f"outcome IN ({_in(FireOutcome)})", name="outcome"),
        # Deleting a task sets its fires' task_id to null: found by this index, not a scan.
        Index("ix_schedule_fires_task_id", "task_id"),
    )

    schedule_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("schedules.id", ondelete="CASCADE"), primary_key=True
    )
    fire_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16))
    task_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    #: Why the fire did not run, for people.
    detail: Mapped[str | None] = mapped_column(Text)
    fired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


#: A schedule's runs, newest first (Schedule.runs), and whether one is still going (overlap).
Index(
    "ix_tasks_schedule_created",
    Task.schedule_id,
    Task.created_at,
    Task.id,
    postgresql_where=Task.schedule_id.isnot(None),
)


class NotificationRule(Base):
    """Which channels tell a user about one kind of event (no row: LOG only)."""

    __tablename__ = "notification_rules"

    owner_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    event: Mapped[str] = mapped_column(String(32), primary_key=True)
    channels: Mapped[list] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Webhook(Base):
    """A URL a user's notifications are POSTed to, signed with its secret."""

    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_owner_created", "owner_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID]
    url: Mapped[str] = mapped_column(Text)
    #: The events it wants; empty means every event.
    events: Mapped[list] = mapped_column(JSONB)
    #: Kept (not a hash): every delivery is signed with it. Never logged, shown once.
    secret: Mapped[str] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Notification(Base):
    """One event a user is told about; its id is derived from the event's, so it exists once."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_owner_created", "owner_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    owner_id: Mapped[uuid.UUID]
    event: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(Text)
    subject_id: Mapped[str] = mapped_column(String(64))
    source_event_id: Mapped[uuid.UUID]
    #: subject_type, subject_name and status: what the LOG channel's line says.
    details: Mapped[dict] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class NotificationDelivery(Base):
    """One notification through one channel (one per webhook): its key makes it go out once."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        CheckConstraint(
            "status IN ('PENDING', 'DELIVERED', 'FAILED', 'SKIPPED')", name="delivery_status"
        ),
        Index("ix_notification_deliveries_notification", "notification_id"),
        # The sweep's question: which deliveries have been pending for long.
        Index(
            "ix_notification_deliveries_pending",
            "updated_at",
            postgresql_where="status = 'PENDING'",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    notification_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE")
    )
    channel: Mapped[str] = mapped_column(String(16))
    webhook_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("webhooks.id", ondelete="SET NULL")
    )
    #: Sent as Dockyard-Idempotency-Key: the same on every try of this delivery.
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="PENDING", server_default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    response_status: Mapped[int | None]
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
