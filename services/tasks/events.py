"""Events the tasks service publishes; none carries env values (they may be secrets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.events import Event


@dataclass(frozen=True)
class TaskEvent(Event):
    """Base of task events: keyed by task, and saying whose task it is."""

    aggregate_type = "task"
    aggregate_field = "task_id"

    task_id: str
    owner_id: str


@dataclass(frozen=True)
class TaskCreated(TaskEvent):
    """A user submitted a task; it is PENDING."""

    name: str | None
    image: str
    timeout_seconds: int
    cpu_limit: float
    memory_limit_mb: int
    max_retries: int
    network: bool


@dataclass(frozen=True)
class TaskQueued(TaskEvent):
    """The task was handed to the engine (again, on a retry: `attempts` says how often it ran)."""

    attempts: int


@dataclass(frozen=True)
class TaskStarted(TaskEvent):
    """The task's container is running."""

    attempt: int
    container_name: str | None


@dataclass(frozen=True)
class TaskOutputAppended(TaskEvent):
    """A batch of a running task's output was stored (one event per batch, never per line).

    Carries no output (it may be sensitive and is bounded only by the log cap): readers fetch it
    from the tasks service, after the chunk they saw last.
    """

    last_chunk_id: int
    bytes: int


@dataclass(frozen=True)
class TaskCancelRequested(TaskEvent):
    """The owner cancelled a running task; the engine kills its container."""


@dataclass(frozen=True)
class TaskSucceeded(TaskEvent):
    """The container exited 0."""

    name: str | None
    exit_code: int | None
    attempts: int


@dataclass(frozen=True)
class TaskFailed(TaskEvent):
    """The task ended in failure, for good (no retry left)."""

    name: str | None
    exit_code: int | None
    error_code: str | None
    error: str | None
    attempts: int


@dataclass(frozen=True)
class TaskTimedOut(TaskEvent):
    """The container outlived its timeout and was killed."""

    name: str | None
    timeout_seconds: int
    attempts: int


@dataclass(frozen=True)
class TaskCancelled(TaskEvent):
    """The task was cancelled: before it started, or killed while running."""

    name: str | None
    attempts: int


@dataclass(frozen=True)
class TaskSkipped(TaskEvent):
    """The task will never run (a task it depends on did not succeed)."""

    name: str | None
    error: str | None


@dataclass(frozen=True)
class TaskReleased(TaskEvent):
    """Every dependency of a waiting task allows it to run: the launcher starts it now."""


@dataclass(frozen=True)
class TaskDeleted(TaskEvent):
    """The owner deleted a finished task and its logs."""


@dataclass(frozen=True)
class UserTasksDeleted(Event):
    """Every task of a user is ended and deleted (a reply to auth's account-deletion saga)."""

    aggregate_type = "user"
    aggregate_field = "user_id"

    user_id: str
    saga_id: str
    tasks_deleted: int


@dataclass(frozen=True)
class InputFileLeaseRequested(Event):
    """The task_input_file saga asks files to lease the owner's file to the task (a request)."""

    aggregate_type = "task"
    aggregate_field = "task_id"

    saga_id: str
    task_id: str
    owner_id: str
    file_id: str


@dataclass(frozen=True)
class InputFileReleaseRequested(Event):
    """The task_input_file saga gave up or the task ended first: files drops the lease."""

    aggregate_type = "task"
    aggregate_field = "task_id"

    saga_id: str
    task_id: str
    file_id: str


@dataclass(frozen=True)
class TaskInputReady(TaskEvent):
    """Files leased the task its input file: the task may start (the launcher consumes this)."""

    file_id: str
    filename: str
    size: int


@dataclass(frozen=True)
class ScheduleEvent(Event):
    """Base of schedule events: keyed by schedule, and saying whose schedule it is."""

    aggregate_type = "schedule"
    aggregate_field = "schedule_id"

    schedule_id: str
    owner_id: str


