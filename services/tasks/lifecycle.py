"""A task's state machine: the one place that moves a task between statuses."""

from __future__ import annotations

import uuid
from datetime import datetime

from services.tasks.events import (
    TaskCancelled,
    TaskEvent,
    TaskFailed,
    TaskQueued,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    TaskTimedOut,
)
from services.tasks.models import Task, TaskStatus

PENDING, QUEUED, RUNNING = TaskStatus.PENDING, TaskStatus.QUEUED, TaskStatus.RUNNING
SUCCEEDED, FAILED, TIMED_OUT = TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.TIMED_OUT
CANCELLED, SKIPPED = TaskStatus.CANCELLED, TaskStatus.SKIPPED

#: Statuses a task never leaves.
TERMINAL = frozenset({SUCCEEDED, FAILED, TIMED_OUT, CANCELLED, SKIPPED})

#: Every legal move. PENDING waits for dependencies and the dispatcher; QUEUED is in the
#: engine's hands; RUNNING goes back to QUEUED when a failed attempt is retried.
TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    PENDING: frozenset({QUEUED, CANCELLED, SKIPPED, FAILED}),
    QUEUED: frozenset({RUNNING, CANCELLED, FAILED}),
    RUNNING: frozenset({SUCCEEDED, FAILED, TIMED_OUT, CANCELLED, QUEUED}),
    **{status: frozenset() for status in TERMINAL},
}


class IllegalTransition(Exception):
    """The move is not in the transition table (e.g. a finished task cannot start)."""

    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"a {current} task cannot become {target}")
        self.current = current
        self.target = target


def is_finished(status: str) -> bool:
    """Whether the status is terminal."""
    return status in TERMINAL


def can_transition(current: str, target: str) -> bool:
    """Whether the table allows moving from `current` to `target`."""
    return TaskStatus(target) in TRANSITIONS[TaskStatus(current)]


def container_name(task_id: uuid.UUID | str, attempt: int) -> str:
    """The deterministic container name of one attempt of a task."""
    return f"dockyard-task-{task_id}-{attempt}"


def transition(
    task: Task,
    target: TaskStatus,
    *,
    now: datetime,
    exit_code: int | None = None,
    error_code: str | None = None,
    error: str | None = None,
    container: str | None = None,
) -> TaskEvent:
    """Move `task` (whose row the caller has locked) to `target`; return the event to record.

    Sets the timestamps and outcome fields that belong to the move; raises IllegalTransition.
    """
    target = TaskStatus(target)
    if not can_transition(task.status, target):
        raise IllegalTransition(task.status, target)
    task.status = target
    ids = {"task_id": str(task.id), "owner_id": str(task.owner_id)}
    if target is QUEUED:
        task.queued_at = now
        task.container_name = task.container_id = task.heartbeat_at = None
        return TaskQueued(**ids, attempts=task.attempts)
    if target is RUNNING:
        task.started_at = task.heartbeat_at = now
        task.container_name = container
        return TaskStarted(**ids, attempt=task.attempts, container_name=container)
    task.finished_at = now
    task.heartbeat_at = None
    # An ended task waits on nothing (dependencies.py: its dependencies may then be deleted).
    task.awaiting_dependencies = False
    task.exit_code = exit_code
    task.error_code = error_code
    task.error = error
    if target is SUCCEEDED:
        return TaskSucceeded(
            **ids, name=task.name, exit_code=task.exit_code, attempts=task.attempts
        )
    if target is FAILED:
        return TaskFailed(
            **ids,
            name=task.name,
            exit_code=exit_code,
            error_code=error_code,
            error=error,
            attempts=task.attempts,
        )
    if target is TIMED_OUT:
        task.error_code = error_code or "TIMED_OUT"
        task.error = error or f"Timed out after {task.timeout_seconds} seconds."
        return TaskTimedOut(
            **ids, name=task.name, timeout_seconds=task.timeout_seconds, attempts=task.attempts
        )
    if target is CANCELLED:
        return TaskCancelled(**ids, name=task.name, attempts=task.attempts)
    return TaskSkipped(**ids, name=task.name, error=error)
