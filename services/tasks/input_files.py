"""The task_input_file saga: files leases a task its input file before the task may start.

`createTask(inputFileId)` records the task PENDING with `input_file_id` and starts the saga in
the same transaction (`start_input_file_saga`). Step `lease` raises InputFileLeaseRequested and
waits for files' InputFileLeased (or InputFileLeaseRefused: missing, someone else's, not
PROCESSED); its compensation ends the task FAILED with the reason and asks files to release the
lease. Step `launch` records the leased name and size on the task and raises TaskInputReady,
which the launcher consumes like a TaskCreated: until then the claim never starts the task
(transitions.claim_attempt). Files releases the lease itself when the task ends.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from services.tasks.config import TasksSettings
from services.tasks.events import InputFileLeaseRequested, InputFileReleaseRequested, TaskInputReady
from services.tasks.lifecycle import can_transition, is_finished, transition
from services.tasks.models import Task, TaskStatus
from shared.sagas.machine import SagaContext, SagaDefinition, Step
from shared.sagas.store import Sagas

KIND = "task_input_file"
LEASED = "files.InputFileLeased"
REFUSED = "files.InputFileLeaseRefused"
#: The error code of a task whose input file could not be leased to it.
INPUT_FILE_UNAVAILABLE = "INPUT_FILE_UNAVAILABLE"


def awaits_input(task: Task) -> bool:
    """Whether the task has an input file that files has not leased to it yet."""
    return task.input_file_id is not None and task.input_filename is None


def start_input_file_saga(session: Session, sagas: Sagas, *, task: Task) -> None:
    """Start the saga of a new task with an input file (in the task's own transaction)."""
    sagas.start(
        session,
        kind=KIND,
        subject=str(task.id),
        data={
            "task_id": str(task.id),
            "owner_id": str(task.owner_id),
            "file_id": str(task.input_file_id),
        },
    )


def _ask_for_lease(ctx: SagaContext) -> None:
    ctx.emit(
        InputFileLeaseRequested(
            saga_id=ctx.saga_id,
            task_id=ctx.data["task_id"],
            owner_id=ctx.data["owner_id"],
            file_id=ctx.data["file_id"],
        )
    )


def _release(ctx: SagaContext) -> InputFileReleaseRequested:
    return InputFileReleaseRequested(
        saga_id=ctx.saga_id, task_id=ctx.data["task_id"], file_id=ctx.data["file_id"]
    )


def _fail_task(ctx: SagaContext) -> None:
    """Compensation of `lease`: the task ends FAILED with the reason; files drops any lease."""
    task = ctx.session.get(Task, uuid.UUID(ctx.data["task_id"]), with_for_update=True)
    if task is not None and can_transition(task.status, TaskStatus.FAILED):
        event = transition(
            task,
            TaskStatus.FAILED,
            now=datetime.now(UTC),
            error_code=INPUT_FILE_UNAVAILABLE,
            error=f"The input file could not be used: {ctx.reason or 'no lease'}.",
        )
        ctx.session.flush()
        ctx.emit(event)
    ctx.emit(_release(ctx))


def _launch(ctx: SagaContext) -> None:
    """Record the leased file on the task and hand it to the launcher (TaskInputReady)."""
    task = ctx.session.get(Task, uuid.UUID(ctx.data["task_id"]), with_for_update=True)
    if task is None or is_finished(task.status):
        # Deleted or ended (cancelled, say) while files leased it: nothing will read the file.
        ctx.emit(_release(ctx))
        return
    if awaits_input(task):
        # Files' InputFileLeased, the reply that ended `lease` (this step runs only on it).
        task.input_filename = ctx.reply["filename"]
        task.input_size = ctx.reply["size"]
    ctx.emit(
        TaskInputReady(
            task_id=str(task.id),
            owner_id=str(task.owner_id),
            file_id=str(task.input_file_id),
            filename=task.input_filename,
            size=task.input_size,
        )
    )


def task_input_file(settings: TasksSettings) -> SagaDefinition:
    """The task_input_file saga with the timeouts of `settings`."""
    timeout = timedelta(seconds=settings.INPUT_FILE_STEP_TIMEOUT_SECONDS)
    return SagaDefinition(
        KIND,
        (
            Step(
                "lease",
                _ask_for_lease,
                timeout,
                awaits=frozenset({LEASED}),
                fails_on=frozenset({REFUSED}),
                compensate=_fail_task,
                attempts=settings.INPUT_FILE_STEP_ATTEMPTS,
            ),
            Step("launch", _launch, timeout),
        ),
    )