@dataclass(frozen=True)
class ScheduleCreated(ScheduleEvent):
    """A user created a schedule (its task spec is not carried: env values may be secrets)."""

    name: str | None
    cron: str | None
    interval_seconds: int | None
    timezone: str
    misfire_policy: str
    overlap_policy: str
    next_fire_at: str | None


@dataclass(frozen=True)
class SchedulePaused(ScheduleEvent):
    """The owner paused a schedule: it fires no more until resumed."""


@dataclass(frozen=True)
class ScheduleResumed(ScheduleEvent):
    """The owner resumed a schedule; it fires next at `next_fire_at` (nothing is caught up)."""

    next_fire_at: str | None


@dataclass(frozen=True)
class ScheduleDeleted(ScheduleEvent):
    """The owner (or account deletion) deleted a schedule; its runs are kept, unlinked."""


@dataclass(frozen=True)
class ScheduleFired(ScheduleEvent):
    """A fire time of the schedule created its run (the task's own TaskCreated follows)."""

    fire_time: str
    task_id: str


@dataclass(frozen=True)
class ScheduleFireSkipped(ScheduleEvent):
    """A fire time of the schedule did not run: `reason` OVERLAP or TASK_REFUSED, `detail` why."""

    fire_time: str
    reason: str
    detail: str


@dataclass(frozen=True)
class ScheduleMisfired(ScheduleEvent):
    """Fire times passed while no scheduler ran; one event sums up one catch-up.

    `missed` fire times (from `first_missed_at` to `last_missed_at`) were not run; `ran` is how
    many fire times of the same catch-up did run: the late ones the misfire policy still runs
    (none for SKIP, the latest for RUN_ONCE, the latest TASKS_SCHEDULE_CATCH_UP_MAX for RUN_ALL)
    and any reached within the grace.
    """

    misfire_policy: str
    missed: int
    first_missed_at: str
    last_missed_at: str
    ran: int


@dataclass(frozen=True)
class TaskOutputsReady(TaskEvent):
    """A finished task left files under /output: files is asked to store them (task_outputs saga).

    `outputs` lists each kept file as {path, size}; files fetches them from the tasks service's
    internal REST API and replies files.TaskOutputsStored or files.TaskOutputsRefused.
    """

    saga_id: str
    outputs: list[dict[str, Any]]


@dataclass(frozen=True)
class NotificationCreated(Event):
    """A user is told about an event: the notification and one pending delivery per channel.

    Keyed by the user, so a gateway can follow one user's notifications (notificationReceived);
    tasks' own `tasks.notification-deliveries` consumer sends one delivery job per id.
    """

    aggregate_type = "user_notifications"
    aggregate_field = "owner_id"

    notification_id: str
    owner_id: str
    event: str
    subject: str
    subject_id: str
    delivery_ids: list[str]


@dataclass(frozen=True)
class WebhookDisabled(Event):
    """A webhook failed too many deliveries in a row (the setting) and was disabled."""

    aggregate_type = "webhook"
    aggregate_field = "webhook_id"

    webhook_id: str
    owner_id: str
    failures: int


@dataclass(frozen=True)
class WorkflowEvent(Event):
    """Base of workflow events: keyed by workflow, and saying whose it is."""

    aggregate_type = "workflow"
    aggregate_field = "workflow_id"

    workflow_id: str
    owner_id: str


@dataclass(frozen=True)
class WorkflowCreated(WorkflowEvent):
    """A user created a workflow: its steps are tasks, each with its own TaskCreated."""

    name: str | None
    steps: int


@dataclass(frozen=True)
class WorkflowCancelRequested(WorkflowEvent):
    """The owner cancelled the workflow: its pending and running steps are cancelled."""


@dataclass(frozen=True)
class WorkflowFinished(WorkflowEvent):
    """Every step of the workflow ended (raised once); `status` as Workflow.status says it."""

    name: str | None
    status: str
    failed_step: str | None
