"""The task_outputs saga: a finished task's /output files become files of its owner.

When a task reaches a terminal state after its container ran, `collect_outputs` (called in the
transition's unit of work) scans the attempt's host directory (outputs.py). Files within the
limits start the saga (subject: the task id), whose steps are:

1. `store`: raises tasks.TaskOutputsReady; files pulls each output from the tasks service's
   internal REST API (output_api.py), stores it as an upload of the owner and replies
   files.TaskOutputsStored, or files.TaskOutputsRefused (the owner is being deleted, no room).
   Its timeout asks again; files' side is idempotent.
2. `record`: the files are stored: the host directory goes. Task.outputFiles reads them from
   files (by `produced_by_task_id`), so tasks keeps no copy of their ids.

Compensation: the host directory goes and the task's `outputs_note` says why nothing (more)
was stored. A task with nothing to store has its directory deleted at once.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from functools import lru_cache

from sqlalchemy.orm import Session

from services.tasks import outputs
from services.tasks.events import TaskOutputsReady
from services.tasks.models import Task
from shared.sagas.machine import SagaContext, SagaDefinition, Step

log = logging.getLogger(__name__)

KIND = "task_outputs"
#: Dropped entries listed in a task's note (the rest are counted).
_NOTE_ENTRIES = 20


@lru_cache(maxsize=1)
def output_settings():
    """The tasks settings this process runs with (read once)."""
    from services.tasks.config import TasksSettings

    return TasksSettings()


def _ask_files_to_store(ctx: SagaContext) -> None:
    data = ctx.data
    ctx.emit(
        TaskOutputsReady(
            task_id=data["task_id"],
            owner_id=data["owner_id"],
            saga_id=ctx.saga_id,
            outputs=list(data["outputs"]),
        )
    )


def _note(session: Session | None, task_id: str, note: str) -> None:
    if session is None:
        return
    task = session.get(Task, uuid.UUID(task_id))
    if task is not None:
        task.outputs_note = f"{task.outputs_note}\n{note}" if task.outputs_note else note


def _forget_outputs(ctx: SagaContext) -> None:
    outputs.remove_task_dir(output_settings().OUTPUT_DIR, ctx.data["task_id"])
    _note(ctx.session, ctx.data["task_id"], f"Outputs were not stored: {ctx.reason}")


def _outputs_stored(ctx: SagaContext) -> None:
    outputs.remove_task_dir(output_settings().OUTPUT_DIR, ctx.data["task_id"])


def task_outputs_saga() -> SagaDefinition:
    """The definition of the task_outputs saga, with the operator's step timeout and attempts."""
    settings = output_settings()
    return SagaDefinition(
        kind=KIND,
        steps=(
            Step(
                "store",
                _ask_files_to_store,
                timeout=timedelta(seconds=settings.OUTPUT_STEP_TIMEOUT_SECONDS),
                attempts=settings.OUTPUT_STEP_ATTEMPTS,
                awaits=frozenset({"files.TaskOutputsStored"}),
                fails_on=frozenset({"files.TaskOutputsRefused"}),
                compensate=_forget_outputs,
            ),
            Step("record", _outputs_stored, timeout=timedelta(seconds=60)),
        ),
    )


def describe_dropped(collection: outputs.Collection) -> str | None:
    """The task's note on what under /output is not stored, or None when nothing was dropped."""
    if not collection.dropped:
        return None
    lines = [f"{item.path}: {item.reason}" for item in collection.dropped[:_NOTE_ENTRIES]]
    more = len(collection.dropped) - _NOTE_ENTRIES
    if more > 0:
        lines.append(f"... and {more} more")
    return "Not stored from /output:\n" + "\n".join(lines)


def collect_outputs(session: Session, task: Task, *, settings) -> str | None:
    """At a task's end: start the saga storing its last attempt's outputs; its id, or None.

    Runs in the transition's transaction (the saga's start and its event commit with the end).
    A task with nothing to store has its directory deleted now. `settings`: ExecutionSettings.
    """
    from services.tasks.sagas import tasks_sagas

    directory = outputs.attempt_dir(settings.output_dir, task.id, task.attempts)
    try:
        found = outputs.collect(
            directory, max_files=settings.output_max_files, max_bytes=settings.output_max_bytes
        )
    except OSError as exc:
        # The task's end must be recorded whatever the task left: a scan that cannot finish
        # stores nothing rather than keep the task RUNNING.
        log.warning("task %s: its outputs could not be read: %s", task.id, exc)
        task.outputs_note = f"Outputs were not stored: they could not be read ({exc.strerror})."
        outputs.remove_task_dir(settings.output_dir, task.id)
        return None
    task.outputs_note = describe_dropped(found)
    if not found.kept:
        outputs.remove_task_dir(settings.output_dir, task.id)
        return None
    outputs.remove_other_attempts(settings.output_dir, task.id, keep=task.attempts)
    record = tasks_sagas().start(
        session,
        kind=KIND,
        subject=str(task.id),
        data={
            "task_id": str(task.id),
            "owner_id": str(task.owner_id),
            "attempt": task.attempts,
            "outputs": [{"path": item.path, "size": item.size} for item in found.kept],
        },
    )
    log.info("task %s: %d outputs to store", task.id, len(found.kept), extra={"saga_id": record.id})
    return record.id
