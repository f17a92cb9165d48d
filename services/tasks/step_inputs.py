"""A workflow step's outputs, handed to the steps that depend on it at /input/<step name>/.

When a step that others depend on ends (transitions.finish_attempt, in the transaction that ends
it, before its terminal event can release a dependant), `keep_for_dependants` copies the regular
files of its last attempt's /output that are within the output limits (outputs.collect, read with
outputs.open_output: no link followed) into TASKS_OUTPUT_DIR/.step-outputs/<task id>/, files
0644 under directories 0755. A dependant's claim (`mounts_for`) lists those directories, and its
container gets each bind-mounted read-only at /input/<step name>/ (containers.container_options).

Why a copy kept by tasks rather than a fetch from files: the task_outputs saga stores the outputs
as files asynchronously, after the end; a dependant would have to wait for the saga as well as for
the end, and each start would pull them over HTTP. The copy is on the host every tasks process
already shares (TASKS_OUTPUT_DIR), exists before the dependant can be released, and goes when the
workflow finishes (workflows.finish_if_done) or its owner is deleted (erasure.py).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased

from services.tasks import outputs
from services.tasks.models import Task, TaskDependency

log = logging.getLogger(__name__)

#: Below TASKS_OUTPUT_DIR; a name no task directory (a UUID) can have.
HANDOFF = ".step-outputs"
_CHUNK = 1024 * 1024


def handoff_dir(output_root: str, task_id: uuid.UUID | str) -> Path:
    """Where a step's outputs are kept for the steps that depend on it."""
    return Path(os.path.abspath(output_root)) / HANDOFF / str(uuid.UUID(str(task_id)))


def keep_for_dependants(
    session: Session, task: Task, *, output_root: str, max_files: int, max_bytes: int
) -> None:
    """Copy the ended step's outputs aside if other steps depend on it; never raises."""
    if task.workflow_id is None:
        return
    if not session.scalar(select(exists().where(TaskDependency.depends_on_id == task.id))):
        return
    target = handoff_dir(output_root, task.id)
    try:
        _copy(
            outputs.attempt_dir(output_root, task.id, task.attempts),
            target,
            max_files=max_files,
            max_bytes=max_bytes,
        )
    except OSError as exc:
        log.warning("task %s: its outputs could not be kept for its dependants: %s", task.id, exc)


def _copy(source: Path, target: Path, *, max_files: int, max_bytes: int) -> None:
    outputs.remove_tree(target)
    target.mkdir(parents=True, mode=0o755)
    os.chmod(target, 0o755)
    for item in outputs.collect(source, max_files=max_files, max_bytes=max_bytes).kept:
        try:
            fd, _size = outputs.open_output(source, item.path)
        except outputs.OutputPathInvalid:
            continue
        destination = target / item.path
        destination.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        with os.fdopen(fd, "rb") as reading, open(destination, "wb") as writing:
            while chunk := reading.read(_CHUNK):
                writing.write(chunk)
        os.chmod(destination, 0o644)


def mounts_for(
    session: Session, task_id: uuid.UUID, *, output_root: str
) -> tuple[tuple[str, str], ...]:
    """(step name, host directory) of each workflow step `task_id` depends on."""
    dependant = aliased(Task)
    rows = session.execute(
        select(Task.id, Task.workflow_step)
        .join(TaskDependency, TaskDependency.depends_on_id == Task.id)
        .join(dependant, dependant.id == TaskDependency.task_id)
        .where(
            TaskDependency.task_id == task_id,
            Task.workflow_step.is_not(None),
            Task.workflow_id == dependant.workflow_id,
        )
        .order_by(TaskDependency.position)
    ).all()
    mounts = []
    for dependency_id, step in rows:
        directory = handoff_dir(output_root, dependency_id)
        # A dependency whose outputs could not be kept still shows an empty /input/<step>/.
        directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        mounts.append((step, str(directory)))
    return tuple(mounts)


def remove(output_root: str, task_ids: Sequence[uuid.UUID]) -> None:
    """Remove the kept outputs of these steps (nothing if they kept none); never raises."""
    for task_id in task_ids:
        outputs.remove_tree(handoff_dir(output_root, task_id))
